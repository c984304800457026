"""Imitation inside a world model's dream, grounded by real episodes: the shared part of
``gailkit imitate dream-gail`` (:class:`gailkit.agents.gail.DreamGAIL` = ``DreamRun`` + GAIL).

``gailkit imitate dream-gail --perception DIR`` (a world model trained on the pixel env):

* PPO collects its rollouts in :class:`~gailkit.worldmodels.vec_dream.DreamVecEnv`, ``n_envs``
  dreams of M stepped as one batch, which start from the expert's first latents. The
  discriminator's reward on latent transitions ``([z, h], a)`` (expert vs. dream) is the only
  reward: M's reward head is not used.
* The expert's frames are encoded with *sampled* latents ``z ~ q(z | frame)``, the latents M was
  trained on and that dreams produce; the discriminator would otherwise tell dreams from the
  expert by their noise alone (the real env, at evaluation, gives posterior means).
* Every ``ground_every`` dream steps the policy plays ``ground_episodes`` real episodes. Their
  latents join the expert's in M's training data and M takes ``m_updates`` gradient steps on
  all of them, so the dream follows the policy where M had no data (a world model trained on a
  random policy's episodes has never seen a pole balanced for long); the expert's ``h`` are then
  recomputed with the new M. A grounding's return is logged as the policy's real return.
* Real environment steps (the world model's own data, ``data_steps`` of its
  ``world_model.json``, plus every grounding episode) are counted apart from dream steps:
  ``eval.json`` holds both, ``steps`` (dream) and ``real_steps``. Evaluation episodes are not
  counted, as for every other algorithm.

M's weights, its optimiser, the grounding episodes and the counters are part of every
checkpoint, so a resumed run equals an uninterrupted one; the final M is saved beside the
policy (``mdn_rnn.safetensors``) and ``gailkit eval --run`` uses it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from gailkit.agents.base import Run
from gailkit.configs import doc
from gailkit.data.demos import Demonstrations
from gailkit.data.types import Trajectory, flatten_trajectories
from gailkit.envs.make import make_env
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import (
    load_optimizer_tensors,
    load_tensors,
    load_weights,
    optimizer_tensors,
    save_tensors,
    tensors_under,
    verify_dir,
)
from gailkit.worldmodels.train import fit_mdn_steps, mdn_windows
from gailkit.worldmodels.vec_dream import DreamVecEnv

__all__ = ["DreamOptions", "DreamRun"]

field = dataclasses.field


@dataclasses.dataclass(kw_only=True)
class DreamOptions:
    """The dream's options (``--steps`` counts dream steps); a config adds them to its algorithm's
    and calls :meth:`check_dream` after its own checks."""

    dream_tau: float = field(default=1.0, metadata=doc("M's sampling temperature in the dream"))
    ground_every: int = field(default=8192, metadata=doc(
        "dream steps between groundings (real episodes that refresh M)"))
    ground_episodes: int = field(default=2, metadata=doc("real episodes per grounding"))
    m_updates: int = field(default=100, metadata=doc("M's gradient steps per grounding (0: M stays frozen)"))
    m_lr: float = field(default=3e-4, metadata=doc("M's learning rate when grounding"))
    m_window: int = field(default=32, metadata=doc("M's training windows, in steps"))

    bounds: ClassVar[dict[str, str]] = {
        "dream_tau": "(0, inf)", "ground_every": "[1, inf)", "ground_episodes": "[1, inf)", "m_updates": "[0, inf)",
        "m_lr": "(0, inf)", "m_window": "[1, inf)"}

    def check_dream(self) -> None:
        if getattr(self, "perception", None) is None:
            raise UsageError("dream-gail trains inside a world model's dream: pass --perception DIR (a world model "
                             "from `gailkit worldmodel` trained on this pixel env)")
        if not getattr(self, "perception_memory", True):
            raise UsageError("dream-gail: the dream's observations are [z, h]; drop --no-perception-memory")
        if getattr(self, "absorbing", False):
            raise UsageError("dream-gail: a dream has no absorbing state; pass --no-absorbing")
        if getattr(self, "perception_train", "none") != "none":
            raise UsageError("dream-gail refreshes M from its grounding episodes itself (--m-updates); "
                             "drop --perception-train")


class _Frames(gym.Wrapper):
    """Keeps the frames of the current episode (under a perception wrapper)."""

    def reset(self, **kwargs: Any):
        frame, info = self.env.reset(**kwargs)
        self.frames = [frame]
        return frame, info

    def step(self, action):
        frame, *rest = self.env.step(action)
        self.frames.append(frame)
        return (frame, *rest)


class DreamRun(Run):
    """A run whose PPO generator collects in a world model's dream (see the module docstring);
    combine it with an algorithm, dream first: ``class DreamGAIL(DreamRun, GAIL)``."""

    def __init__(self, config: Any, **kwargs: Any):
        self._latent_gen = torch.Generator().manual_seed(config.seed)  # V's samples of the expert's frames
        self.grounded: list[tuple[torch.Tensor, np.ndarray, np.ndarray, bool]] = []  # (z, a, r, terminal)
        super().__init__(config, **kwargs)
        model = self.perception.model
        self.real_steps = int(model.data_steps or 0)  # the world model's own data
        self.ground_returns: list[float] = []
        self.m_optimizer = torch.optim.Adam(model.mdn.parameters(), lr=config.m_lr)

    # ----- expert data in the dream's latent space ----------------------------------------------
    def _encode_demos(self, demos: Demonstrations) -> Demonstrations:
        if any(t.rews is None for t in demos.trajectories):
            raise UsageError(f"{self.config.demos}: dream-gail trains M on the expert's episodes, which needs their "
                             "rewards; record the demonstrations with rewards (gailkit demos collect does)")
        self._expert_z = [(self.perception.encode_frames(t.obs, self._latent_gen), np.asarray(t.acts),
                           np.asarray(t.rews, np.float32), bool(t.terminal)) for t in demos.trajectories]
        self._pixel_demos = demos
        return self._latent_demos()

    def _latent_demos(self) -> Demonstrations:
        """The expert's sampled latents with ``h`` from the current M."""
        return self.perception.latent_demos(self._pixel_demos, tuple(
            Trajectory(self.perception.observations(z, a), a, r, terminal) for z, a, r, terminal in self._expert_z))

    def _start_latents(self) -> torch.Tensor:
        return torch.stack([z[0] for z, *_ in self._expert_z + self.grounded])

    def _vec_env(self, n_envs: int) -> VecEnv:
        """``n_envs`` dreams instead of real envs."""
        cfg = self.config
        return DreamVecEnv(self.perception.model, n_envs, start_z=self._start_latents(), tau=cfg.dream_tau,
                           max_steps=self.horizon or 1000, seed=cfg.seed)

    # ----- grounding --------------------------------------------------------------------------
    def _round(self, callback: BaseCallback) -> None:
        before = self.model.num_timesteps
        super()._round(callback)
        if self.model.num_timesteps // self.config.ground_every > before // self.config.ground_every:
            self._ground()

    def _ground(self) -> None:
        """Real episodes with the current (stochastic) policy; M refreshed on them and the expert's."""
        cfg = self.config
        env = _Frames(make_env(cfg.env))
        wrapped = self.perception.wrap(env)
        returns = []
        for _ in range(cfg.ground_episodes):
            obs, _ = wrapped.reset(seed=int(self.rng.integers(2**31)))
            acts, rews, terminated, truncated = [], [], False, False
            while not (terminated or truncated):
                action = self.model.predict(obs, deterministic=False)[0]
                obs, reward, terminated, truncated, _ = wrapped.step(action)
                acts.append(action), rews.append(reward)
            z = self.perception.encode_frames(np.asarray(env.frames), self._latent_gen)
            self.grounded.append((z, np.asarray(acts), np.asarray(rews, np.float32), bool(terminated)))
            self.real_steps += len(acts)
            returns.append(float(np.sum(rews)))
        wrapped.close()
        self.ground_returns.append(float(np.mean(returns)))
        self._log("ground", {"real_return": self.ground_returns[-1], "real_steps": self.real_steps})
        if cfg.m_updates > 0:
            self._refresh_m()

    def _refresh_m(self) -> None:
        """``m_updates`` steps of M's loss on every real episode seen (expert's and grounding's),
        then the expert's ``h`` and the dreams' start latents from the new M."""
        episodes = []
        for z, a, r, terminal in self._expert_z + self.grounded:
            done = np.zeros(len(a), np.float32)
            done[-1] = float(terminal)
            episodes.append((z, torch.tensor(a), torch.tensor(r), torch.tensor(done)))
        windows = mdn_windows(episodes, self.config.m_window)
        parts = fit_mdn_steps(self.perception.model.mdn, windows, self.m_optimizer, self.rng, self.config.m_updates)
        self._log("m", parts)
        self._follow_m()

    def _follow_m(self) -> None:
        """The expert's ``h`` and the dreams' start latents from the current M."""
        self.demos = self._latent_demos()
        self.expert_data = flatten_trajectories(self.demos.trajectories)
        self.venv.start_z = self._start_latents()

    # ----- records and checkpoints ------------------------------------------------------------
    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        result = super().evaluate(episodes)
        result["real_steps"] = self.real_steps
        return result

    def save_policy(self) -> Path:
        save_tensors(self.out / "mdn_rnn.safetensors", self.perception.model.mdn.state_dict())
        return super().save_policy()

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, state = super()._extra_state()
        tensors = {**tensors, **{f"mdn.{k}": v for k, v in self.perception.model.mdn.state_dict().items()},
                   **{f"m_optim.{k}": v for k, v in optimizer_tensors(self.m_optimizer).items()},
                   "latent_generator": self._latent_gen.get_state()}
        for i, (z, a, r, _) in enumerate(self.grounded):
            tensors.update({f"ground.{i}.z": z, f"ground.{i}.a": torch.as_tensor(a),
                            f"ground.{i}.r": torch.as_tensor(r)})
        state = {**state, "real_steps": self.real_steps, "ground_returns": self.ground_returns,
                 "ground_terminal": [t for *_, t in self.grounded]}
        return tensors, state

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        super()._load_extra_state(tensors, state)
        self.perception.model.mdn.load_state_dict(tensors_under(tensors, "mdn."))
        load_optimizer_tensors(self.m_optimizer, tensors_under(tensors, "m_optim."))
        self._latent_gen.set_state(tensors["latent_generator"])
        self.grounded = [(tensors[f"ground.{i}.z"], tensors[f"ground.{i}.a"].numpy(), tensors[f"ground.{i}.r"].numpy(),
                          bool(terminal)) for i, terminal in enumerate(state["ground_terminal"])]
        self.real_steps, self.ground_returns = state["real_steps"], state["ground_returns"]
        self._follow_m()

    @classmethod
    def load(cls, directory: str | Path) -> Run:
        run = super().load(directory)
        directory = Path(directory)
        path = directory / "mdn_rnn.safetensors"
        if path.exists():
            load_weights(run.perception.model.mdn, path, what="run")
        else:  # an unfinished run: M of its last checkpoint
            tensors = load_tensors(verify_dir(directory / "checkpoint", what="run") / "extra.safetensors", what="run")
            run.perception.model.mdn.load_state_dict(tensors_under(tensors, "mdn."))
        return run
