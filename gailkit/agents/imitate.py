"""One entry point per imitation algorithm, and evaluation of a finished run directory."""

from __future__ import annotations

import dataclasses
import filecmp
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from gailkit.agents.bc import BC, BCConfig
from gailkit.agents.configs import ImitationConfig
from gailkit.agents.dac import DAC
from gailkit.agents.experts import evaluate_policy
from gailkit.agents.imitation import (
    AdversarialImitation,
    ImitationRun,
    normalised_return,
    resolve_disc_config,
    saved_configs,
)
from gailkit.agents.run import DEMOS_COPY, claim_run_dir, save_learning_curve
from gailkit.configs import json_fields
from gailkit.data.demos import load_demos
from gailkit.discriminators import DiscriminatorConfig
from gailkit.envs.make import make_env
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import load_weights, read_json, verify_dir, write_json

__all__ = ["evaluate_run", "imitate", "load_run", "plot_runs", "summarise_runs"]

EVAL_SEED = 10_000_000  # evaluation episodes never share seeds with training
# what a resumed run may change: how far it goes, whether a bar is drawn, and where the run is
# (the folder was named by --out to find it)
RESUMABLE_CHANGES = frozenset({"steps", "progress", "out"})


def imitate(config: ImitationConfig, disc_config: DiscriminatorConfig | None = None, *,
            resume: bool = False, given: Collection[str] | None = None) -> dict[str, Any]:
    """Train ``config.algo`` in ``config.out`` and return the final evaluation (with ``wall_time_s``).

    Args:
        resume: continue the run in ``config.out`` from its checkpoint, up to ``config.steps``.
        given: with ``resume``, the options the caller set (imitation field names, and
            discriminator fields as ``disc_NAME``); each must equal the run's. ``None``: all of
            ``config`` (and of ``disc_config`` when given) must.

    Raises:
        UsageError: bad options, ``out`` holding another run (or none to resume), or a resumed
            run asked to change an option other than ``--steps``.
        RunLockedError: another process is writing ``config.out``.
        RunInterrupted: Ctrl-C; the message says what a ``--resume`` continues from.
    """
    start = time.perf_counter()
    with claim_run_dir(config.out, resume=resume):
        if resume:
            config, disc_config = _resumed_configs(config, disc_config, given)
        if config.algo == "bc":
            result = _train_bc(config)
        else:
            trainer = (DAC if config.algo == "dac" else AdversarialImitation)(config, disc_config)
            trainer.train(resume=resume)
            result = dict(trainer.history[-1])
    result["wall_time_s"] = round(time.perf_counter() - start, 2)
    return result


def _resumed_configs(config: ImitationConfig, disc_config: DiscriminatorConfig | None,
                     given: Collection[str] | None) -> tuple[ImitationConfig, DiscriminatorConfig]:
    """The run's saved configs with the new ``steps``; UsageError naming any other change."""
    run = Path(config.out)
    saved, saved_disc = saved_configs(run, steps=config.steps, progress=config.progress)
    if saved.algo == "bc":
        raise UsageError(f"--resume: {run} is a BC run, which has no checkpoint (it trains in seconds); "
                         "start a new run in another --out")
    original = read_json(run / "config.json", what="run")["imitation"]
    ours = dataclasses.asdict(config)
    pairs = [(f"--{k.replace('_', '-')}", ours[k], original.get(k)) for k in ours
             if k not in RESUMABLE_CHANGES and k != "demos" and (given is None or k in given)]
    if disc_config is not None:
        mine = dataclasses.asdict(resolve_disc_config(config, disc_config))
        pairs += [(f"--disc-{k.replace('_', '-')}", mine[k], v) for k, v in dataclasses.asdict(saved_disc).items()
                  if k != "seed" and (given is None or f"disc_{k}" in given)]
    for flag, new, old in pairs:
        if str(new) != str(old):
            raise UsageError(f"--resume: {flag} {new} differs from the run's {flag} {old}; a resumed run keeps "
                             f"its options (only --steps may change): drop {flag}, or start a new run in "
                             "another --out")
    if (given is None or "demos" in given) and not _same_demos(Path(config.demos), run, original["demos"]):
        raise UsageError(f"--resume: --demos {config.demos} holds other demonstrations than the run's (recorded "
                         f"from {original['demos']}, kept in {run / DEMOS_COPY}); drop --demos or pass that file")
    return saved, saved_disc


def _same_demos(given: Path, run: Path, original: str) -> bool:
    """Whether ``given`` names the run's demonstrations: the file it was started with (wherever
    the command runs from now), or a file with the same bytes as the run's own copy."""
    if given.resolve() == Path(original).resolve():
        return True
    copy = run / DEMOS_COPY
    return copy.is_file() and given.is_file() and filecmp.cmp(given, copy, shallow=False)


def _train_bc(config: ImitationConfig) -> dict[str, Any]:
    env = make_env(config.env)
    demos = load_demos(config.demos, env=env)
    bc_config = BCConfig(steps=config.bc_steps or 2000, seed=config.seed)
    start = time.perf_counter()
    bc = BC(env.observation_space, env.action_space, bc_config).fit(demos, progress=config.progress)
    fit_seconds = round(time.perf_counter() - start, 2)
    out = Path(config.out)
    bc.save(out / "bc")
    card = demos.metadata.get("expert_card") or {}
    write_json(out / "config.json", {
        "imitation": {**json_fields(config), "demos": str(Path(config.demos).resolve())},
        "bc": dataclasses.asdict(bc_config),
        "expert_return": card.get("return_mean"), "random_return": card.get("random_return_mean"),
    })
    returns = evaluate_policy(lambda o: bc.predict(o), config.env, config.eval_episodes, seed=EVAL_SEED)
    result = {"steps": 0, "return_mean": float(returns.mean()), "return_std": float(returns.std()),
              "wall_s": fit_seconds}
    norm = normalised_return(result["return_mean"], card.get("return_mean"), card.get("random_return_mean"))
    if norm is not None:
        result["normalised"] = norm
    write_json(out / "eval.json", {"history": [result], "expert_return": card.get("return_mean"),
                                   "random_return": card.get("random_return_mean")})
    return result


def _run_meta(directory: Path) -> dict[str, Any]:
    """``config.json`` of an imitation run; UsageError naming what the folder is otherwise."""
    if not directory.is_dir():
        raise UsageError(f"run directory {directory} does not exist; train one with `gailkit imitate`")
    meta = read_json(directory / "config.json", what="run")
    if "imitation" not in meta:
        kind = ("an expert directory: evaluate it with `gailkit expert eval --expert DIR`" if "preset" in meta
                else "not an imitation run (its config.json has no 'imitation' entry)")
        raise UsageError(f"{directory} is {kind}")
    return meta


def load_run(directory: str | Path) -> ImitationRun:
    """Rebuild a trainer from a run directory with its final (or latest checkpoint's) policy."""
    directory = Path(directory)
    _run_meta(directory)
    return _trainer_with_policy(directory)


def _trainer_with_policy(directory: Path) -> ImitationRun:
    """:func:`load_run` once ``directory`` is known to hold an imitation run."""
    config, disc_config = saved_configs(directory, progress=False)
    if config.algo == "bc":
        raise UsageError(f"{directory} is a BC run; load its policy with `gailkit.agents.BC.load(DIR / 'bc')`")
    trainer = (DAC if config.algo == "dac" else AdversarialImitation)(config, disc_config)
    path = directory / "policy.safetensors"
    if not path.exists():  # an unfinished run: its last checkpoint
        path = verify_dir(directory / "checkpoint", what="run") / "policy.safetensors"
    load_weights(trainer.model.policy, path, what="run")
    return trainer


def evaluate_run(directory: str | Path, episodes: int = 20) -> dict[str, Any]:
    """Evaluate the final policy of a run directory on fresh seeds.

    Returns:
        ``return_mean``, ``return_std``, ``episodes`` and, when the demonstrations carried an
        expert card, ``normalised`` = (R - random) / (expert - random) with both references.
    """
    if episodes < 1:
        raise UsageError(f"--episodes {episodes}: must be >= 1")
    directory = Path(directory)
    meta = _run_meta(directory)
    algo = meta["imitation"]["algo"]
    if algo == "bc":
        bc = BC.load(directory / "bc")
        returns = evaluate_policy(lambda o: bc.predict(o), meta["imitation"]["env"], episodes, seed=EVAL_SEED)
        expert, random_return = meta.get("expert_return"), meta.get("random_return")
        out = {"return_mean": float(returns.mean()), "return_std": float(returns.std())}
    else:
        trainer = _trainer_with_policy(directory)  # _run_meta has checked the folder
        out = trainer.evaluate(episodes)
        out.pop("steps", None)
        expert, random_return = trainer.expert_return, trainer.random_return
    out.update(algo=algo, episodes=episodes, expert_return=expert, random_return=random_return)
    norm = normalised_return(out["return_mean"], expert, random_return)
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
