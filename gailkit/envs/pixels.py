"""Pixel observations: any renderable env seen as 64x64 RGB frames (the world models' test bed)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw

from gailkit.errors import UsageError

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
            raise UsageError(f"source must be 'render' or 'observation', got {source!r}")
        self.source = source
        if source == "render" and env.render_mode != "rgb_array":
            raise UsageError(f"PixelObservation needs render_mode='rgb_array', got {env.render_mode!r}: "
                             "make the env with gymnasium.make(id, render_mode='rgb_array')")
        self.size = int(size)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        frame = self.env.render() if self.source == "render" else observation
        image = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((self.size, self.size), Image.BILINEAR)
        return np.array(image, dtype=np.uint8)  # writable: torch warns on read-only arrays


def make_pixels(base_id: str, size: int = 64, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(base_id, render_mode="rgb_array")`` with :class:`PixelObservation`."""
    return PixelObservation(gym.make(base_id, render_mode="rgb_array", **kwargs), size=size)


def make_resized(base_id: str, size: int = 64, **kwargs: Any) -> gym.Env:
    """An image-observation env (e.g. CarRacing-v3) with observations resized to ``size x size``."""
    return PixelObservation(gym.make(base_id, **kwargs), size=size, source="observation")


class CartPoleCentredPixels(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """CartPole drawn from its state into ``size x size`` RGB frames, in a view that follows the cart.

    Gymnasium's 600x400 render squeezed to 64x64 leaves a pole about one pixel wide, faint on
    white, which a small VAE learns to ignore for a long time. Here the pole is drawn thick and
    dark from the true angle, the cart sits in the middle, and the track's ends (x = +/-2.4) are
    drawn as posts that slide past, so position is visible too. Drawing the 64x64 frame directly
    is also far cheaper than rendering 600x400 and resizing.
    """

    def __init__(self, env: gym.Env, size: int = 64, view: float = 1.0):
        gym.utils.RecordConstructorArgs.__init__(self, size=size, view=view)
        super().__init__(env)
        self.size, self.view = int(size), float(view)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self._frame = np.full((self.size, self.size, 3), 255, np.uint8)

    @property
    def render_mode(self) -> str:
        return "rgb_array"

    def render(self) -> np.ndarray:
        """The last observed frame."""
        return self._frame.copy()

    def observation(self, observation: Any) -> np.ndarray:
        self._frame = self._draw(observation)
        return self._frame

    def _draw(self, observation: Any) -> np.ndarray:
        x, _, theta, _ = (float(v) for v in observation)
        cp = self.env.unwrapped
        s = self.size * _SUPERSAMPLE  # drawn large, then averaged down: sub-pixel angles stay visible
        px = s / (2 * self.view)  # pixels per metre: the view spans +/- view metres around the cart
        image = Image.new("RGB", (s, s), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        track_y, centre = int(0.72 * s), s / 2
        draw.line([(0, track_y), (s, track_y)], fill=(140, 140, 140), width=_SUPERSAMPLE)
        for end in (-cp.x_threshold, cp.x_threshold):  # posts at the ends of the track
            post = centre + (end - x) * px
            draw.rectangle([post - _SUPERSAMPLE, track_y - 10 * _SUPERSAMPLE, post + _SUPERSAMPLE, track_y],
                           fill=(0, 90, 200))
        cart_w, cart_h = 0.5 * px, 0.3 * px
        draw.rectangle([centre - cart_w / 2, track_y - cart_h / 2, centre + cart_w / 2, track_y + cart_h / 2],
                       fill=(0, 0, 0))
        pole = 2 * cp.length * px  # gymnasium's pole is 2 * length long
        top = (centre + pole * np.sin(theta), track_y - cart_h / 2 - pole * np.cos(theta))
        draw.line([(centre, track_y - cart_h / 2), top], fill=(150, 60, 20), width=max(2, s // 16))
        image = image.resize((self.size, self.size), Image.BOX)
        return np.array(image, dtype=np.uint8)  # writable: torch warns on read-only arrays


_SUPERSAMPLE = 4


def make_cartpole_centred(size: int = 64, view: float = 1.0, **kwargs: Any) -> gym.Env:
    """CartPole-v1 observed through :class:`CartPoleCentredPixels` (renders frames, not a window)."""
    kwargs.pop("render_mode", None)
    return CartPoleCentredPixels(gym.make("CartPole-v1", **kwargs), size=size, view=view)
