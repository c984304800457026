"""CarRacing-v3 with its observation rasterised by Numba at 64x64 or 96x96 (no pygame per step).

Gymnasium's CarRacing spends ~97% of a step in ``_render``: ~725 polygons drawn one by one
through Python and pygame onto a 1000x800 surface, then shrunk to 96x96. :class:`FastCarRacing`
keeps everything else of ``CarRacing`` (track generation, Box2D physics, reward, termination,
``render_mode="rgb_array"`` / ``"human"`` pictures) and replaces only the observation: the same
polygons (field, grass, road and kerbs, car hull and wheels, the indicator bar) are transformed
with NumPy and filled by a scanline kernel straight at the observation's size, ``supersample``
times larger and box-filtered down, the area filter of pygame's smooth downscale.

Not drawn: the reward counter's digits in the bottom-left corner (a font glyph; the bar under
them is drawn) and the skid marks, which Gymnasium leaves out of observations too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.box2d import car_dynamics
from gymnasium.envs.box2d.car_racing import (
    GRASS_DIM,
    PLAYFIELD,
    SCALE,
    WINDOW_H,
    WINDOW_W,
    ZOOM,
    CarRacing,
)

from gailkit.envs.raster import downsample, fill_convex_polygons

__all__ = ["FastCarRacing", "TrackFollower", "fixed_actions"]

_MAX_VERTS = 8  # the hull's widest fixture (HULL_POLY3)
_HULL_COLOR = (204, 0, 0)  # int(0.8 * 255)
_WHEEL_COLOR = car_dynamics.WHEEL_COLOR
_WHEEL_WHITE = car_dynamics.WHEEL_WHITE


# the indicators after the black bar: speed, four wheels' spin (vertical), steering, yaw rate (horizontal)
_INDICATOR_PLACES = (5, 7, 8, 9, 10, 20, 30)
_INDICATOR_GAINS = (0.02, 0.01, 0.01, 0.01, 0.01, -10.0, -0.8)
_INDICATOR_COLORS = [(0, 0, 0), (255, 255, 255), (0, 0, 255), (0, 0, 255), (51, 0, 255), (51, 0, 255),
                     (0, 255, 0), (255, 0, 0)]


def _polygons(points: list, colors: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polygons as padded ``(P, 8, 2)`` vertices, ``(P,)`` counts and ``(P, 3)`` uint8 colours (empty ones: slots)."""
    verts = np.zeros((len(points), _MAX_VERTS, 2))
    counts = np.zeros(len(points), np.int64)
    for i, poly in enumerate(points):
        if len(poly):
            verts[i, : len(poly)] = poly
        counts[i] = len(poly)
    return verts, counts, np.asarray(colors, dtype=np.float64).round().astype(np.uint8).reshape(-1, 3)


def fixed_actions(steps: int, seed: int = 0) -> np.ndarray:
    """A reproducible ``(steps, 3)`` float32 drive (steer, gas, brake): a random walk of the
    steering, mostly gas, brief braking; it wanders on and off the road. For fidelity checks."""
    rng = np.random.default_rng(seed)
    steer = np.clip(np.cumsum(rng.normal(0.0, 0.15, steps)), -1.0, 1.0)
    gas = np.clip(rng.uniform(0.0, 1.0, steps) + 0.2, 0.0, 1.0)
    brake = np.where(rng.uniform(size=steps) < 0.1, rng.uniform(0.0, 0.8, steps), 0.0)
    return np.stack([steer, gas, brake], axis=1).astype(np.float32)


class FastCarRacing(CarRacing):
    """``CarRacing`` whose observations are drawn by :mod:`gailkit.envs.raster` at ``size x size``.

    Args:
        size: observation side in pixels (64: World Models' input; 96: CarRacing-v3's own).
        supersample: draw at ``supersample`` times the size and average blocks (anti-aliasing).
        indicators: draw the gauges on the bar under the view (speed, wheels' spin, steering, yaw
            rate). ``False`` leaves the bar black: the frame shows the view alone, as the World Models
            paper's input (it cropped the bar off), so speed must be inferred from frames over time.
        **kwargs: ``CarRacing``'s (``render_mode``, ``lap_complete_percent``, ``domain_randomize``,
            ``continuous``, ``verbose``).
    """

    def __init__(self, size: int = 64, supersample: int = 2, indicators: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.indicators = bool(indicators)
        if size < 8 or supersample < 1:
            raise ValueError(f"size={size}, supersample={supersample}: need size >= 8 and supersample >= 1")
        self.size, self.supersample = int(size), int(supersample)
        self.observation_space = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        side = self.size * self.supersample
        self._canvas = np.zeros((side, side, 3), np.uint8)
        self._scale = np.array([side / WINDOW_W, side / WINDOW_H])  # window pixels -> canvas pixels
        self._window_view = np.array([[self._scale[0], 0, 0], [0, self._scale[1], 0]])  # for the bar
        bar = [(WINDOW_W, WINDOW_H), (WINDOW_W, WINDOW_H * 7 / 8), (0, WINDOW_H * 7 / 8), (0, WINDOW_H)]
        self._indicators = _polygons([bar] + [[]] * 7, _INDICATOR_COLORS)
        self._indicator_poses = np.zeros((8, 3))
        self._world: tuple[np.ndarray, ...] | None = None  # field, grass, road: fixed per track
        self._car: tuple[np.ndarray, ...] = ()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._world = None  # rebuilt from the new track on the first frame
        return super().reset(seed=seed, options=options)

    def _render(self, mode: str):
        if mode != "state_pixels":
            return super()._render(mode)  # pictures for people: Gymnasium's own renderer
        if "t" not in self.__dict__:
            return None
        return self._observation()

    # ----------------------------------------------------------------------------- polygons
    def _build_world(self) -> None:
        """Arrays of what is fixed for a track (field, grass, road, kerbs) and of the car's shapes."""
        field = [[(PLAYFIELD, PLAYFIELD), (PLAYFIELD, -PLAYFIELD), (-PLAYFIELD, -PLAYFIELD), (-PLAYFIELD, PLAYFIELD)]]
        grass = [[(GRASS_DIM * x + GRASS_DIM, GRASS_DIM * y), (GRASS_DIM * x, GRASS_DIM * y),
                  (GRASS_DIM * x, GRASS_DIM * y + GRASS_DIM), (GRASS_DIM * x + GRASS_DIM, GRASS_DIM * y + GRASS_DIM)]
                 for x in range(-20, 20, 2) for y in range(-20, 20, 2)]
        road = [poly for poly, _ in self.road_poly]
        colors = ([self.bg_color] + [self.grass_color] * len(grass)
                  + [[int(c) for c in color] for _, color in self.road_poly])
        verts, counts, colors = _polygons(field + grass + road, colors)
        self._world = verts, counts, colors, np.zeros((len(counts), 3))
        # the car in body coordinates (Box2D may reorder the vertices it was given): each wheel's
        # fixture, then its grey band (a slot refilled every frame), then the hull's fixtures
        shapes, colors, self._car_bodies, self._band_slots = [], [], [], []
        for body in self.car.drawlist:
            for fixture in body.fixtures:
                shapes.append(list(fixture.shape.vertices))
                colors.append(_HULL_COLOR if body is self.car.hull else _WHEEL_COLOR)
                self._car_bodies.append(body)
            if body is not self.car.hull:
                self._band_slots.append(len(shapes))
                shapes.append([])
                colors.append(_WHEEL_WHITE)
                self._car_bodies.append(body)
        self._car = _polygons(shapes, colors)
        self._car_poses = np.zeros((len(shapes), 3))

    def _place_car(self) -> None:
        """The car's poses, and its wheels' bands at their current phase (``car_dynamics.Car.draw``)."""
        verts, counts, _ = self._car
        poses = self._car_poses
        for i, body in enumerate(self._car_bodies):
            x, y = body.position
            poses[i] = body.angle, x, y
        w, r = car_dynamics.WHEEL_W * car_dynamics.SIZE, car_dynamics.WHEEL_R * car_dynamics.SIZE
        for slot, wheel in zip(self._band_slots, self.car.wheels):
            s1, s2 = math.sin(wheel.phase), math.sin(wheel.phase + 1.2)
            if s1 > 0 and s2 > 0:
                counts[slot] = 0
                continue
            c1, c2 = math.cos(wheel.phase), math.cos(wheel.phase + 1.2)
            if s1 > 0:
                c1 = float(np.sign(c1))
            if s2 > 0:
                c2 = float(np.sign(c2))
            verts[slot, :4] = (-w, r * c1), (w, r * c1), (w, r * c2), (-w, r * c2)
            counts[slot] = 4

    def _place_indicators(self) -> None:
        """The bar under the view, in window pixels after the flip (``CarRacing._render_indicators``)."""
        W, H = WINDOW_W, WINDOW_H
        s, h = W / 40.0, H / 40.0
        verts, counts, _ = self._indicators
        if not self.indicators:
            counts[1:] = 0  # the black bar only
            return
        car, wheels = self.car, self.car.wheels
        vx, vy = car.hull.linearVelocity
        speed = math.sqrt(vx * vx + vy * vy)
        values = (speed, wheels[0].omega, wheels[1].omega, wheels[2].omega, wheels[3].omega,
                  wheels[0].joint.angle, car.hull.angularVelocity)
        for i, (place, value, gain) in enumerate(zip(_INDICATOR_PLACES, values, _INDICATOR_GAINS)):
            val = gain * value
            if i < 5:  # vertical bars
                verts[i + 1, :4] = ((place * s, H - (h + h * val)), ((place + 1) * s, H - (h + h * val)),
                                    ((place + 1) * s, H - h), (place * s, H - h))
            else:
                verts[i + 1, :4] = ((place * s, H - 4 * h), ((place + val) * s, H - 4 * h),
                                    ((place + val) * s, H - 2 * h), (place * s, H - 2 * h))
            counts[i + 1] = 4 if abs(value) > 1e-4 else 0

    # ------------------------------------------------------------------------------ the frame
    def _observation(self) -> np.ndarray:
        if self._world is None:
            self._build_world()
        self._place_car()
        self._place_indicators()
        angle = -self.car.hull.angle
        zoom = 0.1 * SCALE * max(1 - self.t, 0) + ZOOM * SCALE * min(self.t, 1)
        px, py = self.car.hull.position
        c, s = math.cos(angle), math.sin(angle)
        # window = zoom R(angle) (p - car) + (W/2, H/4); then flipped (y -> H - y) and scaled
        sx, sy = self._scale
        a, b, d, e = zoom * c, -zoom * s, zoom * s, zoom * c
        tx = WINDOW_W / 2 - (a * px + b * py)
        ty = WINDOW_H / 4 - (d * px + e * py)
        view = np.array([[sx * a, sx * b, sx * tx], [-sy * d, -sy * e, sy * (WINDOW_H - ty)]])

        canvas = self._canvas
        canvas[:] = 0
        fill_convex_polygons(canvas, *self._world[:3], self._world[3], view)
        fill_convex_polygons(canvas, *self._car, self._car_poses, view)
        fill_convex_polygons(canvas, *self._indicators, self._indicator_poses, self._window_view)
        if self.supersample == 1:
            return canvas.copy()
        frame = np.empty((self.size, self.size, 3), np.uint8)
        downsample(canvas, self.supersample, frame)
        return frame


class TrackFollower:
    """A privileged CarRacing driver: it reads the track and the car's state, not the frame.

    Pure pursuit: steer toward the track point ``look`` tiles past the nearest one (``gain`` times the
    angle to it, in the car's frame); hold a speed that falls with the bend over the next 14 tiles,
    from ``v_max`` on straights to ``v_min``. ``driver(env) -> (steer, gas, brake)`` for any env whose
    ``unwrapped`` is a ``CarRacing`` that has been reset; it keeps no state between calls. Scores
    890.4 on the benchmark's 100 tracks of ``gailkit/FastCarRacing64-v3``, as
    ``scripts/probe_worldmodel_memory.py`` measures it: a teacher for imitation from pixels, and a
    yardstick for what a frame-seeing controller misses.
    """

    def __init__(self, look: int = 6, gain: float = 1.0, v_max: float = 60.0, v_min: float = 40.0,
                 bend_slowdown: float = 40.0):
        self.look, self.gain, self.v_max, self.v_min, self.bend_slowdown = look, gain, v_max, v_min, bend_slowdown

    def __call__(self, env) -> np.ndarray:
        race = env.unwrapped
        track = np.asarray(race.track, dtype=np.float64)  # (tiles, 4): alpha, beta (direction), x, y
        hull = race.car.hull
        pos, angle = np.asarray(hull.position, dtype=np.float64), hull.angle
        i = int(np.argmin(((track[:, 2:] - pos) ** 2).sum(1)))
        n = len(track)
        to_target = track[(i + self.look) % n, 2:] - pos
        forward, right = np.array([-math.sin(angle), math.cos(angle)]), np.array([math.cos(angle), math.sin(angle)])
        steer = float(np.clip(self.gain * math.atan2(to_target @ right, to_target @ forward), -1.0, 1.0))
        turn = track[(i + np.arange(1, 15)) % n, 1] - track[i, 1]
        bend = float(np.abs(np.angle(np.exp(1j * turn))).max())  # the widest turn ahead, in radians
        target = max(self.v_min, self.v_max - self.bend_slowdown * bend)
        speed = float(np.hypot(*hull.linearVelocity))
        gas = (1.0 - 0.5 * abs(steer)) if speed < target else 0.0
        brake = 0.6 if speed > target + 10.0 else 0.0
        return np.array([steer, gas, brake], dtype=np.float32)
