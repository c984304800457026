"""Checkpoint I/O without pickle: tensors in safetensors, metadata in JSON, atomic writes.

Every write goes to a temporary file in the target directory and is renamed into place, so
an interrupted run leaves either the old file or the new one, never half of one. A folder
that must change as a whole (a run's ``checkpoint/``) is written by :func:`write_verified_dir`:
built beside its target, sealed with a manifest of sizes and SHA-256 digests, swapped in by
renames, and checked against the manifest by :func:`verify_dir` before it is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gailkit.errors import GailkitError
from gailkit.files import atomic_write, write_json

__all__ = [
    "CheckpointError",
    "MANIFEST",
    "atomic_dir",
    "atomic_write",
    "capture_rng",
    "describe_changes",
    "load_optimizer_tensors",
    "load_tensors",
    "load_weights",
    "optimizer_steps",
    "optimizer_tensors",
    "read_json",
    "read_progress",
    "recover_dir",
    "restore_rng",
    "save_tensors",
    "tensors_under",
    "verify_dir",
    "write_json",
    "write_progress",
    "write_verified_dir",
]

MANIFEST = "manifest.json"



class CheckpointError(GailkitError, RuntimeError):
    """A checkpoint is missing, incomplete or belongs to something else; the message says which."""


def atomic_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` on an empty folder beside ``path``, then swap it in for ``path``.

    A crash leaves the previous folder (at ``path``, or at ``.NAME.old`` between the two
    renames, which :func:`recover_dir` moves back) or the new one, never half of one.
    """
    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    recover_dir(path)  # a swap cut off before: put the last whole folder back first
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    _fsync_tree(tmp)  # the files reach the disk before the renames that publish them
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    _fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for f in sorted(root.rglob("*")):
        if f.is_file():
            with open(f, "rb+") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_verified_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """:func:`atomic_dir` with a seal: ``manifest.json`` (each file's size and SHA-256) is
    written last, so a folder that :func:`verify_dir` accepts was completely written."""

    def write_and_seal(tmp: Path) -> None:
        write(tmp)
        files = sorted(f for f in tmp.rglob("*") if f.is_file())
        write_json(tmp / MANIFEST, {"files": {f.relative_to(tmp).as_posix(): {"bytes": f.stat().st_size,
                                                                            "sha256": _digest(f)}
                                              for f in files}})

    return atomic_dir(path, write_and_seal)


def verify_dir(path: str | os.PathLike, *, what: str = "checkpoint") -> Path:
    """The whole folder to read for ``path``, checked file by file against its manifest.

    That is ``path``, or ``.NAME.old`` while a swap is between its two renames. Nothing is
    moved: a reader may run beside the writer (``gailkit eval`` on a run in progress); the
    writer itself calls :func:`recover_dir`.

    Raises:
        CheckpointError: the manifest is missing (a folder not written whole) or a file is
            missing, truncated or changed since it was written.
    """
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        path = old
    files = read_json(path / MANIFEST, what=what).get("files")
    if not isinstance(files, dict):
        raise CheckpointError(f"{what}: {path / MANIFEST} lists no files; the folder is damaged")
    for name, expected in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{what}: {f} is missing; {path} is damaged (restore it from a backup)")
        if f.stat().st_size != expected.get("bytes") or _digest(f) != expected.get("sha256"):
            raise CheckpointError(f"{what}: {f} changed since it was written (size or SHA-256 differs "
                                  f"from {MANIFEST}); {path} is damaged (restore it from a backup)")
    return path


def recover_dir(path: str | os.PathLike) -> Path:
    """``path``, moved back from ``.NAME.old`` first if an :func:`atomic_dir` swap stopped halfway."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        old.rename(path)
    return path


class JSONRecord(dict):
    """A JSON object read from a file: a missing key raises :class:`CheckpointError` naming the
    file and the key (a damaged or foreign file is the user's to fix, not a ``KeyError``)."""

    source: str = "a JSON file"

    def __missing__(self, key: str) -> Any:
        raise CheckpointError(f"{self.source} has no {key!r} entry; it is damaged or was not written by "
                              f"this version of gailkit")


def read_json(path: str | os.PathLike, *, what: str = "checkpoint") -> dict[str, Any]:
    """Read a JSON object from a file, raising :class:`CheckpointError` with the path if absent,
    broken, or missing a key the caller reads (every object is a :class:`JSONRecord`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} is missing; is {path.parent} a gailkit {what} directory?")
    source = f"{what}: {path}"

    def record(pairs: list[tuple[str, Any]]) -> JSONRecord:
        r = JSONRecord(pairs)
        r.source = source
        return r

    try:
        data = json.loads(path.read_text(), object_pairs_hook=record)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{source} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{source} holds a JSON {type(data).__name__}, not an object; it is damaged")
    return data


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor]) -> Path:
    """Save a flat name -> tensor mapping as safetensors, atomically (tensors made contiguous).

    Tensors that share memory (SB3's policy shares one CNN between actor and critic, so its
    ``state_dict`` names each weight three times) are written once per name: loading the
    ``state_dict`` back ties them again.
    """
    flat, seen = {}, set()
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        flat[k] = v.clone() if key in seen and v.numel() else v
        seen.add(key)
    return atomic_write(path, lambda tmp: save_file(flat, tmp))


def load_tensors(path: str | os.PathLike, *, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Load a safetensors file, raising :class:`CheckpointError` if absent or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} is missing; is {path.parent} a gailkit {what} directory?")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{what}: {path} is corrupt or not safetensors ({e})") from None


def write_progress(directory: str | os.PathLike, step: int, tensors: Mapping[str, torch.Tensor],
                   progress: Mapping[str, Any], *, name: str = "progress.json", state: str = "state") -> None:
    """A training loop's checkpoint in ``directory``: ``tensors`` to ``{state}_{step}.safetensors``, then
    the JSON ``name``: ``progress`` plus ``"state"``, that file's name.

    The JSON is written second and names the state file, so a stop between the two writes leaves the
    previous pair whole; older state files are removed only after the switch.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state_file = f"{state}_{step:05d}.safetensors"
    save_tensors(directory / state_file, tensors)
    write_json(directory / name, {**progress, "state": state_file})
    for old in directory.glob(f"{state}_*.safetensors"):
        if old.name != state_file:
            old.unlink(missing_ok=True)


def read_progress(directory: str | os.PathLike, *, name: str = "progress.json",
                  what: str = "training checkpoint") -> dict[str, Any]:
    """The JSON ``name`` that :func:`write_progress` left in ``directory``; its tensors are
    ``load_tensors(directory / progress["state"])``."""
    return read_json(Path(directory) / name, what=what)


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """``"key: old -> new, ..."`` over the keys whose values differ (a missing key reads as None; a long value
    cut to its start), for messages that refuse to resume a run set up otherwise."""
    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:56] + " ..."

    return ", ".join(f"{k}: {short(before.get(k))} -> {short(after.get(k))}"
                     for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k))


def tensors_under(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under the key prefix ``prefix`` (e.g. ``"vae."``), without it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state as flat ``"{index}.{name}"`` tensors.

    Hyperparameters are not included: they come from the owner's config when it is rebuilt.
    """
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def optimizer_steps(optimizer: torch.optim.Optimizer) -> int:
    """Number of steps taken (Adam's ``step`` counter)."""
    steps = [s.get("step", 0) for s in optimizer.state_dict()["state"].values()]
    return int(max((float(s) for s in steps), default=0))


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`optimizer_tensors` for an optimiser built over the same parameters."""
    state_dict = optimizer.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)


def load_weights(module: torch.nn.Module, path: str | os.PathLike, *, what: str = "checkpoint") -> None:
    """Load a safetensors state dict into ``module``; CheckpointError if missing, corrupt or
    shaped for another architecture than the one its config describes."""
    path = Path(path)
    tensors = load_tensors(path, what=what)  # a missing or corrupt file is reported as such
    try:
        module.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{what}: {path} does not fit the network described by its config "
                              f"({str(e).splitlines()[0]})") from None


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The global torch, NumPy and ``random`` states SB3 draws from, as tensors + JSON."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    meta = {"numpy": [name, int(pos), int(has_gauss), float(cached)], "random": list(random.getstate()[1]),
            "random_version": random.getstate()[0]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(tensors["torch"])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate((meta["random_version"], tuple(meta["random"]), None))
