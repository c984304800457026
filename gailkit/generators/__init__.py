"""Standalone generators (digits, images, text, music) behind one protocol.

Every model is a :class:`~gailkit.generators.base.Generator`: ``fit(data) -> self``,
``sample(n, *, seed)``, ``evaluate(data) -> dict[str, float]``, ``save(dir)`` and
``classmethod load(dir)``. Models register under ``(family, name)``; a family's module is
imported only when one of its models is asked for, so ``import gailkit`` stays light and the
text family's transformers import is paid only by those who use it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from gailkit.errors import UsageError
from gailkit.nn.checkpoint import CheckpointError, read_json

if TYPE_CHECKING:
    from gailkit.generators.base import Generator

__all__ = ["FAMILIES", "register", "get_generator", "available", "load_generator", "load_family_data"]

# family -> module that registers its models on import. Each such module also defines
# ``load_data(spec: str | None, *, split: str) -> data`` (split: "train", "test" or "all") and
# ``DATA_HELP`` (the --data forms it understands), used by `gailkit generate`.
FAMILIES: dict[str, str] = {
    "digits": "gailkit.generators.digits",
    "image": "gailkit.generators.image",
    "text": "gailkit.generators.text",
    "music": "gailkit.generators.music",
}
_REGISTRY: dict[tuple[str, str], type[Generator]] = {}


def register(family: str, name: str):
    """Class decorator: make a :class:`Generator` subclass available as ``(family, name)``."""

    def wrap(cls: type[Generator]) -> type[Generator]:
        if family not in FAMILIES:
            raise ValueError(f"unknown generator family {family!r}; add it to gailkit.generators.FAMILIES")
        cls.family, cls.name = family, name
        _REGISTRY[(family, name)] = cls
        return cls

    return wrap


def _import_family(family: str) -> None:
    if family not in FAMILIES:
        raise UsageError(f"unknown generator family {family!r}; choose from {', '.join(FAMILIES)}")
    try:
        importlib.import_module(FAMILIES[family])
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("gailkit"):
            raise UsageError(f"generator family {family!r} is not built yet ({e.name} is missing)") from None
        raise UsageError(f"generator family {family!r} needs {e.name!r}: pip install 'gailkit[{family}]'") from None


def available(family: str | None = None) -> dict[str, list[str]]:
    """``{family: [model names]}`` for the families that import on this install."""
    out: dict[str, list[str]] = {}
    for fam in [family] if family else list(FAMILIES):
        try:
            _import_family(fam)
        except ValueError:
            if family:
                raise
            continue
        out[fam] = sorted(n for f, n in _REGISTRY if f == fam)
    return out


def get_generator(family: str, name: str) -> type[Generator]:
    """The class registered as ``(family, name)``; ValueError listing the choices otherwise."""
    _import_family(family)
    try:
        return _REGISTRY[(family, name)]
    except KeyError:
        names = sorted(n for f, n in _REGISTRY if f == family)
        raise UsageError(f"no {family} model called {name!r}; choose from {', '.join(names)}") from None


def load_generator(directory: str | Path) -> Generator:
    """Load whatever generator was saved in ``directory`` (its ``config.json`` names the model)."""
    meta = read_json(Path(directory) / "config.json", what="generator")
    if meta.get("format") != "gailkit.generator":
        raise CheckpointError(f"generator: {directory} holds no gailkit generator (config.json has no "
                              f"'format': 'gailkit.generator'); point at the --out directory of "
                              f"`gailkit generate train`")
    return get_generator(meta["family"], meta["model"]).load(directory)


def load_family_data(family: str, spec: str | None = None, *, split: str = "train"):
    """A family's dataset from a ``--data`` spec (None: the family's offline default)."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    _import_family(family)
    return importlib.import_module(FAMILIES[family]).load_data(spec, split=split)
