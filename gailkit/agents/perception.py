"""A world model as an imitation agent's perception: frames in, ``[z, h]`` out.

``--perception DIR`` (a world model from ``gailkit worldmodel``) puts V and M between a pixel
env and the learner: every frame becomes V's posterior mean ``z``, and M's LSTM, fed ``z`` and
the action taken, carries the memory ``h``. The policy and the discriminator both see
``[z, h]`` (``z`` alone with ``perception_memory=False``); pixel demonstrations are encoded by
the same V and M, so expert and policy meet in one latent space. V and M are frozen unless the
run trains them (``--perception-train``, :mod:`gailkit.agents.perception_training`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from gailkit.agents.perception_training import Episode, ReplayFrames
from gailkit.data.demos import Demonstrations
from gailkit.data.types import Trajectory
from gailkit.errors import UsageError
from gailkit.worldmodels.model import WorldModel

__all__ = ["Perception", "PerceptionWrapper", "VecPerception"]


class Perception:
    """V (and M) of a saved world model as an observation encoder."""

    def __init__(self, directory: str | Path, *, memory: bool = True):
        self.directory, self.memory = Path(directory), bool(memory)
        self.model = WorldModel.load(self.directory)
        self.model.vae.eval(), self.model.mdn.eval()
        size = self.model.latent_dim + (self.model.mdn_config.hidden if self.memory else 0)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def check(self, env_id: str, observation_space: gym.Space) -> None:
        """UsageError unless the world model was trained on this env's 64x64 frames."""
        self.model.check_env(env_id, f"--perception {self.directory}")
        if tuple(getattr(observation_space, "shape", ()) or ()) != (64, 64, 3):
            raise UsageError(f"--perception {self.directory} sees 64x64 RGB frames, but {env_id} gives "
                             f"{observation_space}; use the pixel env it was trained on (e.g. "
                             f"{self.model.env_id or 'gailkit/CartPoleCentredPixels-v1'})")

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(N, 64, 64, 3)`` uint8 -> posterior means ``(N, Z)`` (samples, with a ``generator``)."""
        return self.model.encode_frames(frames, mean=generator is None, generator=generator)

    @torch.no_grad()
    def observations(self, z: torch.Tensor, actions: np.ndarray) -> np.ndarray:
        """An episode's ``T + 1`` latents and ``T`` actions -> ``(T + 1, D)`` float32 ``[z, h]``
        (``z`` alone without memory); ``h_0 = 0``, ``h_t`` is M's memory after ``z_{t-1}``, ``a_{t-1}``."""
        if not self.memory:
            return z.numpy().astype(np.float32)
        out, _ = self.model.mdn.memory(z[None, :-1], torch.as_tensor(np.array(actions))[None])  # (1, T, H)
        h = torch.cat([torch.zeros(1, self.model.mdn_config.hidden), out[0]])
        return torch.cat([z, h], 1).numpy().astype(np.float32)

    def encode_episode(self, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """An episode's ``T + 1`` frames and ``T`` actions -> ``(T + 1, D)`` float32 observations."""
        return self.observations(self.encode_frames(frames), actions)

    def encode_demos(self, demos: Demonstrations) -> Demonstrations:
        """The demonstrations with every frame replaced by its ``[z, h]``."""
        trajectories = tuple(Trajectory(self.encode_episode(t.obs, t.acts), t.acts, t.rews, t.terminal)
                             for t in demos.trajectories)
        return self.latent_demos(demos, trajectories)

    def latent_demos(self, demos: Demonstrations, trajectories: tuple[Trajectory, ...]) -> Demonstrations:
        """``demos`` with these latent trajectories and this perception's observation space."""
        return Demonstrations(trajectories, demos.env_id, self.observation_space, demos.action_space,
                              {**demos.metadata, "perception": str(self.directory)})

    def wrap(self, env: gym.Env) -> PerceptionWrapper:
        return PerceptionWrapper(env, self)


class PerceptionWrapper(gym.Wrapper):
    """A pixel env whose observations are the perception's ``[z, h]`` (float32)."""

    def __init__(self, env: gym.Env, perception: Perception):
        super().__init__(env)
        self.perception = perception
        self.observation_space = perception.observation_space
        self._z: torch.Tensor | None = None
        self._state: Any = None
        self._h = torch.zeros(1, perception.model.mdn_config.hidden)

    def _observe(self, frame: np.ndarray) -> np.ndarray:
        self._z = self.perception.encode_frames(frame[None])  # (1, Z)
        parts = [self._z, self._h] if self.perception.memory else [self._z]
        return torch.cat(parts, 1)[0].numpy().astype(np.float32)

    def reset(self, **kwargs: Any):
        frame, info = self.env.reset(**kwargs)
        self._state, self._h = None, torch.zeros_like(self._h)
        return self._observe(frame), info

    @torch.no_grad()
    def step(self, action):
        if self.perception.memory:  # M remembers what V saw and what was done
            out, self._state = self.perception.model.mdn.memory(
                self._z[:, None], torch.as_tensor(np.asarray(action))[None, None], self._state)
            self._h = out[:, 0]
        frame, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(frame), reward, terminated, truncated, info


class VecPerception(VecEnvWrapper):
    """:class:`PerceptionWrapper` for a whole vector of pixel envs: one V encode of all their
    frames and one M step per tick (a single-frame encode costs most of a batch of 8's)."""

    def __init__(self, venv: VecEnv, perception: Perception, *,
                 on_episode: Callable[[Episode], None] | None = None):
        super().__init__(venv, observation_space=perception.observation_space)
        self.perception, self.on_episode = perception, on_episode
        n, hidden = venv.num_envs, perception.model.mdn_config.hidden
        self._z = torch.zeros(n, perception.model.latent_dim)
        self._h = torch.zeros(n, hidden)
        self._state = (torch.zeros(1, n, hidden), torch.zeros(1, n, hidden))
        # with on_episode: every env's episode so far (frames, actions, rewards), handed over when it ends
        self._episodes: list[tuple[list, list, list]] = [([], [], []) for _ in range(n)]
        self._actions: np.ndarray | None = None
        self._frames: np.ndarray | None = None  # the frames of the current observations
        # an off-policy run's ReplayFrames: told every step's frames, and where a reset cuts episodes
        self.frame_sink: ReplayFrames | None = None

    def _observe(self, z: torch.Tensor, h: torch.Tensor) -> np.ndarray:
        parts = [z, h] if self.perception.memory else [z]
        return torch.cat(parts, 1).numpy().astype(np.float32)

    def reset(self) -> np.ndarray:
        if self.frame_sink is not None:
            self.frame_sink.cut()
        frames = self._frames = self.venv.reset()
        self._z = self.perception.encode_frames(frames)
        self._h.zero_(), self._state[0].zero_(), self._state[1].zero_()
        if self.on_episode is not None:  # unfinished episodes are dropped
            self._episodes = [([frame], [], []) for frame in frames]
        return self._observe(self._z, self._h)

    @torch.no_grad()
    def step_async(self, actions: np.ndarray) -> None:
        if self.perception.memory:
            out, self._state = self.perception.model.mdn.memory(self._z[:, None], torch.as_tensor(actions)[:, None],
                                                                self._state)
            self._h = out[:, 0]
        self._actions = np.array(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        frames, rewards, dones, infos = self.venv.step_wait()
        ended = np.flatnonzero(dones)
        if self.on_episode is not None:
            self._record(frames, rewards, dones, infos)
        if self.frame_sink is not None:
            after = frames.copy()
            for i in ended:
                after[i] = infos[i]["terminal_observation"]
            self.frame_sink.step(self._frames, after, dones)
        self._frames = frames
        if len(ended):  # the terminal frame with the memory that reached it; then a fresh memory
            last = self.perception.encode_frames(np.stack([infos[i]["terminal_observation"] for i in ended]))
            for row, i in enumerate(ended):
                infos[i]["terminal_observation"] = self._observe(last[row : row + 1], self._h[i : i + 1])[0]
        self._z = self.perception.encode_frames(frames)
        obs = self._observe(self._z, self._h)
        if len(ended):
            self._h = self._h.clone()
            self._h[ended] = 0.0
            self._state = tuple(s.clone() for s in self._state)
            for s in self._state:
                s[:, ended] = 0.0
            obs[ended] = self._observe(self._z[ended], self._h[ended])
        return obs, rewards, dones, infos

    def _record(self, frames: np.ndarray, rewards: np.ndarray, dones: np.ndarray, infos: list[dict]) -> None:
        for i, (kept_frames, actions, kept_rewards) in enumerate(self._episodes):
            actions.append(self._actions[i]), kept_rewards.append(rewards[i])
            if dones[i]:
                kept_frames.append(infos[i]["terminal_observation"])
                self.on_episode(Episode(np.stack(kept_frames), np.stack(actions), np.asarray(kept_rewards, np.float32),
                                        not infos[i].get("TimeLimit.truncated", False)))
                self._episodes[i] = ([frames[i]], [], [])
            else:
                kept_frames.append(frames[i])

    @torch.no_grad()
    def refresh(self) -> np.ndarray:
        """Every env's current observation, and M's state, recomputed from its episode so far with
        the perception's current V and M (after they were trained); needs ``on_episode``."""
        model = self.perception.model
        for i, (frames, actions, _) in enumerate(self._episodes):
            z = self.perception.encode_frames(np.stack(frames))
            self._z[i] = z[-1]
            if actions:
                out, (h, c) = model.mdn.memory(z[None, :-1], torch.as_tensor(np.stack(actions))[None])
                self._h[i], self._state[0][:, i], self._state[1][:, i] = out[0, -1], h[:, 0], c[:, 0]
            else:
                self._h[i], self._state[0][:, i], self._state[1][:, i] = 0.0, 0.0, 0.0
        return self._observe(self._z, self._h)
