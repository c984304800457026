"""Run directories: RNG state capture, learning-curve plots, TensorBoard scalars.

A run directory holds ``config.json``, ``checkpoint/`` (weights, optimisers, normalisers,
RNG states and counters, every file written atomically), ``tb/`` (TensorBoard), ``eval.json``
and ``curve.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gailkit.nn.checkpoint import capture_rng, restore_rng

__all__ = ["capture_rng", "restore_rng", "save_learning_curve"]  # the RNG pair lives in gailkit.nn.checkpoint


def save_learning_curve(path: str | Path, histories: dict[str, list[dict[str, float]]], *, title: str,
                        expert: float | None = None, random_return: float | None = None) -> Path:
    """Evaluation return against environment steps, one line per history, written atomically.

    A history with a single entry (BC: no environment steps) is drawn as a horizontal line; the
    others show a +/- one-std band. Expert and random returns are reference lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=110)
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
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
