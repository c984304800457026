"""Command-line flags generated from the typed dataclass configs.

Each dataclass field becomes ``--field-name`` with its type, default and the ``help`` text in
the field's metadata; fields without a default are required. ``bool`` fields get
``--flag/--no-flag``. Keeps the CLI and the library's configs from drifting apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["add_config_args", "config_from_args"]

C = TypeVar("C")


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``; plain types unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_config_args(parser: argparse.ArgumentParser, cls: type, *, positional: tuple[str, ...] = ()) -> None:
    """Add one flag per field of dataclass ``cls`` (fields in ``positional`` become arguments)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        has_default = f.default is not dataclasses.MISSING
        if has_default and f.default is not None:
            help_text += f" (default: {f.default})"
        if f.name in positional:
            parser.add_argument(f.name, type=tp, help=help_text, metavar=f.name.upper())
        elif tp is bool:
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name,
                                action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        else:
            parser.add_argument(
                f"--{f.name.replace('_', '-')}", dest=f.name, type=tp if tp in (int, float, str, Path) else str,
                default=f.default if has_default else None, required=not has_default, help=help_text,
            )


def config_from_args(cls: type[C], args: argparse.Namespace) -> C:
    """Build ``cls`` from the parsed flags that :func:`add_config_args` added."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
