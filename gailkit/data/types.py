"""Frozen, shape-checked containers for demonstrations and rollouts.

A ``Trajectory`` is one episode: ``T`` actions between ``T + 1`` observations. The last
observation is the one the environment returned with the final step, so ``obs[1:]`` are the
next observations of ``acts``. ``terminal`` says whether the episode ended by termination
(True) or was cut short by a time limit or the end of the data (False).

``Transitions`` is the flat form that discriminators and BC consume:
``obs[i], acts[i] -> next_obs[i]`` with ``dones[i]`` True only on a *terminal* transition
(truncation is not a done: the value of ``next_obs`` still counts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gailkit.errors import UsageError

__all__ = ["Trajectory", "Transitions", "flatten_trajectories"]


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only, C-contiguous array that no outside reference can write to."""
    if array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")  # our own copy: later writes to the source can't leak in
    array.flags.writeable = False
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectory:
    """One episode.

    Attributes:
        obs: ``(T + 1, *obs_shape)`` observations, the last one after the final action.
        acts: ``(T, *act_shape)`` actions.
        rews: ``(T,)`` float rewards, or None when the source has none.
        terminal: True if the episode ended by termination, False if truncated.
    """

    obs: np.ndarray
    acts: np.ndarray
    rews: np.ndarray | None
    terminal: bool

    def __post_init__(self) -> None:
        obs, acts = np.asarray(self.obs), np.asarray(self.acts)
        if obs.ndim < 1 or acts.ndim < 1:
            raise UsageError("Trajectory: obs and acts must have a leading time axis")
        if len(acts) < 1:
            raise UsageError("Trajectory: an episode needs at least one action")
        if len(obs) != len(acts) + 1:
            raise UsageError(
                f"Trajectory: expected len(obs) == len(acts) + 1, got {len(obs)} observations "
                f"and {len(acts)} actions (obs must include the final observation)"
            )
        object.__setattr__(self, "obs", _frozen(obs))
        object.__setattr__(self, "acts", _frozen(acts))
        if self.rews is not None:
            rews = np.asarray(self.rews, dtype=np.float32)
            if rews.shape != (len(acts),):
                raise UsageError(
                    f"Trajectory: rews must have shape ({len(acts)},), got {rews.shape}"
                )
            object.__setattr__(self, "rews", _frozen(rews))
        object.__setattr__(self, "terminal", bool(self.terminal))

    def __len__(self) -> int:
        """Number of actions ``T``."""
        return len(self.acts)

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of rewards (NaN when the trajectory has no rewards)."""
        return float(np.sum(self.rews, dtype=np.float64)) if self.rews is not None else np.nan


@dataclasses.dataclass(frozen=True, eq=False)
class Transitions:
    """A flat batch of ``N`` transitions.

    Attributes:
        obs: ``(N, *obs_shape)``.
        acts: ``(N, *act_shape)``.
        next_obs: ``(N, *obs_shape)``.
        dones: ``(N,)`` bool, True where ``next_obs`` is terminal (no bootstrapping).
        rews: ``(N,)`` float32 or None.
    """

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray
    rews: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.obs)
        if self.next_obs.shape != self.obs.shape:
            raise ValueError(
                f"Transitions: next_obs shape {self.next_obs.shape} != obs shape {self.obs.shape}"
            )
        for name in ("acts", "dones") + (("rews",) if self.rews is not None else ()):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Transitions: {name} has {len(getattr(self, name))} rows, obs {n}")
        for name in ("obs", "acts", "next_obs"):
            object.__setattr__(self, name, _frozen(np.asarray(getattr(self, name))))
        object.__setattr__(self, "dones", _frozen(np.asarray(self.dones, dtype=bool)))
        if self.rews is not None:
            object.__setattr__(self, "rews", _frozen(np.asarray(self.rews, dtype=np.float32)))

    def __len__(self) -> int:
        return len(self.obs)


def flatten_trajectories(trajectories: Sequence[Trajectory]) -> Transitions:
    """Concatenate episodes into one ``Transitions`` batch (rewards kept if all have them)."""
    if not trajectories:
        raise ValueError("flatten_trajectories: no trajectories given")
    dones = []
    for traj in trajectories:
        d = np.zeros(len(traj), dtype=bool)
        d[-1] = traj.terminal
        dones.append(d)
    with_rews = all(t.rews is not None for t in trajectories)
    return Transitions(
        obs=np.concatenate([t.obs[:-1] for t in trajectories]),
        acts=np.concatenate([t.acts for t in trajectories]),
        next_obs=np.concatenate([t.obs[1:] for t in trajectories]),
        dones=np.concatenate(dones),
        rews=np.concatenate([t.rews for t in trajectories]) if with_rews else None,
    )
