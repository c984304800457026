"""SB3-compatible rollout buffers whose advantages come from the Numba GAE kernels.

``NumbaRolloutBuffer`` is a drop-in for on-policy algorithms:
``PPO("MlpPolicy", env, rollout_buffer_class=NumbaRolloutBuffer)``. Besides the kernel it
converts the flattened rollout to tensors once per rollout instead of once per minibatch.
``ImitationRolloutBuffer`` also keeps what a learned reward needs (next observations,
termination apart from truncation, the environment's own rewards); imitation runs fill it
through :class:`gailkit.agents.sb3_adapter.RelabelingPPO`.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from gailkit.buffers.kernels import gae, gae_episode_starts

__all__ = ["ImitationRolloutBuffer", "NumbaRolloutBuffer"]

_FIELDS = ("observations", "actions", "values", "log_probs", "advantages", "returns")


class NumbaRolloutBuffer(RolloutBuffer):
    """``RolloutBuffer`` with kernel-computed GAE and tensor-side minibatching.

    Same constructor, same ``add`` and the same numbers as SB3's buffer (tested); minibatch
    order is drawn from NumPy's global generator exactly as SB3 does, so a seeded PPO run
    samples the same minibatches with either buffer.
    """

    _tensors: dict[str, th.Tensor] | None = None

    def reset(self) -> None:
        super().reset()
        self._tensors = None

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """GAE(lambda) advantages and TD(lambda) returns, in place (see SB3's docstring)."""
        last = last_values.detach().cpu().numpy().reshape(-1).astype(np.float32)
        gae_episode_starts(
            self.rewards, self.values, self.episode_starts, last,
            np.asarray(dones, dtype=np.float32).reshape(-1),
            self.gamma, self.gae_lambda, self.advantages, self.returns,
        )

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        assert self.full, "the rollout buffer is not full yet"
        indices = np.random.permutation(self.buffer_size * self.n_envs)
        if self._tensors is None:
            self._tensors = {}
            for name in _FIELDS:
                flat = self.swap_and_flatten(getattr(self, name))
                if name == "actions":
                    flat = flat.astype(np.float32, copy=False)
                self._tensors[name] = self.to_torch(flat)
            self.generator_ready = True
        total = self.buffer_size * self.n_envs
        batch_size = total if batch_size is None else batch_size
        index = th.as_tensor(indices, device=self.device)
        for start in range(0, total, batch_size):
            yield self._minibatch(index[start : start + batch_size])

    def _minibatch(self, batch_inds: th.Tensor) -> RolloutBufferSamples:
        t = self._tensors
        return RolloutBufferSamples(
            t["observations"][batch_inds],
            t["actions"][batch_inds],
            t["values"][batch_inds].flatten(),
            t["log_probs"][batch_inds].flatten(),
            t["advantages"][batch_inds].flatten(),
            t["returns"][batch_inds].flatten(),
        )


class ImitationRolloutBuffer(NumbaRolloutBuffer):
    """Rollout buffer that also keeps next observations, termination/truncation flags,
    environment rewards and the values of final observations (for truncation bootstraps)."""

    def reset(self) -> None:
        super().reset()
        shape = (self.buffer_size, self.n_envs)
        self.next_observations = np.zeros((*shape, *self.obs_shape), dtype=self.observation_space.dtype)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.final_values = np.zeros(shape, dtype=np.float32)
        self.env_rewards = np.zeros(shape, dtype=np.float32)

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """GAE over ``self.rewards`` telling termination from truncation (``dones`` is unused:
        the flags stored per step say everything)."""
        last = last_values.detach().cpu().numpy().reshape(-1).astype(np.float32)
        self.advantages[:] = gae(self.rewards, self.values, last, self.terminated, self.truncated,
                                 self.final_values, self.gamma, self.gae_lambda)
        self.returns[:] = self.advantages + self.values

    def flat(self) -> dict[str, np.ndarray]:
        """The rollout as flat ``(T * N, ...)`` arrays in time-major order."""
        n = self.buffer_size * self.n_envs
        return {
            "obs": self.observations.reshape(n, *self.obs_shape),
            "acts": self.actions.reshape(n, -1),  # (n, 1) for discrete actions
            "next_obs": self.next_observations.reshape(n, *self.obs_shape),
            "dones": self.terminated.reshape(n).astype(np.float32),
            "log_probs": self.log_probs.reshape(n),
            "env_rewards": self.env_rewards.reshape(n),
        }
