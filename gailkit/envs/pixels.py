"""Pixel observations: any renderable env seen as 64x64 RGB frames (the world models' test bed)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

__all__ = ["PixelObservation", "make_pixels", "make_resized"]


class PixelObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observations as ``size x size`` RGB ``uint8`` frames.

    ``source="render"`` replaces the observation by the rendered frame (the wrapped env must be
    made with ``render_mode="rgb_array"``); ``source="observation"`` resizes an image
    observation (e.g. CarRacing's 96x96). Resizing is PIL's bilinear filter (no OpenCV needed).
    """

    def __init__(self, env: gym.Env, size: int = 64, source: str = "render"):
        gym.utils.RecordConstructorArgs.__init__(self, size=size, source=source)
        super().__init__(env)
        if source not in ("render", "observation"):
            raise ValueError(f"source must be 'render' or 'observation', got {source!r}")
        self.source = source
        if source == "render" and env.render_mode != "rgb_array":
            raise ValueError(f"PixelObservation needs render_mode='rgb_array', got {env.render_mode!r}: "
                             "make the env with gymnasium.make(id, render_mode='rgb_array')")
        self.size = int(size)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        frame = self.env.render() if self.source == "render" else observation
        image = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((self.size, self.size), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def make_pixels(base_id: str, size: int = 64, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(base_id, render_mode="rgb_array")`` with :class:`PixelObservation`."""
    return PixelObservation(gym.make(base_id, render_mode="rgb_array", **kwargs), size=size)


def make_resized(base_id: str, size: int = 64, **kwargs: Any) -> gym.Env:
    """An image-observation env (e.g. CarRacing-v3) with observations resized to ``size x size``."""
    return PixelObservation(gym.make(base_id, **kwargs), size=size, source="observation")
