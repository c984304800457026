"""DAC: off-policy adversarial imitation (Kostrikov et al., 2019).

The generator is SB3's SAC (continuous actions) or DQN (discrete) on gailkit's
:class:`~gailkit.buffers.NumbaReplayBuffer`, whose ``reward_fn`` asks the *current*
discriminator for the reward of every minibatch it samples: rewards never go stale in the
replay buffer. Episodes end in absorbing states (``--absorbing``, the default), so
termination neither leaks reward nor cuts bootstrapping. Every ``n_envs * n_steps``
environment steps the discriminator takes ``disc_updates`` steps on expert transitions vs.
uniform replay samples.

Runs checkpoint and resume exactly like GAIL/AIRL runs (see ``gailkit.agents.imitation``); a
DAC checkpoint also holds the replay buffer (``replay.safetensors``) and the generator's
optimisers, entropy coefficient and exploration counters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from gailkit.agents.imitation import ImitationConfig, ImitationRun
from gailkit.buffers import NumbaReplayBuffer
from gailkit.discriminators import DiscBatch, Discriminator, DiscriminatorConfig
from gailkit.errors import UsageError

__all__ = ["DAC", "GENERATORS"]

# Off-policy generators: SB3 hyperparameters (RL Zoo's for SAC and CartPole's DQN).
GENERATORS: dict[str, dict[str, Any]] = {
    "sac": dict(learning_rate=1e-3, buffer_size=300_000, learning_starts=1000, batch_size=256, train_freq=1,
                gradient_steps=1),
    "dqn": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256])),
}


class DAC(ImitationRun):
    """Discriminator-actor-critic trainer owning a run directory."""

    def __init__(self, config: ImitationConfig, disc_config: DiscriminatorConfig | None = None, **kwargs: Any):
        super().__init__(config, disc_config, **kwargs)
        self.venv = make_vec_env(self._make_env, n_envs=config.n_envs, seed=config.seed)
        discrete = isinstance(self.venv.action_space, spaces.Discrete)
        algo, name = (DQN, "dqn") if discrete else (SAC, "sac")
        self.model = algo(
            "MlpPolicy", self.venv, gamma=config.gamma, seed=config.seed, device="cpu",
            replay_buffer_class=NumbaReplayBuffer,
            replay_buffer_kwargs={"seed": config.seed, "reward_fn": self._reward}, **GENERATORS[name],
        )
        self.disc = Discriminator(self.venv.observation_space, self.venv.action_space, self.disc_config)
        self.round_size = self.model.train_freq.frequency * config.n_envs
        self.disc_every = config.n_envs * config.n_steps
        if self.disc_every % self.round_size:
            raise UsageError(f"--n-steps * --n-envs ({self.disc_every}) must be a multiple of the generator's "
                             f"train frequency ({self.round_size} steps)")

    def _reward(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        return self.disc.reward(obs, acts, next_obs, dones)

    def update_discriminator(self) -> None:
        """``disc_updates`` steps on expert data vs. uniform samples of the replay buffer."""
        buf = self.model.replay_buffer
        stored = (buf.buffer_size if buf.full else buf.pos) * buf.n_envs
        bs = self.disc_config.batch_size
        if stored < bs:
            return
        n = buf.n_envs
        for _ in range(self.config.disc_updates):
            flat = self.rng.integers(0, stored, size=bs)
            pos, env = flat // n, flat % n
            policy = DiscBatch.from_numpy(buf.observations[pos, env], buf.actions[pos, env],
                                          buf.next_observations[pos, env],
                                          buf.dones[pos, env] * (1 - buf.timeouts[pos, env]))
            self.disc_stats = self.disc.train_step(self._expert_batch(bs), policy)
        self._log_disc(self.disc.reward(*[t.numpy() for t in policy[:4]]))  # rewards of the last policy batch

    def _round(self, callback: BaseCallback) -> None:
        m = self.model
        rollout = m.collect_rollouts(self.venv, train_freq=m.train_freq, action_noise=m.action_noise,
                                     callback=callback, learning_starts=m.learning_starts,
                                     replay_buffer=m.replay_buffer, log_interval=None)
        if not rollout.continue_training:
            self._stop = True
            return
        if m.num_timesteps % self.disc_every == 0:
            self.update_discriminator()
        if m.num_timesteps > m.learning_starts:
            steps = m.gradient_steps if m.gradient_steps >= 0 else rollout.episode_timesteps
            if steps > 0:
                m.train(batch_size=m.batch_size, gradient_steps=steps)

    _REPLAY = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        buf, m = self.model.replay_buffer, self.model
        n = buf.buffer_size if buf.full else buf.pos
        tensors = {f"replay.{k}": torch.from_numpy(np.ascontiguousarray(getattr(buf, k)[:n])) for k in self._REPLAY}
        if getattr(m, "log_ent_coef", None) is not None:
            tensors["log_ent_coef"] = m.log_ent_coef.detach()
        state = {"replay": {"pos": buf.pos, "full": buf.full, "rng": buf.rng.bit_generator.state},
                 "n_calls": getattr(m, "_n_calls", 0), "episode_num": m._episode_num}
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
        if hasattr(m, "_n_calls"):
            m._n_calls = state["n_calls"]
        m._episode_num = state["episode_num"]
