"""gailkit's expert zoo: experts trained by this project, shipped in the package, no pickle.

Each ``gailkit/zoo/<env id>/`` holds an expert directory (:mod:`gailkit.agents.experts`:
``config.json``, ``policy.safetensors``, ``obs_norm.safetensors`` when trained with
normalisation, ``card.json``) plus ``demos.npz`` (25 deterministic episodes), sealed by
``manifest.json``: a file changed since it was built is refused on load, never run.
``scripts/build_zoo.py`` trains and packs them.

``zoo:ENV`` names the shipped demonstrations wherever a demonstration file is accepted
(``gailkit imitate gail --demos zoo:Hopper-v5``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gailkit.errors import UsageError

__all__ = ["PREFIX", "REFERENCES", "ZOO_DIR", "zoo_envs", "zoo_expert_dir", "zoo_demos_path", "resolve_demos",
           "resolve_expert", "zoo_cards"]

ZOO_DIR = Path(__file__).parent
PREFIX = "zoo:"
DEMOS = "demos.npz"

# Public reference returns: RL Baselines3 Zoo's benchmark.md (SB3 agents, mean +/- std; its
# MuJoCo rows are the -v3 envs, gailkit's experts the -v5 ones; its LunarLander row is -v2).
REFERENCES: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"algo": "ppo", "steps": 100_000, "return_mean": 500.0, "return_std": 0.0},
    "Acrobot-v1": {"algo": "ppo", "steps": 1_000_000, "return_mean": -73.5, "return_std": 18.2},
    "MountainCar-v0": {"algo": "dqn", "steps": 120_000, "return_mean": -100.8, "return_std": 9.9},
    "Pendulum-v1": {"algo": "sac", "steps": 20_000, "return_mean": -157.0, "return_std": 88.7},
    "LunarLander-v3": {"algo": "ppo", "steps": 1_000_000, "return_mean": 242.1, "return_std": 31.8},
    "Hopper-v5": {"algo": "sac", "steps": 1_000_000, "return_mean": 2325.5, "return_std": 1129.7},
    "HalfCheetah-v5": {"algo": "ppo", "steps": 1_000_000, "return_mean": 5819.1, "return_std": 663.5},
    "Walker2d-v5": {"algo": "ppo", "steps": 1_000_000, "return_mean": 3478.8, "return_std": 821.7},
}
REFERENCE_SOURCE = "RL Baselines3 Zoo, benchmark.md (github.com/DLR-RM/rl-baselines3-zoo)"


def zoo_envs() -> list[str]:
    """Env ids with a shipped expert, sorted."""
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())


def _checked(env_id: str) -> Path:
    path = ZOO_DIR / env_id
    if os.sep in env_id or env_id.startswith(".") or not (path / "config.json").is_file():
        have = ", ".join(zoo_envs()) or "nothing (this install has no zoo experts)"
        raise UsageError(f"the zoo has no expert for {env_id!r}; it has {have} (`gailkit zoo list`)")
    return path


def zoo_expert_dir(env_id: str) -> Path:
    """The shipped expert directory of ``env_id`` (load it with :func:`gailkit.agents.load_expert`)."""
    return _checked(env_id)


def zoo_demos_path(env_id: str) -> Path:
    """The shipped demonstrations of ``env_id``."""
    return _checked(env_id) / DEMOS


def resolve_expert(path: str | os.PathLike) -> Path:
    """``zoo:ENV`` -> the zoo's expert directory of ENV; any other path unchanged."""
    text = os.fspath(path)
    return _checked(text[len(PREFIX):]) if text.startswith(PREFIX) else Path(path)


def resolve_demos(path: str | os.PathLike) -> Path:
    """``zoo:ENV`` -> the zoo's demonstration file of ENV (its folder checked against its
    manifest first); any other path unchanged."""
    if os.fspath(path).startswith(PREFIX):
        from gailkit.nn.checkpoint import verify_dir

        return verify_dir(resolve_expert(path), what="zoo expert") / DEMOS
    return Path(path)


def zoo_cards() -> list[dict[str, Any]]:
    """Each shipped expert's card (its ``card.json``), in env order."""
    from gailkit.nn.checkpoint import read_json

    return [read_json(ZOO_DIR / env / "card.json", what="zoo expert") for env in zoo_envs()]
