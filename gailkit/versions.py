"""The version stamp every saved artefact carries, read from package metadata (imports nothing)."""

from __future__ import annotations

import platform
from importlib import metadata

import gailkit

__all__ = ["versions"]

_PACKAGES = ("torch", "numpy", "gymnasium", "stable-baselines3")


def versions(*extra: str) -> dict[str, str]:
    """``{package: version}`` of Python, gailkit and its core dependencies, plus ``extra``
    distributions (e.g. ``"mujoco"``, ``"transformers"``) that are installed."""
    found = {"python": platform.python_version(), "gailkit": gailkit.__version__}
    for name in (*_PACKAGES, *extra):
        try:
            found[name.replace("-", "_")] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
