"""Rollout data for world models, streamed to disk in chunks that a stopped run resumes.

Each chunk ``chunk_00000.npz`` (``allow_pickle=False``) holds whole episodes::

    frames   (N, 64, 64, 3) uint8   observation before each action, plus each episode's last frame
    actions  (S,) int64 or (S, A) float32
    rewards  (S,) float32
    terminal (E,) bool              episode ended by termination (not truncation)
    lengths  (E,) int64             actions per episode; N = S + E
"""

from __future__ import annotations

import functools
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

from gailkit.data.spaces import space_to_json
from gailkit.envs.make import make_env
from gailkit.errors import GailkitError, MissingFileError, UsageError
from gailkit.nn.checkpoint import atomic_write, write_json
from gailkit.progress import progress_bar

__all__ = ["COLLECT_POLICIES", "DataChunkError", "chunk_paths", "collect_chunks", "driving_policy", "load_chunk",
           "recorded_steps"]

_KEYS = ("frames", "actions", "rewards", "terminal", "lengths")


def driving_policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CarRacing's (steer, gas, brake) for data collection: mostly throttle, random steering.

    Uniform random actions brake half the time, so the car barely leaves the start and V and M
    never see curves or grass; this policy drives along and off the track, as the paper's
    random rollouts had to.
    """
    brake = rng.uniform(0.0, 0.8) if rng.random() < 0.1 else 0.0
    return np.array([rng.uniform(-1.0, 1.0), rng.uniform(0.3, 1.0), brake], dtype=np.float32)


COLLECT_POLICIES: dict[str, Callable[[np.ndarray, np.random.Generator], object] | None] = {
    "random": None,  # the action space's own uniform sampler
    "drive": driving_policy,
}


class DataChunkError(GailkitError, ValueError):
    """A data chunk is truncated, corrupt or inconsistent; the message names the file and the fix."""


def chunk_paths(directory: str | Path) -> list[Path]:
    """The chunks in ``directory``, in order; MissingFileError if there are none."""
    paths = sorted(Path(directory).glob("chunk_*.npz"))
    if not paths:
        raise MissingFileError(f"no rollout chunks (chunk_*.npz) in {directory}; collect them first "
                               f"(gailkit worldmodel collect, or gailkit.worldmodels.data.collect_chunks)")
    return paths


def collect_chunks(env_id: str, directory: str | Path, episodes: int, *, episodes_per_chunk: int = 16,
                   policy: str | Callable[[np.ndarray, np.random.Generator], object] | None = None, seed: int = 0,
                   progress: bool = True) -> list[Path]:
    """Record ``episodes`` episodes of a pixel env (64x64x3 observations) into chunks.

    Chunks already on disk (and readable) are kept, so an interrupted collection resumes where
    it stopped; chunk ``i`` always holds episodes ``i * episodes_per_chunk ...`` with reset seeds
    ``seed + episode``, so a resumed collection writes what an uninterrupted one would have.

    Args:
        policy: ``(obs, rng) -> action``, or a name in :data:`COLLECT_POLICIES`; default uniform
            random actions. A policy with a ``reset()`` method has it called before each episode.
    """
    if isinstance(policy, str):
        if policy not in COLLECT_POLICIES:
            raise UsageError(f"unknown collection policy {policy!r}; choose from {', '.join(COLLECT_POLICIES)}")
        policy = COLLECT_POLICIES[policy]
    if episodes < 1 or episodes_per_chunk < 1:
        raise UsageError(f"episodes ({episodes}) and episodes_per_chunk ({episodes_per_chunk}) must be >= 1")
    env = make_env(env_id)  # checked before anything is written
    if env.observation_space.shape != (64, 64, 3):
        env.close()
        raise UsageError(f"{env_id} observations are {env.observation_space.shape}, not (64, 64, 3) frames; "
                         "use a pixel env such as gailkit/CartPolePixels-v1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "meta.json", {"env_id": env_id, "action_space": space_to_json(env.action_space),
                                         "episodes": episodes, "episodes_per_chunk": episodes_per_chunk,
                                         "seed": seed})
    n_chunks = -(-episodes // episodes_per_chunk)
    paths = []
    for c in progress_bar(range(n_chunks), desc="chunks", enabled=progress):
        path = directory / f"chunk_{c:05d}.npz"
        paths.append(path)
        if path.exists():
            try:
                load_chunk(path)
                continue
            except DataChunkError:
                pass  # a chunk cut short by an interruption: record it again
        first = c * episodes_per_chunk
        data = _record(env, range(first, min(first + episodes_per_chunk, episodes)), policy, seed)
        atomic_write(path, functools.partial(_write_npz, data=data))
    env.close()
    return paths


def _write_npz(tmp: str, *, data: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez_compressed(f, **data)


def _record(env: gym.Env, episode_ids, policy, seed: int) -> dict[str, np.ndarray]:
    frames, actions, rewards, terminal, lengths = [], [], [], [], []
    for ep in episode_ids:
        rng = np.random.default_rng(seed + ep)
        env.action_space.seed(seed + ep)
        obs, _ = env.reset(seed=seed + ep)
        if hasattr(policy, "reset"):  # a policy with memory (a world-model controller) starts afresh
            policy.reset()
        frames.append(obs)
        n = 0
        while True:
            action = env.action_space.sample() if policy is None else policy(obs, rng)
            obs, reward, term, trunc, _ = env.step(action)
            frames.append(obs), actions.append(action), rewards.append(reward)
            n += 1
            if term or trunc:
                break
        terminal.append(term), lengths.append(n)
    return {"frames": np.asarray(frames, np.uint8), "actions": np.asarray(actions),
            "rewards": np.asarray(rewards, np.float32), "terminal": np.asarray(terminal, bool),
            "lengths": np.asarray(lengths, np.int64)}


def recorded_steps(directory: str | Path) -> int:
    """Env steps recorded in ``directory``'s chunks, read from their episode lengths alone (no frames)."""
    total = 0
    for path in chunk_paths(directory):
        with np.load(path, allow_pickle=False) as z:
            total += int(z["lengths"].sum())
    return total


def load_chunk(path: str | Path) -> dict[str, np.ndarray]:
    """Read and check one chunk; raises :class:`DataChunkError` with the file and the fix."""
    path = Path(path)
    fix = f"delete {path} and run the collection again (it resumes and rewrites only missing chunks)"
    if not zipfile.is_zipfile(path):
        raise DataChunkError(f"{path}: truncated or not an .npz archive; {fix}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise DataChunkError(f"{path}: missing arrays {missing}; {fix}")
            data = {k: z[k] for k in _KEYS}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        if isinstance(e, DataChunkError):
            raise
        raise DataChunkError(f"{path}: corrupt ({type(e).__name__}: {e}); {fix}") from None
    steps, eps = int(data["lengths"].sum()), len(data["lengths"])
    if (len(data["frames"]) != steps + eps or len(data["actions"]) != steps or len(data["rewards"]) != steps
            or len(data["terminal"]) != eps or data["frames"].shape[1:] != (64, 64, 3)):
        raise DataChunkError(f"{path}: array lengths do not match the episode lengths; {fix}")
    return data
