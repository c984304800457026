"""Package namespaces whose heavy members load on first use.

``gailkit --help`` and the other light paths import configs and presets only; torch,
stable-baselines3 and the networks load when a name that needs them is first touched.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` exporting ``name -> module`` lazily.

    Example (in a package's ``__init__.py``)::

        __getattr__, __dir__ = lazy_exports(__name__, {"BC": "gailkit.agents.bc"})
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        # Importing a submodule binds it on the package; where the export shares the submodule's
        # name (gailkit.agents.imitate, the function, in gailkit/agents/imitate.py) the export wins,
        # as an eager ``from .imitate import imitate`` would have it.
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
