"""Wrappers that make episode ends explicit to imitation learners."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from gailkit.errors import UnsupportedError, UsageError

__all__ = ["AbsorbingStateWrapper", "absorbing_transitions", "make_absorbing"]


class AbsorbingStateWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turn a variable-horizon task into a fixed-horizon one with an absorbing state (DAC).

    Observations gain one trailing flag (0 for real states, 1 for the absorbing state). When the
    wrapped env terminates at ``s_T``, the wrapper returns ``s_T`` without terminating; every
    later step returns the absorbing state ``(0, ..., 0, 1)`` with ``absorbing_reward`` until
    ``horizon`` steps in all, when the episode is truncated. A discriminator can then learn what
    reaching a terminal state is worth instead of the episode length leaking it (Kostrikov et
    al., 2019). Truncations of the wrapped env end the episode as before.

    Args:
        env: a Box-observation env.
        horizon: total steps per episode; defaults to the env's ``max_episode_steps``.
        absorbing_reward: reward for steps in the absorbing state (reported in the env
            reward; imitation learners use the discriminator's instead).
    """

    def __init__(self, env: gym.Env, horizon: int | None = None, absorbing_reward: float = 0.0):
        gym.utils.RecordConstructorArgs.__init__(
            self, horizon=horizon, absorbing_reward=absorbing_reward
        )
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise UnsupportedError(
                f"AbsorbingStateWrapper needs a flat Box observation space, got {space}; "
                "flatten it with gymnasium.wrappers.FlattenObservation first"
            )
        if horizon is None:
            horizon = env.spec.max_episode_steps if env.spec is not None else None
        if horizon is None or horizon < 1:
            raise UsageError("AbsorbingStateWrapper needs a horizon: pass horizon=N or use an env "
                             "registered with max_episode_steps")
        self.horizon = int(horizon)
        self.absorbing_reward = float(absorbing_reward)
        self.observation_space = gym.spaces.Box(
            low=np.append(space.low, 0.0).astype(space.dtype),
            high=np.append(space.high, 1.0).astype(space.dtype),
            dtype=space.dtype,
        )
        self._absorbing_obs = np.zeros(self.observation_space.shape, dtype=space.dtype)
        self._absorbing_obs[-1] = 1
        self._steps = 0
        self._absorbed = False

    def _real(self, obs: np.ndarray) -> np.ndarray:
        return np.append(obs, 0).astype(self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._steps, self._absorbed = 0, False
        return self._real(obs), info

    def step(self, action):
        self._steps += 1
        truncated_here = self._steps >= self.horizon
        if self._absorbed:
            obs, info = self._absorbing_obs.copy(), {"absorbing": True}
            return obs, self.absorbing_reward, False, truncated_here, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self._absorbed = True
            info = {**info, "terminal_observation_reached": True}
        return self._real(obs), float(reward), False, truncated or truncated_here, info


def make_absorbing(base_id: str, horizon: int | None = None, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(base_id, **kwargs)`` wrapped in :class:`AbsorbingStateWrapper`."""
    return AbsorbingStateWrapper(gym.make(base_id, **kwargs), horizon=horizon)


def absorbing_transitions(trajectories, horizon: int):
    """Expert episodes as the :class:`AbsorbingStateWrapper` would have produced them.

    Observations gain the flag 0; an episode that terminated at ``s_T`` continues with
    ``s_T -> absorbing`` and ``absorbing -> absorbing`` transitions up to ``horizon`` steps
    (zero actions), so expert and policy data share one distribution over absorbing states.
    No transition is done: in the wrapped env nothing terminates.

    Args:
        trajectories: expert :class:`~gailkit.data.Trajectory` sequence.
        horizon: the wrapper's horizon.

    Returns:
        :class:`~gailkit.data.Transitions` with ``(N, obs_dim + 1)`` observations.
    """
    from gailkit.data.types import Transitions

    obs, acts, next_obs = [], [], []
    for traj in trajectories:
        o = np.concatenate([traj.obs, np.zeros((len(traj.obs), 1), traj.obs.dtype)], axis=1)
        obs.append(o[:-1]), acts.append(traj.acts), next_obs.append(o[1:])
        tail = horizon - len(traj)
        if traj.terminal and tail > 0:
            absorbing = np.zeros((1, o.shape[1]), o.dtype)
            absorbing[0, -1] = 1
            zero_act = np.zeros((tail, *traj.acts.shape[1:]), traj.acts.dtype)
            obs.append(np.concatenate([o[-1:], np.repeat(absorbing, tail - 1, 0)]))
            next_obs.append(np.repeat(absorbing, tail, 0))
            acts.append(zero_act)
    obs_a = np.concatenate(obs)
    return Transitions(obs=obs_a, acts=np.concatenate(acts), next_obs=np.concatenate(next_obs),
                       dones=np.zeros(len(obs_a), bool))
