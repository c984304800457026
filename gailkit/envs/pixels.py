"""Pixel observations: any renderable env seen as 64x64 RGB frames (the world models' test bed)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

__all__ = ["PixelObservation", "CartPoleCentredPixels", "make_pixels", "make_resized", "make_cartpole_centred"]


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


class CartPoleCentredPixels(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """CartPole frames cropped to a square that follows the cart, then resized.

    The full 600x400 render squeezed to 64x64 leaves a pole about one pixel wide, faint on white,
    which a small VAE learns to ignore. A ``window``-pixel square centred on the cart keeps the
    pole about three pixels wide and 30 tall, so its angle is what the frame shows; the cart's
    position is then only visible through the track's ends, as in most pixel CartPole studies.
    """

    def __init__(self, env: gym.Env, size: int = 64, window: int = 240):
        gym.utils.RecordConstructorArgs.__init__(self, size=size, window=window)
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"CartPoleCentredPixels needs render_mode='rgb_array', got {env.render_mode!r}")
        self.size, self.window = int(size), int(window)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        cp = self.env.unwrapped
        frame = np.asarray(self.env.render(), dtype=np.uint8)  # (400, 600, 3), y down
        height, width = frame.shape[:2]
        scale = width / (2 * cp.x_threshold)
        cart_x = int(observation[0] * scale + width / 2)
        cart_y = height - 100  # gymnasium draws the cart's top at y = 100 from the bottom
        half = self.window // 2
        pad = np.pad(frame, ((half, half), (half, half), (0, 0)), constant_values=255)
        top = cart_y - int(0.65 * self.window) + half  # more room above the cart, where the pole is
        crop = pad[top:top + self.window, cart_x:cart_x + self.window]
        return np.asarray(Image.fromarray(crop).resize((self.size, self.size), Image.BILINEAR), dtype=np.uint8)


def make_cartpole_centred(size: int = 64, window: int = 240, **kwargs: Any) -> gym.Env:
    """CartPole-v1 observed through :class:`CartPoleCentredPixels`."""
    return CartPoleCentredPixels(gym.make("CartPole-v1", render_mode="rgb_array", **kwargs), size=size,
                                 window=window)
