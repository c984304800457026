"""Atomic file writes, light to import (no torch): a reader sees the old file or the new one.

:mod:`gailkit.nn.checkpoint` builds checkpoints on these; :mod:`gailkit.data.demos` writes
demonstration files with them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_json"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a new file beside ``path``, then rename it to ``path``.

    The temporary file is created with the mode ``open()`` would give (0666 less the umask),
    and removed again if ``write`` fails or the process is interrupted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
