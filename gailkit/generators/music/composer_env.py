"""What ``gymnasium.make("gailkit/ChoraleComposer-v0", ...)`` builds: the env with the theory game and a critic.

:mod:`gailkit.envs.composer` holds the env, which takes its reward parts as objects; this
factory (the registered entry point) makes those objects from plain keyword arguments, so the
env id works from a config file or the command line as well as from Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gailkit.envs.composer import ChoraleComposerEnv, RewardModel
from gailkit.errors import UnsupportedError
from gailkit.generators.music.composer_disc import ChoraleDiscriminator
from gailkit.generators.music.theory import TheoryRules, TheoryWeights

__all__ = ["load_reward_model", "make_composer_env"]


def load_reward_model(reward_model: Any) -> RewardModel | None:
    """None, an object with ``score``, or a directory saved by ``ChoraleDiscriminator.save``."""
    if reward_model is None or callable(getattr(reward_model, "score", None)):
        return reward_model
    if isinstance(reward_model, (str, Path)):
        return ChoraleDiscriminator.load(reward_model)
    raise UnsupportedError(f"reward_model must be None, a directory or an object with score(voices), "
                    f"got {type(reward_model).__name__}")


def make_composer_env(*, n_bars: int = 2, reward_model: Any = None, disc_weight: float = 1.0,
                      key: str | None = None, invalid_penalty: float = 1.0, in_scale: float = 1.0,
                      parallel: float = 0.5, crossing: float = 0.05, out_of_range: float = 0.02,
                      rest: float = 0.02) -> ChoraleComposerEnv:
    """The composer env rewarded by the music-theory game and, at the end, a critic.

    Args:
        n_bars: bars per episode (``64 * n_bars`` tokens).
        reward_model: critic for the episode-end reward: None (theory only, which is what
            ``check_env`` sees), an object with ``score(voices (B, 4, T)) -> (B,)``, or a
            ``ChoraleDiscriminator`` directory.
        disc_weight: weight of the critic's score.
        key: ``"C major"``-style key for the in-scale term, or None to estimate it from the notes.
        invalid_penalty: reward for an invalid token (written as ``REST``) is ``-invalid_penalty``.
        in_scale, parallel, crossing, out_of_range, rest: :class:`TheoryWeights`.
    """
    weights = TheoryWeights(in_scale=in_scale, parallel=parallel, crossing=crossing,
                            out_of_range=out_of_range, rest=rest)
    return ChoraleComposerEnv(n_bars=n_bars, rules=TheoryRules(weights, key=key),
                              reward_model=load_reward_model(reward_model), disc_weight=disc_weight,
                              invalid_penalty=invalid_penalty)
