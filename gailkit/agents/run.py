"""Run directories: ownership, RNG state capture, learning-curve plots.

A run directory holds ``config.json``, ``demos.npz`` (a copy of the demonstrations, so the
run does not depend on where it was started), ``checkpoint/`` (weights, optimisers,
normalisers, RNG states and counters, written as one sealed folder), ``tb/`` (TensorBoard),
``eval.json`` and ``curve.png``. One process at a time writes it: :func:`claim_run_dir`
holds an exclusive lock on ``.lock`` for the whole run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gailkit.errors import RunLockedError, UsageError
from gailkit.nn.checkpoint import capture_rng, restore_rng
from gailkit.plots import figure, save_png

__all__ = ["DEMOS_COPY", "capture_rng", "claim_run_dir", "restore_rng", "save_learning_curve"]

LOCK = ".lock"
DEMOS_COPY = "demos.npz"  # the run's own copy of its demonstrations


@contextlib.contextmanager
def claim_run_dir(out: str | Path, *, resume: bool, what: str = "run") -> Iterator[Path]:
    """Own ``out`` for the duration of the ``with`` block.

    A new run needs ``out`` absent or empty; a resumed one needs ``out/config.json``. While the
    block runs, a second process claiming ``out`` fails at once with :class:`RunLockedError`.
    If a new run fails or is interrupted before writing ``config.json``, the folder it created
    is removed again, so a failed start leaves nothing behind.

    Raises:
        UsageError: ``out`` is a file, holds another run (new run), or holds no run (resume).
        RunLockedError: another process holds the lock.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; choose a directory for the {what}")
    created = not out.exists()
    top = out  # the highest folder this call makes: a run that fails to start leaves none of them
    while not top.parent.exists():
        top = top.parent
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLockedError(f"{out} is in use by another gailkit process (pid {holder}); wait for it to "
                                 "finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK)
        if resume and not (out / "config.json").is_file():
            raise UsageError(f"--resume: {out} holds no {what} (no config.json); start a new {what} "
                             "without --resume")
        if not resume and others:
            kind = f"a {what}" if (out / "config.json").is_file() else "other files"
            listing = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
            fix = "continue it with --resume, or choose" if what == "run" else "choose"
            raise UsageError(f"{out} already holds {kind} ({listing}); {fix} another --out, or delete the folder")
        try:
            yield out
        except BaseException:
            if created and not (out / "config.json").exists():
                shutil.rmtree(top, ignore_errors=True)
            raise
    finally:
        handle.close()


def save_learning_curve(path: str | Path, histories: dict[str, list[dict[str, float]]], *, title: str,
                        expert: float | None = None, random_return: float | None = None) -> Path:
    """Evaluation return against environment steps, one line per history, written atomically.

    A history with a single entry (BC: no environment steps) is drawn as a horizontal line; the
    others show a +/- one-std band. Expert and random returns are reference lines.
    """
    fig = figure(figsize=(6.5, 3.8), dpi=110)
    ax = fig.subplots()
    for i, (label, history) in enumerate(histories.items()):
        color = f"C{i}"
        if len(history) == 1:
            ax.axhline(history[0]["return_mean"], ls="-.", lw=1.5, color=color, label=f"{label} (no env steps)")
            continue
        steps = [h["steps"] for h in history]
        mean = np.array([h["return_mean"] for h in history])
        std = np.array([h["return_std"] for h in history])
        ax.plot(steps, mean, marker="o", ms=3, color=color, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.15)
    if expert is not None:
        ax.axhline(expert, color="black", ls="--", lw=1, label="expert")
    if random_return is not None:
        ax.axhline(random_return, color="grey", ls=":", lw=1, label="random")
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
