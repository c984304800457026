"""Shared neural building blocks and checkpoint I/O."""

from gailkit.nn.checkpoint import (
    CheckpointError,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)

__all__ = ["CheckpointError", "load_tensors", "read_json", "save_tensors", "write_json"]
