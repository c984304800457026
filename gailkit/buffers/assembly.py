"""Trajectory assembly from flat ``(T, N)`` vectorised rollouts."""

from __future__ import annotations

import numpy as np

from gailkit.buffers.kernels import episode_segments
from gailkit.data.types import Trajectory

__all__ = ["trajectories_from_rollout"]


def trajectories_from_rollout(
    obs: np.ndarray,
    acts: np.ndarray,
    rews: np.ndarray | None,
    terminated: np.ndarray,
    truncated: np.ndarray,
    final_obs: np.ndarray,
    last_obs: np.ndarray,
    *,
    include_partial: bool = False,
) -> list[Trajectory]:
    """Cut a vectorised rollout into episodes.

    The layout is that of auto-resetting vector envs (SB3's ``VecEnv``): ``obs[t, n]`` is what
    the policy saw at step ``t``; after a step that ends an episode, ``obs[t + 1, n]`` is already
    the reset observation and the real last observation is ``final_obs[t, n]``.

    Args:
        obs: ``(T, N, *obs_shape)``.
        acts: ``(T, N, *act_shape)``.
        rews: ``(T, N)`` or None.
        terminated, truncated: ``(T, N)`` bool.
        final_obs: ``(T, N, *obs_shape)``; read only where an episode ended.
        last_obs: ``(N, *obs_shape)``, the observation after the last step.
        include_partial: also return the episodes still running at the end of the buffer
            (as truncated trajectories ending in ``last_obs``).

    Returns:
        Trajectories ordered by env, then time.
    """
    ended = np.ascontiguousarray(np.logical_or(terminated, truncated))
    env, start, stop, complete = episode_segments(ended)
    out = []
    for n, s, e, done in zip(env, start, stop, complete):
        if not done and not include_partial:
            continue
        last = final_obs[e - 1, n] if done else last_obs[n]
        out.append(
            Trajectory(
                obs=np.concatenate([obs[s:e, n], last[None]]),
                acts=acts[s:e, n],
                rews=None if rews is None else rews[s:e, n],
                terminal=bool(done and terminated[e - 1, n]),
            )
        )
    return out
