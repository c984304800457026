"""Train any registered imitation algorithm in a run directory, and read finished runs back.

:func:`imitate` takes an algorithm's config (``GAILConfig(...)``, ``DACConfig(...)``: the
algorithm is the one whose ``Config`` it is) and its parts' configs (``disc=...``, ``bc=...``).
"""

from __future__ import annotations

import dataclasses
import filecmp
import shlex
import shutil
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from gailkit.agents.base import Run, saved_run
from gailkit.agents.registry import algorithm, algorithm_of
from gailkit.agents.run import DEMOS_COPY, claim_run_dir, save_learning_curve
from gailkit.configs import config_to_argv
from gailkit.errors import UsageError
from gailkit.evaluation import normalised_return
from gailkit.nn.checkpoint import read_json

__all__ = ["evaluate_run", "imitate", "imitate_command", "imitate_or_resume", "load_run", "plot_runs",
           "summarise_runs"]

# what a resumed run may change: how far it goes, whether a bar is drawn, and where the run is
# (the folder was named by --out to find it)
RESUMABLE_CHANGES = frozenset({"steps", "progress", "out"})


def imitate(config: Any, *, resume: bool = False, given: Collection[str] | None = None,
            preset: Collection[str] = (), **parts: Any) -> dict[str, Any]:
    """Train the algorithm whose config ``config`` is, in ``config.out``; returns the final
    evaluation (with ``wall_time_s``).

    Args:
        config: an algorithm's ``Config``, e.g. :class:`gailkit.agents.gail.GAILConfig`.
        resume: continue the run in ``config.out`` from its checkpoint, up to ``config.steps``.
        given: with ``resume``, the options the caller set (config field names, and part fields
            as ``PART_NAME``, e.g. ``disc_lr``); each must equal the run's. ``None``: all of
            ``config`` (and of each part given) must.
        preset: with ``resume``, the options of ``given`` that ``--preset tuned`` set (a refusal
            names the preset, not a flag the user did not type).
        **parts: the configs of the algorithm's parts, e.g. ``disc=DiscriminatorConfig(...)``.

    Raises:
        UsageError: bad options, ``out`` holding another run (or none to resume), or a resumed
            run asked to change an option other than ``--steps``.
        RunLockedError: another process is writing ``config.out``.
        RunInterrupted: Ctrl-C; the message says what a ``--resume`` continues from.
    """
    cls = algorithm_of(config)
    unknown = sorted(set(parts) - set(cls.parts))
    if unknown:
        raise UsageError(f"{cls.name} has no part {', '.join(unknown)}; its parts: {', '.join(cls.parts) or 'none'}")
    start = time.perf_counter()
    with claim_run_dir(config.out, resume=resume):
        if resume:
            config, parts = _resumed_configs(cls, config, parts, given, preset)
        run = cls(config, **parts)
        run.train(resume=resume)
        result = dict(run.history[-1])
    result["wall_time_s"] = round(time.perf_counter() - start, 2)
    return result


def imitate_or_resume(config: Any, **parts: Any) -> list[dict[str, Any]]:
    """The evaluation history of the run in ``config.out``: reused when finished, resumed (or
    extended to more steps) when partial, else trained: what a benchmark that may be
    interrupted calls for each of its runs."""
    out = Path(config.out)
    eval_path = out / "eval.json"
    history = read_json(eval_path, what="run")["history"] if eval_path.exists() else []
    finished = (out / "bc").is_dir() or ((out / "policy.safetensors").exists() and history
                                        and history[-1]["steps"] >= getattr(config, "steps", 0))
    if finished:
        _check_finished(out, config, parts)
    else:
        resume = (out / "checkpoint").is_dir()
        if not resume and out.exists():  # stopped before its first checkpoint: nothing to resume
            shutil.rmtree(out)
        imitate(config, resume=resume, **parts)
    return read_json(eval_path, what="run")["history"]


def _check_finished(out: Path, config: Any, parts: dict[str, Any]) -> None:
    """UsageError unless the finished run in ``out`` is the one ``config`` and ``parts`` ask for
    (not a run of other options, e.g. of a former default, left in the same folder)."""
    cls, meta = algorithm_of(config), saved_run(out)
    if meta["algo"] != cls.name:
        raise UsageError(f"{out} holds a finished {meta['algo']} run, not {cls.name}: choose another folder")
    change = _changed_option(cls, config, parts, None, meta, cls.saved_configs(out)[1])
    if change is None and config.demos is not None and not _same_demos(Path(config.demos), out,
                                                                         meta["config"]["demos"]):
        change = ("--demos", config.demos, meta["config"]["demos"])
    if change is not None:
        flag, new, old = change
        raise UsageError(f"{out} holds a finished {cls.name} run with {flag} {old}, not {new}: remove the folder "
                         "to train this run there, or choose another folder")


def _resumed_configs(cls: type[Run], config: Any, parts: dict[str, Any], given: Collection[str] | None,
                     preset: Collection[str] = ()) -> tuple[Any, dict[str, Any]]:
    """The run's saved configs with the new ``steps``; UsageError naming any other change."""
    run = Path(config.out)
    meta = saved_run(run)
    if meta["algo"] != cls.name:
        raise UsageError(f"--resume: {run} holds a {meta['algo']} run, not {cls.name}; resume it with "
                         f"`gailkit imitate {meta['algo']} ... --resume`, or choose another --out")
    if not cls.resumable:
        raise UsageError(f"--resume: {run} is a {cls.name} run, which has no checkpoint (it trains in seconds); "
                         "start a new run in another --out")
    saved, saved_parts = cls.saved_configs(run, steps=config.steps, progress=config.progress)
    change = _changed_option(cls, config, parts, given, meta, saved_parts)
    if change is not None:
        flag, new, old = change
        if not flag.startswith("--"):  # a field the algorithm sets: the run is of an older gailkit
            raise UsageError(f"--resume: {run} holds a run with {flag} {old}, where gailkit now sets {new}; "
                             "start a new run in another --out")
        if flag[2:].replace("-", "_") in preset:
            raise UsageError(f"--resume: --preset tuned sets {flag} {new}, but the run has {flag} {old}: drop "
                             f"--preset, or give {flag} {old} beside it (a resumed run keeps its options)")
        raise UsageError(f"--resume: {flag} {new} differs from the run's {flag} {old}; a resumed run keeps "
                         f"its options (only --steps may change): drop {flag}, or start a new run in "
                         "another --out")
    if ((given is None or "demos" in given) and config.demos is not None
            and not _same_demos(Path(config.demos), run, meta["config"]["demos"])):
        raise UsageError(f"--resume: --demos {config.demos} holds other demonstrations than the run's (recorded "
                         f"from {meta['config']['demos']}, kept in {run / DEMOS_COPY}); drop --demos or pass "
                         "that file")
    return saved, saved_parts


def _changed_option(cls: type[Run], config: Any, parts: dict[str, Any], given: Collection[str] | None,
                    meta: dict[str, Any], saved_parts: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """The first option of ``config`` and ``parts`` (those in ``given``; all when ``None``) that
    differs from the saved run's, as ``(flag, ours, the run's)``; ``steps``, ``progress``, ``out``
    and ``demos`` aside."""
    ours, original = dataclasses.asdict(config), meta["config"]
    # options added after the run was written: it ran with their defaults (of then, where they changed)
    defaults = {**{f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING},
                **cls.former_defaults}
    for k, new in ours.items():
        if k in RESUMABLE_CHANGES or k == "demos" or (given is not None and k not in given) or new is None:
            continue  # new None: "the default", which the run resolved when it started
        old = original.get(k, defaults.get(k))
        if not cls.same_option(k, new, old, meta):
            return f"--{k.replace('_', '-')}", new, "left at its default" if old is None else old
    resolved = cls.resolve_parts(config, parts)
    for part in parts:
        mine = dataclasses.asdict(resolved[part])
        for k, old in dataclasses.asdict(saved_parts[part]).items():
            if (given is None or f"{part}_{k}" in given) and str(mine[k]) != str(old):
                # a field the algorithm sets (e.g. the part's seed, the run's) has no flag
                flag = f"{part} {k}" if k in cls.fixed.get(part, ()) else f"--{part}-{k.replace('_', '-')}"
                return flag, mine[k], old
    return None


def imitate_command(config: Any, out: str | Path | None = None, **parts: Any) -> str:
    """The ``gailkit imitate`` command line that trains the run :func:`imitate` would train from
    ``config`` and ``parts`` (in ``out`` when given, else in ``config.out``; progress bar as the
    command's default)."""
    cls = algorithm_of(config)
    if out is not None:
        config = dataclasses.replace(config, out=Path(out))
    argv = ["gailkit", "imitate", cls.name, *config_to_argv(config, skip=("progress",))]
    for part, part_config in parts.items():
        argv += config_to_argv(part_config, prefix=part, skip=("seed", *cls.fixed.get(part, ())))
    return shlex.join(argv)


def _same_demos(given: Path, run: Path, original: str) -> bool:
    """Whether ``given`` names the run's demonstrations: the file it was started with (wherever
    the command runs from now), or a file with the same bytes as the run's own copy."""
    if given.resolve() == Path(original).resolve():
        return True
    copy = run / DEMOS_COPY
    return copy.is_file() and given.is_file() and filecmp.cmp(given, copy, shallow=False)


def load_run(directory: str | Path) -> Run:
    """Rebuild a run from its directory, with its final (or latest checkpoint's) policy."""
    meta = saved_run(directory)
    return algorithm(meta["algo"]).load(directory)


def evaluate_run(directory: str | Path, episodes: int = 20) -> dict[str, Any]:
    """Evaluate the final policy of a run directory on the evaluation seeds.

    Returns:
        ``return_mean``, ``return_std``, ``episodes``, ``algo`` and, when the demonstrations
        carried an expert card, ``normalised`` = (R - random) / (expert - random) with both
        references.
    """
    if episodes < 1:
        raise UsageError(f"--episodes {episodes}: must be >= 1")
    run = load_run(directory)
    out = run.evaluate(episodes)
    out.pop("steps", None)
    out.update(algo=run.name, episodes=episodes, expert_return=run.expert_return, random_return=run.random_return)
    norm = normalised_return(out["return_mean"], run.expert_return, run.random_return)
    if norm is not None:
        out["normalised"] = norm
    return out


def _histories(runs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Each run's ``eval.json``; UsageError for a run with no evaluation yet."""
    data = {}
    for name, run in runs.items():
        d = read_json(Path(run) / "eval.json", what="run")
        if not isinstance(d.get("history"), list) or not d["history"]:
            raise UsageError(f"{run}/eval.json holds no evaluation yet; let the run reach its first "
                             "evaluation, or leave it out of the report")
        data[name] = d
    return data


def plot_runs(path: str | Path, runs: dict[str, Path], *, title: str) -> Path:
    """One learning-curve PNG of several runs' ``eval.json`` histories."""
    data = _histories(runs)
    refs = next(iter(data.values()), {})
    return save_learning_curve(path, {label: d["history"] for label, d in data.items()}, title=title,
                               expert=refs.get("expert_return"), random_return=refs.get("random_return"))


def summarise_runs(runs: dict[str, Path]) -> list[dict[str, Any]]:
    """Rows ``{name, return_mean, return_std, normalised, steps}``: random, expert, then each run's
    final evaluation (from its ``eval.json``)."""
    rows: list[dict[str, Any]] = []
    refs: dict[str, Any] = {}
    for name, data in _histories(runs).items():
        refs = refs or data
        final = data["history"][-1]
        rows.append({"name": name, "return_mean": final["return_mean"], "return_std": final["return_std"],
                     "normalised": final.get("normalised"), "steps": final["steps"]})
    head = []
    if refs.get("random_return") is not None:
        head.append({"name": "random", "return_mean": refs["random_return"], "return_std": None,
                     "normalised": 0.0, "steps": None})
    if refs.get("expert_return") is not None:
        head.append({"name": "expert", "return_mean": refs["expert_return"], "return_std": None,
                     "normalised": 1.0, "steps": None})
    return head + rows
