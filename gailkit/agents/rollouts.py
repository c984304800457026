"""PPO whose rewards are replaced for a whole rollout in one batched call.

SB3's PPO folds the truncation bootstrap ``gamma * V(final obs)`` into the stored reward,
one network call per truncated episode, so a reward written later would silently lose it.
Here the rollout keeps everything apart: environment rewards, next observations (the real
final observation at episode ends), termination vs truncation, and the values of final
observations (one batched call per rollout). Just before advantages are computed,
``relabel(buffer)`` may overwrite ``buffer.rewards`` (e.g. with a discriminator's reward);
the GAE kernel then bootstraps truncations from ``final_values``. No VecEnv wrapper swaps
rewards behind anyone's back.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from gailkit.buffers.kernels import gae
from gailkit.buffers.rollout import NumbaRolloutBuffer
from gailkit.errors import UsageError

__all__ = ["ImitationRolloutBuffer", "RelabelingPPO"]


class ImitationRolloutBuffer(NumbaRolloutBuffer):
    """Rollout buffer that also keeps next observations, termination/truncation flags,
    environment rewards and the values of final observations."""

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


Relabel = Callable[[ImitationRolloutBuffer], None]


class RelabelingPPO(PPO):
    """PPO with :class:`ImitationRolloutBuffer` and a ``relabel`` hook run once per rollout."""

    def __init__(self, *args, relabel: Relabel | None = None, **kwargs):
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
