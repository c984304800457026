"""Progress bars that draw on a terminal and stay silent in logs.

tqdm redraws its line with carriage returns; in a file or a CI log those redraws pile up as
dozens of updates on one line. Every bar in gailkit comes from :func:`progress_bar`, which
draws only where someone watches: a terminal (stderr is a TTY) or a Jupyter notebook (where
tqdm draws a widget, not text). :func:`show_progress` gives the same decision for libraries
that take a flag instead of a bar (Stable-Baselines3's ``learn(progress_bar=...)``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["progress_bar", "show_progress"]


def _in_notebook() -> bool:
    """Whether tqdm.auto picked its notebook widget (decided by tqdm when it is imported)."""
    from tqdm.auto import tqdm as auto_tqdm

    return any(cls.__module__ == "tqdm.notebook" for cls in auto_tqdm.__mro__)


def show_progress(enabled: bool = True, stream: IO[str] | None = None) -> bool:
    """Whether to draw a progress bar: ``enabled`` and ``stream`` (default: stderr) is a TTY or
    we run in a notebook.

    Args:
        enabled: the caller's wish (``--no-progress`` gives False).
        stream: where the bar would be written; None: ``sys.stderr`` at call time.
    """
    if not enabled:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed or detached stream is no terminal
        tty = False
    return tty or _in_notebook()


def progress_bar(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str | None = None,
                 enabled: bool = True, file: IO[str] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm.auto`` bar that is disabled unless :func:`show_progress` says someone watches.

    A disabled bar still iterates ``iterable`` and accepts ``update`` / ``set_postfix`` /
    ``close``, so callers use it the same way in both cases.

    Args:
        iterable: what to iterate (optional, as in tqdm).
        total: expected number of iterations (default: ``len(iterable)`` where it has one).
        desc: the bar's label.
        enabled: False turns the bar off everywhere (e.g. ``--no-progress``).
        file: where to draw; None: ``sys.stderr`` at call time.
        **kwargs: passed on to tqdm (``unit``, ``initial``, ``leave``, ...).
    """
    from tqdm.auto import tqdm as auto_tqdm

    file = sys.stderr if file is None else file
    return auto_tqdm(iterable, total=total, desc=desc, file=file,
                     disable=not show_progress(enabled, file), **kwargs)
