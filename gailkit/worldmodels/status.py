"""Where a world-model run folder stands: ``gailkit worldmodel status --dir D``.

A pipeline (collect -> V -> M -> C, or ``iterate``) runs for hours and resumes across sessions;
:func:`run_status` reads what each stage left in the folder the CLI writes (``data/``, ``model/``,
``controller_*/``, ``iterations/``) and says, stage by stage, what is done, what stopped and
how it goes on. It only reads, and reads no frames.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from gailkit.errors import UsageError
from gailkit.nn.checkpoint import read_json, read_progress
from gailkit.worldmodels.train import STARTED, checkpoint_dir, stopped_training

__all__ = ["run_status"]


def _data(data: Path) -> str:
    if not (data / "meta.json").exists():
        return "not collected (`collect`)"
    meta = read_json(data / "meta.json", what="rollout data")
    episodes = steps = unreadable = 0
    for path in sorted(data.glob("chunk_*.npz")):
        try:
            with np.load(path, allow_pickle=False) as chunk:  # reads the lengths, not the frames
                lengths = chunk["lengths"]
        except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError):
            unreadable += 1
            continue
        episodes, steps = episodes + len(lengths), steps + int(lengths.sum())
    state = f"{episodes} of {meta['episodes']} episodes ({steps:,} steps) of {meta['env_id']}"
    if unreadable:
        state += f"; {unreadable} chunk(s) cut short, recorded again by `collect`"
    elif episodes < meta["episodes"]:
        state += "; `collect` goes on"
    return state


def _loss(record: dict) -> str:
    key = "loss" if "loss" in record else "nll"  # V's ELBO; M's mixture negative log-likelihood
    return f"{key} {record[key]:.4g}"


def _training(model: Path, part: str) -> str:
    command = "train-vae" if part == "V" else "train-mdn"
    if stopped_training(model, part):
        found = read_progress(checkpoint_dir(model, part), what=f"{part}'s training checkpoint")
        position, ensemble = found["position"], found["setup"].get("ensemble", 1)
        where = f"epoch {position['epoch']}" + (f" of M {position['member'] + 1} of {ensemble}" if ensemble > 1 else "")
        return f"stopped after {where} (last: {_loss(found['history'][-1])}): `{command} --resume` goes on"
    started = checkpoint_dir(model, part) / STARTED
    if started.exists():  # no checkpoint yet
        begun = read_json(started, what=f"{part}'s training start")
        each = f" each of {begun['ensemble']} M's" if begun["ensemble"] > 1 else ""
        return (f"begun {begun['started']} ({begun['epochs']} epochs{each}), no epoch finished yet: under way, or "
                f"stopped in its first epoch (`{command}` starts it again)")
    history = (read_json(model / "training.json", what="training history")
               if (model / "training.json").exists() else {}).get(part)
    if history:
        members = len({r.get("member", 0) for r in history})
        each = f", {members} M's" if members > 1 else ""
        return f"trained, {len(history) // members} epochs{each} (last: {_loss(history[-1])})"
    if not (model / "training.json").exists() and (model / "world_model.json").exists():
        return "saved by a training from before training.json: its epochs are not known"
    return f"not trained (`{command}`)"


def _controller(folder: Path) -> str:
    cli = re.fullmatch(r"controller_(dream|real)(_vonly)?", folder.name)  # the CLI's folders: --where, --v-only
    command = f"train-controller --where {cli[1]}{' --v-only' if cli[2] else ''}" if cli else None
    if not (folder / "cmaes.json").exists():
        again = f"`{command}` starts it again" if command else "the search starts again"
        return f"stopped in its first generation: {again}"
    saved = read_json(folder / "history.json", what="controller")
    done = int(read_json(folder / "cmaes.json", what="CMA-ES")["generation"])
    history, target = saved["history"][:done], saved["config"]["generations"]
    state = f"{done} of {target} generations"
    if done < target:
        state += f" (`{command} --resume` goes on)" if command else " (the search goes on with `resume=True`)"
    if history:
        state += f"; last: candidates' mean {history[-1]['mean']:.1f}, best {history[-1]['best']:.1f}"
    return state


def _iterations(folder: Path) -> str:
    state = read_json(folder / "iterations.json", what="iterative run")
    records, target = state["records"], state["config"]["iterations"]
    text = f"{len(records)} of {target} rounds" + (" (`iterate` goes on)" if len(records) < target else "")
    scored = [r for r in records if "select_return" in r]
    if scored:
        best = max(scored, key=lambda r: r["select_return"])  # the earlier on a tie, as kept_iteration
        text += f"; the best on the selection tracks: round {best['iteration']} ({best['select_return']:.1f})"
    return text


def run_status(root: str | Path) -> list[tuple[str, str]]:
    """``(stage, state)`` rows for the run folder ``root``: the data, V, M, each controller and the
    iterative rounds, as far as they got."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"no run folder {root}: pass --dir the folder `gailkit worldmodel collect --dir` wrote")
    rows = [("data", _data(root / "data")), ("V", _training(root / "model", "V")),
            ("M", _training(root / "model", "M"))]
    for folder in sorted(root.glob("controller_*")):
        if (folder / "history.json").exists():
            rows.append((folder.name, _controller(folder)))
    if (root / "iterations" / "iterations.json").exists():
        rows.append(("iterations", _iterations(root / "iterations")))
    return rows
