"""An SB3-compatible replay buffer that samples with a Numba gather kernel.

Use with off-policy algorithms: ``SAC("MlpPolicy", env, replay_buffer_class=NumbaReplayBuffer,
replay_buffer_kwargs={"seed": 0})``. Sampling draws from its own seeded
``np.random.Generator`` (same seed, same minibatches) and gathers observations, next
observations, actions, rewards and dones in one pass. ``reward_fn``, when set, recomputes the
rewards of every sampled minibatch, which is how adversarial off-policy imitation (DAC) keeps
rewards in step with the current discriminator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from gailkit.buffers.kernels import replay_gather

__all__ = ["NumbaReplayBuffer", "RewardFn"]

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(obs (B, *obs_shape), acts (B, A), next_obs (B, *obs_shape), dones (B,)) -> rewards (B,)``."""


class NumbaReplayBuffer(ReplayBuffer):
    """``ReplayBuffer`` with kernel sampling, an own seeded RNG and an optional reward hook."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        seed: int | None = None,
        reward_fn: RewardFn | None = None,
    ):
        if optimize_memory_usage:
            raise ValueError(
                "NumbaReplayBuffer stores next observations explicitly; "
                "set optimize_memory_usage=False"
            )
        super().__init__(
            buffer_size, observation_space, action_space, device, n_envs=n_envs,
            optimize_memory_usage=False, handle_timeout_termination=handle_timeout_termination,
        )
        self.rng = np.random.default_rng(seed)
        self.reward_fn = reward_fn

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        upper = self.buffer_size if self.full else self.pos
        if upper == 0:
            raise ValueError("cannot sample from an empty replay buffer; add transitions first")
        pos = self.rng.integers(0, upper, size=batch_size)
        env_idx = self.rng.integers(0, self.n_envs, size=batch_size)
        return self._gather(pos, env_idx, env)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        env_idx = self.rng.integers(0, self.n_envs, size=len(batch_inds))
        return self._gather(np.asarray(batch_inds), env_idx, env)

    def _gather(self, pos: np.ndarray, env_idx: np.ndarray, env: VecNormalize | None) -> ReplayBufferSamples:
        cap, n = self.buffer_size, self.n_envs
        b = len(pos)
        obs = np.empty((b, *self.obs_shape), dtype=self.observations.dtype)
        next_obs = np.empty_like(obs)
        acts = np.empty((b, self.action_dim), dtype=self.actions.dtype)
        rews = np.empty((b, 1), dtype=np.float32)
        dones = np.empty((b, 1), dtype=np.float32)
        replay_gather(
            self.observations.reshape(cap, n, -1), self.next_observations.reshape(cap, n, -1),
            self.actions.reshape(cap, n, -1), self.rewards, self.dones, self.timeouts,
            pos, env_idx,
            obs.reshape(b, -1), next_obs.reshape(b, -1), acts, rews, dones,
        )
        if self.reward_fn is not None:
            rews[:, 0] = np.asarray(self.reward_fn(obs, acts, next_obs, dones[:, 0]), dtype=np.float32)
        data = (
            self._normalize_obs(obs, env),
            acts,
            self._normalize_obs(next_obs, env),
            dones,
            self._normalize_reward(rews, env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))
