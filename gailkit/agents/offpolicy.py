"""The off-policy generator of imitation runs: SAC (continuous) or DQN (discrete) on the
Numba replay buffer.

:class:`OffPolicyRun` builds SAC (:class:`~gailkit.agents.fast_sac.FastSAC`: SB3's SAC with a
faster, numerically equivalent gradient step) or SB3's DQN with
:class:`~gailkit.buffers.NumbaReplayBuffer` (or a subclass, ``replay_buffer_class``);
``_replay_options`` passes the buffer what the algorithm needs (a reward hook for DAC, expert
rows for SQIL). A round is one of SB3's collection periods (``train_freq``) followed by its
gradient steps. A checkpoint holds the replay buffer (``extra.safetensors``), the entropy
coefficient and the exploration counters, so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from gailkit.agents.base import Run
from gailkit.agents.fast_sac import MATMUL_DTYPES, FastSAC
from gailkit.agents.perception_training import ReplayFrames
from gailkit.buffers import NumbaReplayBuffer
from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import tensors_under

__all__ = ["GENERATORS", "BoundedDQN", "OffPolicyOptions", "OffPolicyRun"]

field = dataclasses.field

# SB3 hyperparameters of the generators (RL Zoo's for SAC and for CartPole's DQN); the
# options of OffPolicyOptions override them where given.
GENERATORS: dict[str, dict[str, Any]] = {
    "sac": dict(learning_rate=1e-3, buffer_size=300_000, learning_starts=1000, batch_size=256, train_freq=1,
                gradient_steps=1),
    "dqn": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256])),
}


class _CeilingQ(nn.Module):
    """A Q-network whose outputs are clipped at ``high`` (:class:`BoundedDQN`'s target network)."""

    def __init__(self, net: nn.Module, high: float):
        super().__init__()
        self.net, self.high = net, high

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).clamp(max=self.high)


class BoundedDQN(DQN):
    """SB3's DQN whose TD target respects rewards known to be at most ``reward_max`` (as SQIL's are):
    the target network's values are clipped at ``reward_max / (1 - gamma)``, so the target ``r + gamma
    (1 - done) max_a Q'(s', a)`` is at most that bound too. Without ``reward_max`` it is SB3's DQN. The
    policy, its state dict and the target's updates are SB3's: the clip lives in the alias ``train``
    reads (``q_net_target``), not in the policy."""

    def __init__(self, *args: Any, reward_max: float | None = None, **kwargs: Any):
        if reward_max is not None and not math.isfinite(reward_max):
            raise ValueError(f"reward_max must be a finite number or None, got {reward_max!r}")
        self.reward_max = reward_max
        super().__init__(*args, **kwargs)

    def _create_aliases(self) -> None:
        super()._create_aliases()
        if self.reward_max is not None:
            if not self.gamma < 1:
                raise ValueError(f"reward_max bounds Q by a geometric sum: it needs gamma < 1, got {self.gamma}")
            self.q_net_target = _CeilingQ(self.policy.q_net_target, self.reward_max / (1 - self.gamma))


@dataclasses.dataclass(kw_only=True)
class OffPolicyOptions:
    """The off-policy learner's options; unset ones come from its preset (``GENERATORS``)."""

    n_envs: int = field(default=1, metadata=doc("parallel environments"))
    learning_rate: float | None = field(default=None, metadata=doc(
        "learning rate (default: SAC 1e-3, DQN 2.3e-3)"))
    batch_size: int | None = field(default=None, metadata=doc("minibatch size (default: SAC 256, DQN 64)"))
    buffer_size: int | None = field(default=None, metadata=doc(
        "replay buffer capacity in transitions (default: SAC 300000, DQN 100000)"))
    learning_starts: int | None = field(default=None, metadata=doc(
        "environment steps before the first gradient step (default: 1000)"))
    ent_coef: str | None = field(default=None, metadata=doc(
        "SAC's entropy coefficient alpha: auto (learned from 1), auto_X (learned from X) or X (held at X), X > 0 "
        "(default: auto, SB3's)"))

    matmul_dtype: str = field(default="float32", metadata=doc(
        "SAC's hidden-layer products: float32 (SB3's arithmetic) or bfloat16 (experimental: faster on CPUs with "
        "AVX512-BF16; the updates are no longer SB3's to float32 rounding)"))

    def check_off_policy(self) -> None:
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise UsageError(f"--matmul-dtype must be one of {', '.join(MATMUL_DTYPES)}, got {self.matmul_dtype!r}")
        if self.ent_coef is not None:
            sac_ent_coef(self.ent_coef)

    bounds: ClassVar[dict[str, str]] = {"n_envs": "[1, inf)", "learning_rate": "(0, inf)", "batch_size": "[1, inf)",
                                        "buffer_size": "[1, inf)", "learning_starts": "[0, inf)"}


def sac_ent_coef(text: str, flag: str = "--ent-coef") -> str | float:
    """``--ent-coef`` as SB3's SAC takes it: ``"auto"``, ``"auto_X"`` (learned, starting at X) or
    the float X (held); X must be a positive finite number."""
    learned = text == "auto" or text.startswith("auto_")
    number = text[len("auto_"):] if text.startswith("auto_") else text
    if text != "auto":
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} {text}: give auto, auto_X or X with X a positive number "
                             f"(e.g. auto_0.01 or 0.05)")
    return text if learned else value


def _alpha(text: str | None) -> tuple[str, float]:
    """``--ent-coef`` as what SAC does with it: ``("auto", start)`` or ``("held", value)``
    (None is SB3's default, ``auto``, which starts at 1)."""
    value = sac_ent_coef("auto" if text is None else str(text))
    if value == "auto":
        return "auto", 1.0
    if isinstance(value, str):
        return "auto", float(value[len("auto_"):])
    return "held", value


def _default(config: Any, name: str) -> Any:
    """The default of ``config``'s field ``name`` in its class."""
    return next(f.default for f in dataclasses.fields(config) if f.name == name)


class OffPolicyRun(Run):
    """A run whose learner is SAC or DQN on gailkit's replay buffer."""

    replay_buffer_class: ClassVar[type[NumbaReplayBuffer]] = NumbaReplayBuffer
    _REPLAY = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")

    def __init__(self, config: Any, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.venv = self._vec_env(config.n_envs)
        discrete = isinstance(self.venv.action_space, spaces.Discrete)
        algo, name = (BoundedDQN, "dqn") if discrete else (FastSAC, "sac")
        if discrete and config.ent_coef not in (None, _default(config, "ent_coef")):  # e.g. SQIL's 0.01
            raise UsageError(f"--ent-coef {config.ent_coef} applies to SAC, the learner of continuous actions; "
                             f"{config.env} has discrete ones (DQN): leave it out")
        if discrete and config.matmul_dtype != "float32":
            raise UsageError(f"--matmul-dtype {config.matmul_dtype} applies to SAC, the learner of continuous "
                             f"actions; {config.env} has discrete ones (DQN): leave it at float32")
        options = {**GENERATORS[name], **self._generator_options(name)}
        self.model = algo(
            "MlpPolicy", self.venv, gamma=config.gamma, seed=config.seed, device="cpu",
            replay_buffer_class=self.replay_buffer_class,
            replay_buffer_kwargs={"seed": config.seed, **self._replay_options()},
            **options,
        )
        self.round_size = self.model.train_freq.frequency * config.n_envs
        self.replay_frames = None
        if self.trainer is not None:  # the frames behind the replay's latents, to encode them again
            self.replay_frames = ReplayFrames(self.model.replay_buffer)
            self.venv.frame_sink = self.replay_frames

    @classmethod
    def same_option(cls, name: str, asked: Any, saved: Any, meta: dict[str, Any]) -> bool:
        """``--ent-coef`` compares by value: a run saved with SAC's default (None) ran with
        ``auto``, and ``0.01`` is ``1e-2``. DQN (discrete actions) has no alpha: any value is its."""
        if name == "ent_coef":
            discrete = meta.get("demos", {}).get("action_space", "").startswith("Discrete")
            return discrete or _alpha(asked) == _alpha(saved)
        return super().same_option(name, asked, saved, meta)

    def _generator_options(self, name: str) -> dict[str, Any]:
        """SB3 keyword arguments that replace the preset ``GENERATORS[name]`` (``"sac"`` or ``"dqn"``)."""
        config = self.config
        options = {k: getattr(config, k) for k in ("learning_rate", "batch_size", "buffer_size", "learning_starts")
                   if getattr(config, k) is not None}
        if name != "sac":
            return options
        if config.ent_coef is not None:
            options["ent_coef"] = sac_ent_coef(config.ent_coef)
        return {**options, "matmul_dtype": config.matmul_dtype}

    def _replay_options(self) -> dict[str, Any]:
        """Keyword arguments of the replay buffer beyond SB3's and ``seed``."""
        return {}

    def _after_collect(self) -> None:
        """Work between a round's collection and its gradient steps (e.g. discriminator updates)."""

    def _round(self, callback: BaseCallback) -> None:
        m = self.model
        rollout = m.collect_rollouts(self.venv, train_freq=m.train_freq, action_noise=m.action_noise,
                                     callback=callback, learning_starts=m.learning_starts,
                                     replay_buffer=m.replay_buffer, log_interval=None)
        if not rollout.continue_training:
            self._stop = True
            return
        self._after_collect()
        if m.num_timesteps > m.learning_starts:
            steps = m.gradient_steps if m.gradient_steps >= 0 else rollout.episode_timesteps
            if steps > 0:
                m.train(batch_size=m.batch_size, gradient_steps=steps)

    # SB3 stores Box actions in replay scaled to [-1, 1]; demonstrations and discriminators use the
    # env's units. Discrete actions are the same in both.
    def _env_actions(self, acts: np.ndarray) -> np.ndarray:
        """Replay actions in the env's units."""
        if isinstance(self.venv.action_space, spaces.Box):
            return self.model.policy.unscale_action(acts)
        return acts

    def _replay_actions(self, acts: np.ndarray) -> np.ndarray:
        """Env-unit actions (e.g. the expert's) in the units SB3 stores in replay."""
        if isinstance(self.venv.action_space, spaces.Box):
            return np.clip(self.model.policy.scale_action(np.asarray(acts, np.float32)), -1.0, 1.0)
        return acts

    def _replay_size(self) -> int:
        """Transitions stored in the replay buffer (over all envs)."""
        buf = self.model.replay_buffer
        return (buf.buffer_size if buf.full else buf.pos) * buf.n_envs

    def _relatent_experience(self) -> None:
        if self.replay_frames is not None:
            self.replay_frames.relatent(self.perception, self._env_actions)

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        buf, m = self.model.replay_buffer, self.model
        n = buf.buffer_size if buf.full else buf.pos
        tensors = {f"replay.{k}": torch.from_numpy(np.ascontiguousarray(getattr(buf, k)[:n])) for k in self._REPLAY}
        if getattr(m, "log_ent_coef", None) is not None:
            tensors["log_ent_coef"] = m.log_ent_coef.detach()
        state = {"replay": {"pos": buf.pos, "full": buf.full, "rng": buf.rng.bit_generator.state}}
        if self.replay_frames is not None:
            frames, state["replay_frames"] = self.replay_frames.state()
            tensors.update({f"replay_frames.{k}": v for k, v in frames.items()})
        return tensors, state

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        buf, m = self.model.replay_buffer, self.model
        for k in self._REPLAY:
            data = tensors[f"replay.{k}"].numpy()
            getattr(buf, k)[: len(data)] = data
        buf.pos, buf.full = state["replay"]["pos"], state["replay"]["full"]
        buf.rng.bit_generator.state = state["replay"]["rng"]
        if "log_ent_coef" in tensors:
            with torch.no_grad():
                m.log_ent_coef.copy_(tensors["log_ent_coef"])
        if self.replay_frames is not None:
            self.replay_frames.load_state(tensors_under(tensors, "replay_frames."), state["replay_frames"])
