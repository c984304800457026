"""Fixed-horizon variants of the classic-control tasks, for fair imitation benchmarks.

In the standard tasks, *when* an episode ends tells the learner about the reward: a CartPole
episode that ends early is a bad one, so an imitation learner that gets a positive reward per
step learns to balance without looking at the expert at all (the "survival bonus"), and one
with a negative reward learns to fall. Here the dynamics run on for a fixed horizon and the
original end condition becomes part of the reward instead (as in the ``seals`` suite):

* CartPole: +1 per step while the pole is within the original limits, 0 once outside.
* Acrobot: -1 per step, 0 while the tip is above the goal line.
* MountainCar: -1 per step, 0 while the car is at the goal.
"""

from __future__ import annotations

from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

__all__ = ["FixedHorizonCartPoleEnv", "FixedHorizonAcrobotEnv", "FixedHorizonMountainCarEnv"]


class FixedHorizonCartPoleEnv(CartPoleEnv):
    """CartPole that never terminates; reward 1 while upright and on the track, else 0."""

    def step(self, action):
        self.steps_beyond_terminated = None  # stepping past the old end is intended here
        obs, _, outside, truncated, info = super().step(action)
        return obs, 0.0 if outside else 1.0, False, truncated, info


class FixedHorizonAcrobotEnv(AcrobotEnv):
    """Acrobot that never terminates; reward 0 while the tip is above the line, else -1."""

    def step(self, action):
        obs, reward, _, truncated, info = super().step(action)
        return obs, reward, False, truncated, info


class FixedHorizonMountainCarEnv(MountainCarEnv):
    """MountainCar that never terminates; reward 0 while at the goal, else -1."""

    def step(self, action):
        obs, _, at_goal, truncated, info = super().step(action)
        return obs, 0.0 if at_goal else -1.0, False, truncated, info
