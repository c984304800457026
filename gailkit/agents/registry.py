"""Imitation algorithms by name.

An algorithm is one module in :mod:`gailkit.agents` with a run class decorated by
``@register("name")``; the class names its options as ``Config`` (a dataclass, from which
``gailkit imitate NAME`` generates its flags) and the option groups of its parts as ``parts``
(e.g. ``{"disc": DiscriminatorConfig}``: flags ``--disc-*``). A new algorithm is one new file:
:func:`algorithms` imports every module of the package to find them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from gailkit.errors import UsageError

__all__ = ["algorithm", "algorithm_of", "algorithms", "register"]

T = TypeVar("T", bound=type)
_REGISTRY: dict[str, type] = {}
_PACKAGE = "gailkit.agents"


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a run class available as ``gailkit imitate NAME``."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"imitation algorithm {name!r} is registered twice: {_REGISTRY[name]} and {cls}")
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__name__} needs a Config dataclass to be registered as {name!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def algorithms() -> dict[str, type]:
    """Every registered algorithm, by name (imports each module of :mod:`gailkit.agents` once)."""
    package = importlib.import_module(_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{_PACKAGE}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def algorithm(name: str) -> Any:
    """The run class registered as ``name``; UsageError listing the names otherwise."""
    found = algorithms()
    if name not in found:
        raise UsageError(f"unknown imitation algorithm {name!r}; choose one of {', '.join(found)}")
    return found[name]


def algorithm_of(config: Any) -> Any:
    """The run class whose ``Config`` is ``type(config)``."""
    for cls in algorithms().values():
        if type(config) is cls.Config:
            return cls
    raise TypeError(f"{type(config).__name__} is the config of no registered imitation algorithm")
