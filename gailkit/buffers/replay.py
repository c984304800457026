"""An SB3-compatible replay buffer that samples with a Numba gather kernel.

Use with off-policy algorithms: ``SAC("MlpPolicy", env, replay_buffer_class=NumbaReplayBuffer,
replay_buffer_kwargs={"seed": 0})``. Sampling draws from its own seeded
``np.random.Generator`` (same seed, same minibatches) and gathers observations, next
observations, actions, rewards and dones in one pass. ``reward_fn``, when set, recomputes the
rewards of every sampled minibatch, which is how adversarial off-policy imitation (DAC) keeps
rewards in step with the current discriminator.

A learner that samples every step can own its minibatch storage: ``sample_into`` gathers into a
:class:`ReplayArrays` from ``batch_arrays`` and returns tensors that share its memory (on the
CPU, without a VecNormalize env), so no step allocates or copies a minibatch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from gailkit.buffers.kernels import replay_gather

__all__ = ["NumbaReplayBuffer", "ReplayArrays", "RewardFn"]

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(obs (B, *obs_shape), acts (B, A), next_obs (B, *obs_shape), dones (B,)) -> rewards (B,)``."""


class ReplayArrays(NamedTuple):
    """Storage of one minibatch, in the field order of SB3's ``ReplayBufferSamples``."""

    observations: np.ndarray  # (B, *obs_shape)
    actions: np.ndarray  # (B, A)
    next_observations: np.ndarray  # (B, *obs_shape)
    dones: np.ndarray  # (B, 1) float32, terminations only (not time limits)
    rewards: np.ndarray  # (B, 1) float32


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

    def batch_arrays(self, batch_size: int) -> ReplayArrays:
        """New storage for minibatches of ``batch_size`` transitions (for :meth:`sample_into`)."""
        obs = np.empty((batch_size, *self.obs_shape), dtype=self.observations.dtype)
        return ReplayArrays(obs, np.empty((batch_size, self.action_dim), dtype=self.actions.dtype),
                            np.empty_like(obs), np.empty((batch_size, 1), dtype=np.float32),
                            np.empty((batch_size, 1), dtype=np.float32))

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        return self.sample_into(self.batch_arrays(batch_size), env)

    def sample_into(self, out: ReplayArrays, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """Sample ``len(out.rewards)`` transitions into ``out``.

        Returns:
            The minibatch as tensors; on the CPU and without ``env`` they share ``out``'s memory,
            so the next ``sample_into(out)`` overwrites them.
        """
        self._draw_into(out)
        return self._as_samples(out, env)

    def _draw_into(self, out: ReplayArrays) -> None:
        """Draw uniform rows of the replay into ``out`` (rewards from ``reward_fn`` when set)."""
        upper = self.buffer_size if self.full else self.pos
        if upper == 0:
            raise ValueError("cannot sample from an empty replay buffer; add transitions first")
        b = len(out.rewards)
        pos = self.rng.integers(0, upper, size=b)
        self._gather_into(pos, self.rng.integers(0, self.n_envs, size=b), out)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        out = self.batch_arrays(len(batch_inds))
        self._gather_into(np.asarray(batch_inds), self.rng.integers(0, self.n_envs, size=len(batch_inds)), out)
        return self._as_samples(out, env)

    def _gather_into(self, pos: np.ndarray, env_idx: np.ndarray, out: ReplayArrays) -> None:
        cap, n, b = self.buffer_size, self.n_envs, len(pos)
        replay_gather(
            self.observations.reshape(cap, n, -1), self.next_observations.reshape(cap, n, -1),
            self.actions.reshape(cap, n, -1), self.rewards, self.dones, self.timeouts,
            pos, env_idx,
            out.observations.reshape(b, -1), out.next_observations.reshape(b, -1), out.actions, out.rewards,
            out.dones,
        )
        if self.reward_fn is not None:
            out.rewards[:, 0] = np.asarray(
                self.reward_fn(out.observations, out.actions, out.next_observations, out.dones[:, 0]),
                dtype=np.float32)

    def _as_samples(self, out: ReplayArrays, env: VecNormalize | None) -> ReplayBufferSamples:
        """``out`` as tensors, normalised by ``env`` when given (then as copies)."""
        data = (
            self._normalize_obs(out.observations, env),
            out.actions,
            self._normalize_obs(out.next_observations, env),
            out.dones,
            self._normalize_reward(out.rewards, env),
        )
        if self.device.type == "cpu":
            return ReplayBufferSamples(*map(torch.from_numpy, data))
        return ReplayBufferSamples(*map(self.to_torch, data))
