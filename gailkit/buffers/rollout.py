"""An SB3-compatible rollout buffer whose advantages come from the Numba GAE kernel.

Drop-in for on-policy algorithms: ``PPO("MlpPolicy", env, rollout_buffer_class=NumbaRolloutBuffer)``.
Besides the kernel it converts the flattened rollout to tensors once per rollout instead of
once per minibatch.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from gailkit.buffers.kernels import gae_episode_starts

__all__ = ["NumbaRolloutBuffer"]

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
            yield self._get_samples(index[start : start + batch_size])

    def _get_samples(self, batch_inds, env: VecNormalize | None = None) -> RolloutBufferSamples:
        if self._tensors is None:  # called directly, outside get()
            return super()._get_samples(np.asarray(batch_inds), env)
        t = self._tensors
        return RolloutBufferSamples(
            t["observations"][batch_inds],
            t["actions"][batch_inds],
            t["values"][batch_inds].flatten(),
            t["log_probs"][batch_inds].flatten(),
            t["advantages"][batch_inds].flatten(),
            t["returns"][batch_inds].flatten(),
        )
