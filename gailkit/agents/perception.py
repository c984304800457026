"""A world model as an imitation agent's perception: frames in, ``[z, h]`` out.

``--perception DIR`` (a world model from ``gailkit worldmodel``) puts V and M between a pixel
env and the learner: every frame becomes V's posterior mean ``z``, and M's LSTM, fed ``z`` and
the action taken, carries the memory ``h``. The policy and the discriminator both see
``[z, h]`` (``z`` alone with ``perception_memory=False``); pixel demonstrations are encoded by
the same V and M, so expert and policy meet in one latent space. V and M are frozen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gailkit.data.demos import Demonstrations
from gailkit.data.types import Trajectory
from gailkit.errors import UsageError
from gailkit.worldmodels.model import WorldModel

__all__ = ["Perception", "PerceptionWrapper"]


class Perception:
    """V (and M) of a saved world model, frozen, as an observation encoder."""

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
    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """``(N, 64, 64, 3)`` uint8 -> posterior means ``(N, Z)``."""
        return self.model.encode_frames(frames, mean=True)

    @torch.no_grad()
    def encode_episode(self, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """An episode's ``T + 1`` frames and ``T`` actions -> ``(T + 1, D)`` float32 observations."""
        z = self.encode_frames(frames)  # (T+1, Z)
        if not self.memory:
            return z.numpy().astype(np.float32)
        out, _ = self.model.mdn.memory(z[None, :-1], torch.as_tensor(np.array(actions))[None])  # (1, T, H)
        h = torch.cat([torch.zeros(1, self.model.mdn_config.hidden), out[0]])  # h_0 = 0
        return torch.cat([z, h], 1).numpy().astype(np.float32)

    def encode_demos(self, demos: Demonstrations) -> Demonstrations:
        """The demonstrations with every frame replaced by its ``[z, h]``."""
        trajectories = tuple(Trajectory(self.encode_episode(t.obs, t.acts), t.acts, t.rews, t.terminal)
                             for t in demos.trajectories)
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
