"""Gymnasium spaces <-> plain JSON, so files can describe their spaces without pickle."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from gailkit.errors import UnsupportedError, UsageError

__all__ = ["space_to_json", "space_from_json", "describe_space", "space_mismatch"]


def _floats_to_json(values: np.ndarray) -> list:
    # JSON has no infinity; Box bounds often are infinite.
    return [v if math.isfinite(v) else ("inf" if v > 0 else "-inf") for v in values.ravel().tolist()]


def _floats_from_json(values: list, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=dtype).reshape(shape)


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """Describe a Box, Discrete, MultiDiscrete or MultiBinary space as a JSON-able dict."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": _floats_to_json(space.low),
            "high": _floats_to_json(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise UnsupportedError(
        f"unsupported space {space!r}: gailkit stores Box, Discrete, MultiDiscrete and MultiBinary "
        "spaces; flatten Dict/Tuple observations with gymnasium.wrappers.FlattenObservation"
    )


def space_from_json(desc: dict[str, Any]) -> gym.Space:
    """Inverse of :func:`space_to_json`."""
    kind = desc.get("type")
    if kind == "Box":
        shape, dtype = tuple(desc["shape"]), np.dtype(desc["dtype"])
        low = _floats_from_json(desc["low"], shape, dtype)
        high = _floats_from_json(desc["high"], shape, dtype)
        return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(desc["n"], start=desc.get("start", 0))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(desc["nvec"])
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(desc["n"])
    raise UsageError(f"unknown space type {kind!r} in space description {desc!r}")


def describe_space(space: gym.Space) -> str:
    """A short human-readable description, e.g. ``Box(4,) float32`` or ``Discrete(2)``."""
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)} {np.dtype(space.dtype).name}"
    return repr(space)


def space_mismatch(expected: gym.Space, actual: gym.Space) -> str | None:
    """Return a sentence naming how ``actual`` differs from ``expected``, or None if equal."""
    if type(expected) is not type(actual):
        return f"space type {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, gym.spaces.Box):
        if expected.shape != actual.shape:
            return f"shape {actual.shape} != {expected.shape}"
        if np.dtype(expected.dtype) != np.dtype(actual.dtype):
            return f"dtype {np.dtype(actual.dtype).name} != {np.dtype(expected.dtype).name}"
        for bound in ("low", "high"):
            a, e = getattr(actual, bound), getattr(expected, bound)
            if not np.allclose(a, e, rtol=1e-6, atol=1e-6):  # inf == inf here
                return f"{bound} bound {a.ravel()[:4]}... != {e.ravel()[:4]}..."
        return None
    if expected != actual:
        return f"{actual!r} != {expected!r}"
    return None
