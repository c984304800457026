"""Demonstration files: ``.npz`` with a schema version, env id and JSON space descriptions.

Layout (schema 1: vector observations), all arrays plain numeric::

    schema_version  ()            int64
    meta_json       ()            unicode: {"env_id", "observation_space", "action_space",
                                            "arrays" (the members), ...}
    obs             (sum T+1, *obs_shape)
    acts            (sum T, *act_shape)
    rews            (sum T,)      float32, only if every episode has rewards
    lengths         (E,)          int64, actions per episode
    terminal        (E,)          bool

Schema 2 (image observations, e.g. 64x64x3 uint8 frames) replaces ``obs`` by one compressed
member per episode, ``obs_00000`` ... ``(T+1, H, W, C)``, so that :func:`open_demos` can read
the frames one episode at a time; everything else is as in schema 1. :func:`save_demos`
chooses the schema from the observation space.

Loading trusts nothing in the file: each ``.npy`` header is parsed by hand and must describe a
plain numeric array of exactly the member's size (so no pickle can ever run), the zip CRC of
every member is checked, and the arrays must agree with each other, with the recorded spaces
and with the list of members. Any damage is a :class:`DemoFormatError` naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gailkit.data.spaces import describe_space, space_from_json, space_mismatch, space_to_json
from gailkit.data.types import Trajectory, Transitions, flatten_trajectories
from gailkit.errors import GailkitError, MissingFileError
from gailkit.files import atomic_write

__all__ = [
    "SCHEMA_VERSION",
    "DemoFormatError",
    "DemoReader",
    "Demonstrations",
    "check_compatible",
    "is_image_space",
    "load_demos",
    "open_demos",
    "save_demos",
]

SCHEMA_VERSION = 2
_REQUIRED = ("schema_version", "meta_json", "acts", "lengths", "terminal")  # + "obs" (1) or "obs_%05d" (2)
_EPISODE_OBS = re.compile(r"obs_\d{5}")


def is_image_space(space: gym.Space) -> bool:
    """Whether observations of ``space`` are frames (``(H, W, C)`` uint8): stored per episode."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


class DemoFormatError(GailkitError, ValueError):
    """A demonstration file (or data passed to ``save_demos``) is unusable; the message says why."""


@dataclasses.dataclass(frozen=True, eq=False)
class Demonstrations:
    """Expert episodes with the spaces and env they were recorded in."""

    trajectories: tuple[Trajectory, ...]
    env_id: str
    observation_space: gym.Space
    action_space: gym.Space
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.trajectories)

    @property
    def n_steps(self) -> int:
        return sum(len(t) for t in self.trajectories)

    @property
    def returns(self) -> np.ndarray:
        """``(E,)`` undiscounted episode returns (NaN where an episode has no rewards)."""
        return np.array([t.episode_return for t in self.trajectories])

    def transitions(self) -> Transitions:
        return flatten_trajectories(self.trajectories)

    def summary(self) -> dict[str, Any]:
        """Episodes, steps, return statistics and spaces, as printed by ``gailkit demos info``."""
        r = self.returns
        has_r = bool(np.isfinite(r).all())
        return {
            "env_id": self.env_id,
            "episodes": len(self),
            "steps": self.n_steps,
            "terminated_episodes": int(sum(t.terminal for t in self.trajectories)),
            "return_mean": float(r.mean()) if has_r else None,
            "return_std": float(r.std()) if has_r else None,
            "return_min": float(r.min()) if has_r else None,
            "return_max": float(r.max()) if has_r else None,
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
        }


def _check_finite(name: str, flat: np.ndarray, lengths: np.ndarray, source: str) -> None:
    if not np.issubdtype(flat.dtype, np.floating):
        return
    bad = ~np.isfinite(flat.reshape(len(flat), -1)).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        starts = np.concatenate([[0], np.cumsum(lengths)])
        ep = int(np.searchsorted(starts, row, side="right") - 1)
        raise DemoFormatError(
            f"{source}: {name} contains NaN or inf ({int(bad.sum())} rows; first in episode {ep}, "
            f"step {row - starts[ep]}). Re-record the episodes or drop the broken ones before saving."
        )


def _kinds_for(space: gym.Space) -> str:
    """NumPy dtype kinds an array of ``space``'s elements may have (``b`` bool, ``i``/``u``
    integers, ``f`` floats): never complex, datetime, timedelta, strings or objects."""
    if isinstance(space, gym.spaces.Box):
        return {"f": "fiu", "b": "b"}.get(np.dtype(space.dtype).kind, "iu")
    if isinstance(space, gym.spaces.MultiBinary):
        return "iub"
    return "iu"  # Discrete, MultiDiscrete


def _validate(
    obs_flat: np.ndarray | None,
    acts_flat: np.ndarray,
    rews_flat: np.ndarray | None,
    lengths: np.ndarray,
    terminal: np.ndarray,
    obs_space: gym.Space,
    act_space: gym.Space,
    source: str,
) -> None:
    """Shape, dtype, finiteness and space checks shared by save and load."""
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise DemoFormatError(f"{source}: lengths must be a 1-D integer array, got {lengths.dtype} of shape "
                              f"{lengths.shape}")
    if len(lengths) == 0 or (lengths < 1).any():
        raise DemoFormatError(f"{source}: needs at least one episode, each with at least one step")
    if terminal.dtype != bool or terminal.shape != lengths.shape:
        raise DemoFormatError(f"{source}: terminal must be a bool array with one entry per episode "
                              f"({len(lengths)}), got {terminal.dtype} of shape {terminal.shape}")
    n_act = int(lengths.sum(dtype=np.float64))  # float64: a corrupt length cannot wrap around
    n_obs = n_act + len(lengths)
    checked = [("acts", acts_flat, n_act, act_space)]
    if obs_flat is not None:  # None: per-episode frames, checked by _check_episode_frames
        checked.insert(0, ("obs", obs_flat, n_obs, obs_space))
    for name, array, rows, space in checked:
        if array.dtype.kind not in _kinds_for(space):
            raise DemoFormatError(f"{source}: {name} has dtype {array.dtype}, which does not fit the space "
                                  f"{describe_space(space)}; save {name} as numbers of the space's kind")
        if array.ndim < 1 or len(array) != rows:
            raise DemoFormatError(
                f"{source}: {name} has {len(array) if array.ndim else 'no'} rows but the episode lengths imply "
                f"{rows}; the file is truncated or was not written by save_demos"
            )
    if obs_flat is not None and obs_flat.shape[1:] != obs_space.shape:
        raise DemoFormatError(
            f"{source}: observations have shape {obs_flat.shape[1:]} but the observation space "
            f"is {describe_space(obs_space)}"
        )
    act_shape = act_space.shape or ()
    if acts_flat.shape[1:] != act_shape:
        raise DemoFormatError(
            f"{source}: actions have shape {acts_flat.shape[1:]} but the action space is "
            f"{describe_space(act_space)}"
        )
    if obs_flat is not None:
        _check_finite("observations", obs_flat, lengths + 1, source)
    _check_finite("actions", acts_flat, lengths, source)
    if rews_flat is not None:
        if rews_flat.dtype.kind != "f" or rews_flat.shape != (n_act,):
            raise DemoFormatError(f"{source}: rews must be floats of shape ({n_act},), got {rews_flat.dtype} "
                                  f"of shape {rews_flat.shape}")
        _check_finite("rewards", rews_flat, lengths, source)
    if isinstance(act_space, gym.spaces.Discrete):
        lo, hi = act_space.start, act_space.start + act_space.n
        if (acts_flat < lo).any() or (acts_flat >= hi).any():
            raise DemoFormatError(
                f"{source}: discrete actions must be integers in [{lo}, {hi}); "
                f"got range [{acts_flat.min()}, {acts_flat.max()}]"
            )


def save_demos(
    path: str | os.PathLike,
    trajectories: Sequence[Trajectory],
    *,
    env_id: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Validate and write episodes to ``path`` atomically (temp file + rename).

    Returns:
        The path written (``.npz`` appended if missing).

    Raises:
        DemoFormatError: the episodes do not fit the spaces or contain NaN/inf.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    trajectories = list(trajectories)
    if not trajectories:
        raise DemoFormatError(f"{path}: nothing to save, no trajectories given")
    lengths = np.array([len(t) for t in trajectories], dtype=np.int64)
    obs = np.concatenate([t.obs for t in trajectories])
    acts = np.concatenate([t.acts for t in trajectories])
    with_rews = all(t.rews is not None for t in trajectories)
    rews = np.concatenate([t.rews for t in trajectories]) if with_rews else None
    terminal = np.array([t.terminal for t in trajectories], dtype=bool)
    _validate(obs, acts, rews, lengths, terminal, observation_space, action_space, source=str(path))
    per_episode = is_image_space(observation_space)
    obs_members = ({f"obs_{i:05d}": t.obs for i, t in enumerate(trajectories)} if per_episode else {"obs": obs})
    meta = {
        "env_id": env_id,
        "observation_space": space_to_json(observation_space),
        "action_space": space_to_json(action_space),
        **(metadata or {}),
        # the archive's members, so that a member lost from a damaged zip directory is noticed
        "arrays": sorted([*_REQUIRED, *obs_members, *(["rews"] if rews is not None else [])]),
    }
    arrays: dict[str, np.ndarray] = {
        "schema_version": np.array(2 if per_episode else 1, dtype=np.int64),
        "meta_json": np.array(json.dumps(meta)),
        **obs_members,
        "acts": acts,
        "lengths": lengths,
        "terminal": terminal,
    }
    if rews is not None:
        arrays["rews"] = rews.astype(np.float32)
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


def _member_header(archive: zipfile.ZipFile, f, name: str, source: str) -> tuple[tuple, bool, np.dtype, int]:
    """Parse a ``.npy`` member's header by hand: ``(shape, fortran, dtype, data bytes)``. The header
    must describe a plain array (no objects, no structured dtype) of exactly the member's size."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise DemoFormatError(f"{source}: array {name!r} uses .npy format {version}; re-save the file")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise DemoFormatError(
            f"{source}: array {name!r} holds {dtype}: object (pickled) arrays or records, which gailkit never "
            "loads because unpickling can run arbitrary code; re-save the data as numeric arrays with "
            "gailkit.data.save_demos")
    count = int(np.prod(shape, dtype=np.float64))
    size = archive.getinfo(f"{name}.npy").file_size - f.tell()
    if count * dtype.itemsize != size:
        raise DemoFormatError(f"{source}: array {name!r} declares shape {shape} of {dtype} ({count * dtype.itemsize} "
                              f"bytes) but holds {size} bytes; the file is corrupt")
    return shape, fortran, dtype, size


def _read_member(archive: zipfile.ZipFile, name: str, source: str) -> np.ndarray:
    """One ``.npy`` member, parsed by hand so that nothing in the file decides what runs
    (:func:`_member_header`); the zip CRC is checked (the member is read to its end)."""
    with archive.open(f"{name}.npy") as f:
        shape, fortran, dtype, size = _member_header(archive, f, name, source)
        data = f.read(size)
        if f.read(1) or len(data) != size:  # reading to the end makes zipfile check the CRC
            raise DemoFormatError(f"{source}: array {name!r} is longer or shorter than its header says")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _peek_member(archive: zipfile.ZipFile, name: str, source: str) -> tuple[tuple, np.dtype]:
    """A member's shape and dtype from its header alone (its data is read, and CRC-checked, later)."""
    with archive.open(f"{name}.npy") as f:
        shape, _, dtype, _ = _member_header(archive, f, name, source)
    return shape, dtype


# What a corrupt or foreign archive can make zipfile and NumPy's header parser raise.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError, IndexError,
                OverflowError, NotImplementedError, struct.error,
                RuntimeError)  # zipfile: a flipped flag bit says "encrypted, password required"


def _read_npz(path: Path, *, lazy: bool = False) -> tuple[dict[str, np.ndarray], dict[str, tuple[tuple, np.dtype]]]:
    """The archive's arrays, and (with ``lazy``) only the shapes and dtypes of its per-episode
    frames (``obs_00000`` ...), which :class:`DemoReader` reads when asked."""
    if not path.exists():
        raise MissingFileError(f"demonstration file {path} does not exist; create one with "
                               "`gailkit demos collect --expert DIR --episodes N --out FILE`")
    if not zipfile.is_zipfile(path):
        raise DemoFormatError(
            f"{path}: not an .npz archive (corrupt, truncated, or another format such as a pickle); "
            "collect the demonstrations again or convert them with gailkit.data.save_demos"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n[:-4] if n.endswith(".npy") else n for n in archive.namelist()]
            frames = [n for n in names if _EPISODE_OBS.fullmatch(n)]
            missing = [k for k in _REQUIRED if k not in names] + ([] if frames or "obs" in names else ["obs"])
            unknown = sorted(set(names) - set(_REQUIRED) - {"rews", "obs"} - set(frames))
            if missing or unknown or len(set(names)) != len(names):
                problem = (f"missing arrays {missing}" if missing else
                           f"unexpected arrays {unknown}" if unknown else "repeated arrays")
                raise DemoFormatError(
                    f"{path}: not a gailkit demonstration file, {problem} (found {sorted(names)}); write "
                    "demonstrations with gailkit.data.save_demos"
                )
            deferred = set(frames) if lazy else set()
            return ({k: _read_member(archive, k, str(path)) for k in names if k not in deferred},
                    {k: _peek_member(archive, k, str(path)) for k in sorted(deferred)})
    except DemoFormatError:
        raise
    except _READ_ERRORS as e:
        raise DemoFormatError(
            f"{path}: corrupt or truncated .npz file ({type(e).__name__}: {e}); collect the demonstrations again"
        ) from None


def _check_episode_frames(headers: dict[str, tuple[tuple, np.dtype]], lengths: np.ndarray, obs_space: gym.Space,
                          source: str) -> None:
    """Schema 2: one frames member per episode, each ``(T+1, *obs_shape)`` of the space's kind."""
    expected = [f"obs_{i:05d}" for i in range(len(lengths))]
    if sorted(headers) != expected:
        raise DemoFormatError(f"{source}: holds frames {sorted(headers)[:3]}... for {len(headers)} episodes but "
                              f"{len(lengths)} episode lengths; the file is damaged: collect the demonstrations again")
    for name, n in zip(expected, lengths):
        shape, dtype = headers[name]
        if dtype.kind not in _kinds_for(obs_space) or tuple(shape) != (int(n) + 1, *obs_space.shape):
            raise DemoFormatError(f"{source}: {name} holds {dtype} of shape {tuple(shape)}, not {int(n) + 1} frames "
                                  f"of {describe_space(obs_space)}; the file is damaged: collect the demonstrations "
                                  "again")


def _open(path: str | os.PathLike, env: gym.Env | str | None, lazy: bool) -> tuple[Path, dict, dict, dict]:
    """Read and check everything but (with ``lazy``) the frames: ``(path, arrays, frame headers, meta)``."""
    from gailkit.zoo import resolve_demos

    path = resolve_demos(path)
    data, frames = _read_npz(path, lazy=lazy)
    version = data["schema_version"]
    if version.shape != () or version.dtype.kind not in "iu" or not 1 <= int(version) <= SCHEMA_VERSION:
        newer = version.shape == () and version.dtype.kind in "iu" and int(version) > SCHEMA_VERSION
        raise DemoFormatError(
            f"{path}: schema version {version.tolist()!r} is newer than this gailkit supports ({SCHEMA_VERSION}); "
            "upgrade gailkit" if newer else
            f"{path}: schema version {version.tolist()!r} is not a version gailkit wrote (1 to {SCHEMA_VERSION}); "
            "the file is damaged: collect the demonstrations again"
        )
    meta_json = data["meta_json"]
    if meta_json.shape != () or meta_json.dtype.kind != "U":
        raise DemoFormatError(f"{path}: meta_json must be one JSON string, got {meta_json.dtype} of shape "
                              f"{meta_json.shape}; the file is damaged")
    try:
        meta = json.loads(str(meta_json))
        obs_space = space_from_json(meta["observation_space"])
        act_space = space_from_json(meta["action_space"])
        env_id = meta["env_id"]
        if not isinstance(env_id, str):
            raise TypeError(f"env_id is {env_id!r}, not a string")
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as e:
        raise DemoFormatError(f"{path}: unreadable metadata ({type(e).__name__}: {e}); the file is damaged: "
                              "collect the demonstrations again") from None
    listed = meta.get("arrays")  # absent in files written before it was recorded
    members = sorted([*data, *frames])
    if listed is not None and (not isinstance(listed, list) or members != sorted(map(str, listed))):
        raise DemoFormatError(f"{path}: holds arrays {members} but its metadata lists {listed}; the file is "
                              "damaged: collect the demonstrations again")
    per_episode = int(version) == 2
    if per_episode != any(_EPISODE_OBS.fullmatch(m) for m in members) or (per_episode and "obs" in members):
        raise DemoFormatError(f"{path}: schema {int(version)} with arrays {members[:6]}...; the file is damaged: "
                              "collect the demonstrations again")
    lengths = data["lengths"]
    if per_episode and not lazy:  # read whole: check each episode's frames, then all of them together
        frames = {k: (v.shape, v.dtype) for k, v in data.items() if _EPISODE_OBS.fullmatch(k)}
    if per_episode:
        _validate(None, data["acts"], data.get("rews"), lengths, data["terminal"], obs_space, act_space, str(path))
        _check_episode_frames(frames, lengths, obs_space, str(path))
    else:
        _validate(data["obs"], data["acts"], data.get("rews"), lengths, data["terminal"], obs_space, act_space,
                  source=str(path))
    data["lengths"] = lengths.astype(np.int64)
    if env is not None:
        check_compatible(obs_space, act_space, env, source=f"{path} (recorded in {env_id})")
    return path, data, frames, {**meta, "observation_space": obs_space, "action_space": act_space}


def _extra(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("env_id", "observation_space", "action_space", "arrays")}


def load_demos(
    path: str | os.PathLike,
    *,
    env: gym.Env | str | None = None,
) -> Demonstrations:
    """Load and validate a demonstration file, all of it in memory (see :func:`open_demos` for
    frames read one episode at a time).

    Args:
        path: file written by :func:`save_demos`, or ``zoo:ENV`` for the zoo's demonstrations of ENV.
        env: optional environment (instance or id) the demonstrations must fit; its
            observation and action spaces are compared with the file's.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DemoFormatError: the file is corrupt, uses pickles, has another schema, holds
            NaN/inf, or does not fit ``env``. The message names the problem and the fix.
    """
    path, data, _, meta = _open(path, env, lazy=False)
    lengths, rews = data["lengths"], data.get("rews")
    act_starts = np.concatenate([[0], np.cumsum(lengths)])
    if "obs" in data:
        obs_starts = np.concatenate([[0], np.cumsum(lengths + 1)])
        episode_obs = [data["obs"][obs_starts[i] : obs_starts[i + 1]] for i in range(len(lengths))]
    else:
        episode_obs = [data[f"obs_{i:05d}"] for i in range(len(lengths))]
    trajectories = tuple(
        Trajectory(
            obs=episode_obs[i],
            acts=data["acts"][act_starts[i] : act_starts[i + 1]],
            rews=None if rews is None else rews[act_starts[i] : act_starts[i + 1]],
            terminal=bool(data["terminal"][i]),
        )
        for i in range(len(lengths))
    )
    return Demonstrations(trajectories, meta["env_id"], meta["observation_space"], meta["action_space"], _extra(meta))


class DemoReader:
    """A demonstration file opened without reading its frames.

    Actions, rewards, lengths and metadata are read and checked at once; each episode's frames
    (schema 2) are read, CRC-checked and validated when :meth:`episode` asks for them, so a
    file of many image episodes never has to fit in memory. Schema 1 files work too (their
    observations are one array, read at once).
    """

    def __init__(self, path: str | os.PathLike, *, env: gym.Env | str | None = None):
        self.path, self._data, self._frames, meta = _open(path, env, lazy=True)
        self.env_id: str = meta["env_id"]
        self.observation_space: gym.Space = meta["observation_space"]
        self.action_space: gym.Space = meta["action_space"]
        self.metadata = _extra(meta)
        self.lengths: np.ndarray = self._data["lengths"]
        self._act_starts = np.concatenate([[0], np.cumsum(self.lengths)])

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def n_steps(self) -> int:
        return int(self.lengths.sum())

    def episode(self, i: int) -> Trajectory:
        """Episode ``i`` as a :class:`Trajectory` (its frames read from the file now)."""
        if not 0 <= i < len(self):
            raise IndexError(f"episode {i} of {len(self)}")
        a0, a1 = self._act_starts[i], self._act_starts[i + 1]
        rews = self._data.get("rews")
        return Trajectory(obs=self._read_obs(i), acts=self._data["acts"][a0:a1],
                          rews=None if rews is None else rews[a0:a1], terminal=bool(self._data["terminal"][i]))

    def __iter__(self):
        return (self.episode(i) for i in range(len(self)))

    def _read_obs(self, i: int) -> np.ndarray:
        if "obs" in self._data:
            start = int(self._act_starts[i]) + i
            return self._data["obs"][start : start + int(self.lengths[i]) + 1]
        name = f"obs_{i:05d}"
        try:
            with zipfile.ZipFile(self.path) as archive:
                frames = _read_member(archive, name, str(self.path))
        except DemoFormatError:
            raise
        except _READ_ERRORS as e:
            raise DemoFormatError(f"{self.path}: {name} is corrupt ({type(e).__name__}: {e}); collect the "
                                  "demonstrations again") from None
        if (frames.shape, frames.dtype) != (tuple(self._frames[name][0]), self._frames[name][1]):
            raise DemoFormatError(f"{self.path}: {name} changed since the file was opened")
        return frames


def open_demos(path: str | os.PathLike, *, env: gym.Env | str | None = None) -> DemoReader:
    """Open a demonstration file for reading one episode at a time (:class:`DemoReader`)."""
    return DemoReader(path, env=env)


def check_compatible(
    obs_space: gym.Space, act_space: gym.Space, env: gym.Env | str, *, source: str
) -> None:
    """Raise DemoFormatError naming the first space that differs between data and ``env``."""
    owned = isinstance(env, str)
    env_obj = gym.make(env) if owned else env
    try:
        env_name = env if owned else (env_obj.spec.id if env_obj.spec else type(env_obj).__name__)
        for what, theirs, ours in (
            ("observation", obs_space, env_obj.observation_space),
            ("action", act_space, env_obj.action_space),
        ):
            diff = space_mismatch(ours, theirs)
            if diff:
                raise DemoFormatError(
                    f"{source}: {what} space does not match {env_name}: {diff} "
                    f"(data {describe_space(theirs)}, env {describe_space(ours)}). Use demonstrations "
                    f"recorded in {env_name}, or train on the env they were recorded in."
                )
    finally:
        if owned:
            env_obj.close()
