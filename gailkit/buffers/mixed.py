"""A replay buffer whose minibatches are part expert demonstrations, part agent replay (SQIL).

``ExpertMixReplayBuffer`` is a :class:`~gailkit.buffers.NumbaReplayBuffer` that also holds a fixed
set of expert transitions (:meth:`set_expert`). Every :meth:`sample` of ``batch_size`` rows draws
``round(expert_fraction * batch_size)`` of them uniformly from the expert set, with reward
``expert_reward``, and the rest uniformly from the agent's replay, with reward ``agent_reward``
(the rewards the environment returned are ignored). Both draws use the buffer's own seeded
generator, so a restored ``rng`` state reproduces the same minibatches. Expert rows come first.
:meth:`sample_into` fills a caller's :class:`~gailkit.buffers.ReplayArrays` the same way.

Expert actions must be stored the way SB3 stores actions in replay: Box actions scaled to
``[-1, 1]`` (``policy.scale_action``), discrete actions as ``(N, 1)`` integers.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from gailkit.buffers.replay import NumbaReplayBuffer, ReplayArrays

__all__ = ["ExpertMixReplayBuffer"]


class ExpertMixReplayBuffer(NumbaReplayBuffer):
    """``NumbaReplayBuffer`` that mixes fixed expert transitions into every minibatch.

    Extra keyword arguments (``replay_buffer_kwargs`` in SB3): ``expert_fraction`` (share of each
    minibatch taken from the expert set, in (0, 1)), ``expert_reward`` and ``agent_reward``.
    """

    def __init__(self, *args, expert_fraction: float = 0.5, expert_reward: float = 1.0,
                 agent_reward: float = 0.0, **kwargs):
        if kwargs.get("reward_fn") is not None:
            raise ValueError("ExpertMixReplayBuffer sets its own rewards; do not pass reward_fn")
        if not 0.0 < expert_fraction < 1.0:
            raise ValueError(f"expert_fraction must be in (0, 1), got {expert_fraction}")
        super().__init__(*args, **kwargs)
        self.expert_fraction = float(expert_fraction)
        self.expert_reward, self.agent_reward = float(expert_reward), float(agent_reward)
        self.reward_fn = self._agent_rewards
        self.expert: dict[str, np.ndarray] | None = None

    def _agent_rewards(self, obs, acts, next_obs, dones) -> np.ndarray:
        return np.full(len(obs), self.agent_reward, dtype=np.float32)

    def set_expert(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> None:
        """The expert transitions (``dones``: true terminations only, never truncations)."""
        n = len(obs)
        if n == 0 or not len(acts) == len(next_obs) == len(dones) == n:
            raise ValueError("set_expert: obs, acts, next_obs and dones must be non-empty and of one length")
        self.expert = {
            "obs": np.ascontiguousarray(obs, dtype=self.observations.dtype).reshape(n, *self.obs_shape),
            "acts": np.ascontiguousarray(acts, dtype=self.actions.dtype).reshape(n, self.action_dim),
            "next_obs": np.ascontiguousarray(next_obs, dtype=self.observations.dtype).reshape(n, *self.obs_shape),
            "dones": np.asarray(dones, dtype=np.float32).reshape(n, 1),
        }

    def sample_into(self, out: ReplayArrays, env: VecNormalize | None = None) -> ReplayBufferSamples:
        if self.expert is None:
            raise ValueError("ExpertMixReplayBuffer: call set_expert before sampling")
        b = len(out.rewards)
        n_exp = min(b - 1, max(1, round(self.expert_fraction * b)))
        self._draw_into(ReplayArrays(*(x[n_exp:] for x in out)))  # agent rows, rewards from _agent_rewards
        e = self.expert
        i = self.rng.integers(0, len(e["obs"]), size=n_exp)
        for key, dest in (("obs", out.observations), ("acts", out.actions), ("next_obs", out.next_observations),
                          ("dones", out.dones)):
            np.take(e[key], i, axis=0, out=dest[:n_exp])
        out.rewards[:n_exp] = self.expert_reward
        return self._as_samples(out, env)
