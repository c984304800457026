"""Checkpoint I/O without pickle: tensors in safetensors, metadata in JSON, atomic writes.

Every write goes to a temporary file in the target directory and is renamed into place, so
an interrupted run leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError",
    "atomic_dir",
    "atomic_write",
    "capture_rng",
    "load_optimizer_tensors",
    "load_tensors",
    "load_weights",
    "optimizer_steps",
    "optimizer_tensors",
    "read_json",
    "recover_dir",
    "restore_rng",
    "save_tensors",
    "write_json",
]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or belongs to something else; the message says which."""


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, then rename the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` on an empty folder beside ``path``, then swap it in for ``path``.

    A crash leaves the previous folder (at ``path``, or at ``.NAME.old`` between the two
    renames, which :func:`recover_dir` moves back) or the new one, never half of one.
    """
    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def recover_dir(path: str | os.PathLike) -> Path:
    """``path``, moved back from ``.NAME.old`` first if an :func:`atomic_dir` swap stopped halfway."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        old.rename(path)
    return path


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | os.PathLike, *, what: str = "checkpoint") -> dict[str, Any]:
    """Read a JSON file, raising :class:`CheckpointError` with the path if absent or broken."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} is missing; is {path.parent} a gailkit {what} directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{what}: {path} is not valid JSON ({e})") from None


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor]) -> Path:
    """Save a flat name -> tensor mapping as safetensors, atomically (tensors made contiguous)."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
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
    try:
        module.load_state_dict(load_tensors(path, what=what))
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
