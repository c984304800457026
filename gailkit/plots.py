"""Figures for files (learning curves, loss panels, piano rolls), drawn without pyplot.

A figure made here belongs to no pyplot window manager: drawing one leaves the caller's matplotlib
backend and open figures as they were (``matplotlib.use("Agg")`` would switch a notebook's backend),
and needs no ``close``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gailkit.files import atomic_write

__all__ = ["figure", "save_png"]


def figure(**kwargs: Any):
    """A :class:`matplotlib.figure.Figure` (``kwargs``: its own, e.g. ``figsize``, ``dpi``) on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | os.PathLike) -> Path:
    """``fig`` as a PNG at ``path``, written atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
