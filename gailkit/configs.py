"""Command-line flags generated from the typed dataclass configs.

Each dataclass field becomes ``--field-name`` with its type, default and the ``help`` text in
the field's metadata; fields without a default are required. ``bool`` fields get
``--flag/--no-flag``. Keeps the CLI and the library's configs from drifting apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from gailkit.errors import UsageError

__all__ = ["CommandParser", "add_config_args", "check_bounds", "check_types", "config_from_args", "config_from_dict",
           "doc", "given_fields", "int_in", "json_fields"]

C = TypeVar("C")


class CommandParser(argparse.ArgumentParser):
    """The parser of every gailkit command and script. A usage error is one line, the problem and
    where the options are listed, with exit status 2, not argparse's usage (``gailkit imitate ALGO``'s
    is 40 lines). No abbreviated flags (``--see`` is not ``--seed``): a resumed run compares the
    flags it was given by name (:func:`given_fields`). A script's ``prog`` is how it was run
    (``python scripts/bench_envs.py``). Subparsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        if "prog" not in kwargs and not args and sys.argv and sys.argv[0].endswith(".py"):
            kwargs["prog"] = f"python {sys.argv[0]}"
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def doc(text: str) -> dict[str, str]:
    """Field metadata carrying the help text: ``dataclasses.field(default=1, metadata=doc("..."))``."""
    return {"help": text}


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``; plain types unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_config_args(parser: argparse.ArgumentParser, cls: type, *, positional: tuple[str, ...] = (),
                    prefix: str = "", skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of dataclass ``cls``.

    Args:
        positional: fields that become positional arguments.
        prefix: flag and destination prefix, e.g. ``"disc"`` gives ``--disc-lr`` -> ``disc_lr``.
        skip: fields left to their defaults (not exposed).
    """
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{prefix} options") if prefix else parser
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        name = f"{prefix}_{f.name}" if prefix else f.name
        tp = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        has_default = f.default is not dataclasses.MISSING
        if has_default and f.default is not None:
            help_text += f" (default: {f.default})"
        flag = f"--{name.replace('_', '-')}"
        if f.name in positional:
            group.add_argument(name, type=tp, help=help_text, metavar=f.name.upper())
        elif tp is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=f.default,
                               help=help_text)
        else:
            group.add_argument(
                flag, dest=name, type=tp if tp in (int, float, str, Path) else str,
                default=f.default if has_default else None, required=not has_default, help=help_text,
            )


def config_from_args(cls: type[C], args: argparse.Namespace, *, prefix: str = "", **overrides: Any) -> C:
    """Build ``cls`` from the parsed flags that :func:`add_config_args` added."""
    values = {}
    for f in dataclasses.fields(cls):
        dest = f"{prefix}_{f.name}" if prefix else f.name
        if hasattr(args, dest):
            values[f.name] = getattr(args, dest)
    return cls(**{**values, **overrides})


def config_to_argv(config: Any, *, prefix: str = "", skip: tuple[str, ...] = ()) -> list[str]:
    """The flags from which :func:`add_config_args` and :func:`config_from_args` rebuild ``config``:
    one per field that differs from its default (and every required one), ``skip`` aside.

    Raises:
        ValueError: a field is None where its default is not (no flag says "none").
    """
    argv = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in skip or (f.default is not dataclasses.MISSING and value == f.default):
            continue
        flag = "--" + (f"{prefix}_{f.name}" if prefix else f.name).replace("_", "-")
        if value is None:
            raise ValueError(f"{type(config).__name__}.{f.name} is None, which {flag} cannot give")
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, tuple):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def json_fields(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (paths as strings); :func:`config_from_dict` inverts it."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(cls: type[C], data: Mapping[str, Any], *, source: str) -> C:
    """Rebuild ``cls`` from a saved ``dataclasses.asdict`` mapping (``source`` names the file).

    Raises:
        UsageError: ``data`` holds a field ``cls`` does not have or lacks a required one (a file
            damaged or written by another version of gailkit); the message names the field.
    """
    if not isinstance(data, Mapping):
        raise UsageError(f"{source}: expected a JSON object of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    missing = sorted(name for name, f in fields.items() if name not in data and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if unknown or missing:
        what = "; ".join(part for part in (f"unknown {unknown}" if unknown else "",
                                           f"missing {missing}" if missing else "") if part)
        raise UsageError(f"{source}: {cls.__name__} fields do not match this gailkit ({what}); the file is "
                         "damaged or was written by another version")
    hints = typing.get_type_hints(cls)
    return cls(**{k: (Path(v) if isinstance(v, str) and _base_type(hints[k]) is Path else v)
                  for k, v in data.items()})


def given_fields(cls: type, argv: Sequence[str], *, prefix: str = "") -> set[str]:
    """Names of the fields of ``cls`` whose flags appear in ``argv`` (given by the user, as
    opposed to left at their defaults). The parser must not accept abbreviated flags."""
    given = set()
    for f in dataclasses.fields(cls):
        flag = f"--{(f'{prefix}_{f.name}' if prefix else f.name).replace('_', '-')}"
        negated = "--no-" + flag[2:]
        if any(a in (flag, negated) or a.startswith(flag + "=") for a in argv):
            given.add(f.name)
    return given


_TYPE_CHECKS: dict[type, Callable[[Any], bool]] = {
    bool: lambda v: isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    int: lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),  # NumPy ints count
    float: lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def check_types(config: Any) -> None:
    """UsageError unless each bool / int / float / str field of dataclass ``config`` holds one
    (``None`` where the field is optional); fields of other types are not checked."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, tp = getattr(config, f.name), hints[f.name]
        allowed = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        if value is None and type(None) in allowed:
            continue
        checked = [t for t in allowed if t in _TYPE_CHECKS]
        if checked and not any(_TYPE_CHECKS[t](value) for t in checked):
            raise UsageError(f"{_flag(f.name)} {value!r}: must be {' or '.join(t.__name__ for t in checked)}, "
                             f"not {type(value).__name__}")


def _bound(text: str) -> float:
    """``"inf"``, ``"-inf"``, ``"2**32"`` or a plain number."""
    text = text.strip()
    if text.lstrip("-") == "inf":
        return -math.inf if text.startswith("-") else math.inf
    base, _, power = text.partition("**")
    return float(base) ** float(power) if power else float(base)


def check_bounds(config: Any, bounds: Mapping[str, str]) -> None:
    """UsageError naming the option unless each field in ``bounds`` lies in its interval.

    Args:
        bounds: field name -> interval such as ``"[1, inf)"``, ``"(0, 1]"`` or ``"[0, 2**32)"``;
            a ``None`` value is not checked, NaN lies in no interval.
    """
    for name, rule in bounds.items():
        value = getattr(config, name)
        if value is None:
            continue
        low_text, high_text = rule[1:-1].split(",")
        low, high = _bound(low_text), _bound(high_text)
        above = value > low or (rule[0] == "[" and value == low)
        below = value < high or (rule[-1] == "]" and value == high)
        if not (above and below):
            what = f"{'>=' if rule[0] == '[' else '>'} {low_text.strip()}" if math.isinf(high) else f"in {rule}"
            raise UsageError(f"{_flag(name)} {value!r}: must be {what}")


def float_above_zero(*, or_equal: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a number > 0 (``or_equal``: >= 0), refused up front (exit 2) otherwise."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= 0 if or_equal else value > 0):
            raise argparse.ArgumentTypeError(f"{value}: must be {'>=' if or_equal else '>'} 0")
        return value

    return parse


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high)``, so argparse refuses anything else up
    front (exit 2) before a model is loaded or a file written."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be >= {low}")
        if high is not None and value >= high:
            raise argparse.ArgumentTypeError(f"{value}: must be < {high}")
        return value

    return parse
