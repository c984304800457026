"""``gymnasium.make`` with user errors a user can act on.

An unknown id or a missing optional dependency (Box2D, MuJoCo) raises
:class:`~gailkit.errors.UsageError` naming the fix instead of Gymnasium's traceback.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
from gymnasium import error as gym_error

from gailkit.errors import UsageError

__all__ = ["check_env_id", "make_env"]

_EXTRAS = ("box2d", "mujoco")  # gailkit's pip extras of the same names


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id``; UsageError with close matches when there is none."""
    try:  # importing this module imported gailkit.envs, which registered the gailkit/ ids
        return gym.spec(env_id)
    except gym_error.Error:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UsageError(f"unknown env id {env_id!r}; {hint}`gailkit envs` lists gailkit's ids and "
                         "`python -c \"import gymnasium; gymnasium.pprint_registry()\"` all of them") from None


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` after :func:`check_env_id`.

    Raises:
        UsageError: unknown id, or the env needs an extra that is not installed.
    """
    check_env_id(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except gym_error.DependencyNotInstalled as e:
        extra = next((x for x in _EXTRAS if x in str(e).lower()), "all")
        raise UsageError(f"{env_id} needs a package that is not installed ({str(e).splitlines()[0]}); "
                         f"install it with `pip install 'gailkit[{extra}]'`") from None
