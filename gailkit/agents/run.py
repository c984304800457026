"""Run directories: RNG state capture, learning-curve plots, TensorBoard scalars.

A run directory holds ``config.json``, ``checkpoint/`` (weights, optimisers, normalisers,
RNG states and counters, every file written atomically), ``tb/`` (TensorBoard), ``eval.json``
and ``curve.png``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "restore_rng", "save_learning_curve"]


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The global torch, NumPy and ``random`` states SB3 draws from, as tensors + JSON."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    meta = {"numpy": [name, int(pos), int(has_gauss), float(cached)], "random": list(random.getstate()[1]),
            "random_version": random.getstate()[0]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(tensors["torch"])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate((meta["random_version"], tuple(meta["random"]), None))


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
