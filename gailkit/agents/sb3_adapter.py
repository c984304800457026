"""Every use of Stable-Baselines3's private API in gailkit, in one place.

SB3 trains through ``learn()``. Imitation runs interleave their own work with SB3's steps
(discriminator updates, evaluations, checkpoints, the exact env resets that make a resumed run
equal an uninterrupted one), so they drive the algorithm's inner loop themselves, and that
touches attributes SB3 keeps private. Each hook below has a test against the installed SB3
(``tests/agents/test_sb3_adapter.py``) and ``setup.cfg`` bounds SB3 below its next major
version: a release that renames one fails a named test instead of a training run.

:class:`RelabelingPPO` is SB3's PPO whose ``collect_rollouts`` (a fork of SB3 2.x's) keeps
what a learned reward needs. SB3's own folds the truncation bootstrap ``gamma * V(final obs)``
into the stored reward, one network call per truncated episode, so a reward written later would
silently lose it. Here the rollout keeps everything apart: environment rewards, next
observations (the real final observation at episode ends), termination vs truncation, and the
values of final observations (one batched call per rollout). Just before advantages are
computed, ``relabel(buffer)`` may overwrite ``buffer.rewards`` (e.g. with a discriminator's
reward); the GAE kernel then bootstraps truncations from ``final_values``. No VecEnv wrapper
swaps rewards behind anyone's back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from gailkit.buffers.rollout import ImitationRolloutBuffer
from gailkit.errors import UsageError

__all__ = ["RelabelingPPO", "begin_training", "count_updates", "counters", "deterministic_policy",
           "replace_observations", "restart_episodes", "restore_counters", "start_learning", "update_progress"]

Relabel = Callable[[ImitationRolloutBuffer], None]


def start_learning(model: BaseAlgorithm, total_steps: int) -> None:
    """What ``learn(total_steps)`` sets up before its first step (logger, episode-info buffers,
    schedules running to ``total_steps``), keeping ``num_timesteps`` (a resumed run's).

    A quiet model with no ``tensorboard_log`` gets a logger with no outputs: the values it records
    stay readable (``logger.name_to_value``), as under the logger ``learn()`` would configure, but
    no empty ``SB3-<date>`` folder is left in the system's temporary directory for each run."""
    if model.tensorboard_log is None and model.verbose == 0 and not model._custom_logger:
        model.set_logger(Logger(folder=None, output_formats=[]))
    model._setup_learn(max(0, total_steps - model.num_timesteps), callback=None, reset_num_timesteps=False)


def restart_episodes(model: BaseAlgorithm, obs: np.ndarray) -> None:
    """Make ``obs`` (from ``venv.reset()``) the observation the next step acts on, every env at
    an episode start."""
    model._last_obs = obs
    model._last_episode_starts = np.ones(len(obs), dtype=bool)


def replace_observations(model: BaseAlgorithm, obs: np.ndarray) -> None:
    """Make ``obs`` the observation the next step acts on, the episodes continuing (e.g. the same
    frames re-encoded by a retrained perception)."""
    model._last_obs = obs


def update_progress(model: BaseAlgorithm, total_steps: int) -> None:
    """Advance the learning-rate and clip-range schedules to ``num_timesteps / total_steps``."""
    model._update_current_progress_remaining(model.num_timesteps, total_steps)


def begin_training(model: BaseAlgorithm, optimizers: list[th.optim.Optimizer]) -> None:
    """What SB3's ``train()`` does first: training mode, and the optimisers' learning rates set from
    the schedule at the current progress (logged as ``train/learning_rate``)."""
    model.policy.set_training_mode(True)
    model._update_learning_rate(optimizers)


def count_updates(model: BaseAlgorithm, steps: int) -> int:
    """Add ``steps`` gradient steps to the model's update counter; returns the new count."""
    model._n_updates += steps
    return model._n_updates


def counters(model: BaseAlgorithm) -> dict[str, int]:
    """The counters an exact resume must restore besides ``num_timesteps``: gradient updates,
    finished episodes and (DQN) the callback calls that time its target-network updates."""
    found = {"n_updates": model._n_updates, "episode_num": model._episode_num}
    if hasattr(model, "_n_calls"):
        found["n_calls"] = model._n_calls
    return found


def restore_counters(model: BaseAlgorithm, saved: dict[str, Any]) -> None:
    """Inverse of :func:`counters`."""
    model._n_updates = saved["n_updates"]
    model._episode_num = saved["episode_num"]
    if "n_calls" in saved and hasattr(model, "_n_calls"):
        model._n_calls = saved["n_calls"]


def deterministic_policy(policy: BasePolicy) -> Callable[[np.ndarray], np.ndarray]:
    """``lambda obs: policy.predict(obs, deterministic=True)[0]`` (an algorithm's ``model.policy``): the
    same actions, faster on small networks (a sixth for PPO's CartPole policy, a third for SAC's on
    Pendulum). SB3's ``predict`` switches the policy to evaluation mode on every call, a walk of its
    module tree; this walks it only when the policy is in training mode (a training round left it so),
    and leaves it in evaluation mode, as ``predict`` does."""
    space = policy.action_space
    box = isinstance(space, spaces.Box)

    def act(obs: np.ndarray) -> np.ndarray:  # SB3's BasePolicy.predict
        if policy.training:
            policy.set_training_mode(False)
        obs_tensor, vectorized = policy.obs_to_tensor(obs)
        with th.no_grad():
            actions = policy._predict(obs_tensor, deterministic=True)
        actions = actions.cpu().numpy().reshape((-1, *space.shape))
        if box:
            actions = (policy.unscale_action(actions) if policy.squash_output
                       else np.clip(actions, space.low, space.high))
        return actions if vectorized else actions.squeeze(axis=0)

    return act


class RelabelingPPO(PPO):
    """PPO with :class:`~gailkit.buffers.ImitationRolloutBuffer` and a ``relabel`` hook run once
    per rollout (see the module docstring)."""

    def __init__(self, *args: Any, relabel: Relabel | None = None, **kwargs: Any):
        kwargs["rollout_buffer_class"] = ImitationRolloutBuffer
        super().__init__(*args, **kwargs)
        self.relabel = relabel

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: ImitationRolloutBuffer,
                         n_rollout_steps: int) -> bool:
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        truncated_at: list[tuple[int, int]] = []
        for step in range(n_rollout_steps):
            if self.use_sde and self.sde_sample_freq > 0 and step % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)  # new exploration matrix (gSDE)
            with th.no_grad():
                actions, values, log_probs = self.policy(obs_as_tensor(self._last_obs, self.device))
            actions = actions.cpu().numpy()
            clipped = actions
            if isinstance(self.action_space, spaces.Box):
                clipped = (self.policy.unscale_action(actions) if self.policy.squash_output
                           else np.clip(actions, self.action_space.low, self.action_space.high))
            new_obs, rewards, dones, infos = env.step(clipped)
            if not np.all(np.isfinite(rewards)):
                raise UsageError(f"environment returned a non-finite reward {rewards} at step {self.num_timesteps}")
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            rollout_buffer.add(self._last_obs, actions, rewards, self._last_episode_starts, values, log_probs)
            pos = rollout_buffer.pos - 1
            rollout_buffer.next_observations[pos] = new_obs
            rollout_buffer.env_rewards[pos] = rewards
            for i in np.flatnonzero(dones):
                rollout_buffer.next_observations[pos, i] = infos[i]["terminal_observation"]
                if infos[i].get("TimeLimit.truncated", False):
                    rollout_buffer.truncated[pos, i] = True
                    truncated_at.append((pos, i))
                else:
                    rollout_buffer.terminated[pos, i] = True
            self._last_obs = new_obs
            self._last_episode_starts = dones
        if truncated_at:  # one batched value call for every truncated episode of the rollout
            rows, cols = map(np.array, zip(*truncated_at))
            with th.no_grad():
                v = self.policy.predict_values(obs_as_tensor(rollout_buffer.next_observations[rows, cols], self.device))
            rollout_buffer.final_values[rows, cols] = v.cpu().numpy().reshape(-1)
        with th.no_grad():
            last_values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))
        if self.relabel is not None:
            self.relabel(rollout_buffer)
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True
