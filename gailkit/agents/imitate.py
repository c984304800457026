"""One entry point per imitation algorithm, and evaluation of a finished run directory."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from gailkit.agents.bc import BC, BCConfig
from gailkit.agents.dac import DAC
from gailkit.agents.experts import evaluate_policy
from gailkit.agents.imitation import (
    AdversarialImitation,
    ImitationConfig,
    load_run,
    normalised_return,
    saved_configs,
)
from gailkit.agents.run import save_learning_curve
from gailkit.data.demos import load_demos
from gailkit.discriminators import DiscriminatorConfig
from gailkit.nn.checkpoint import CheckpointError, read_json, write_json

__all__ = ["imitate", "evaluate_run", "plot_runs", "summarise_runs"]

EVAL_SEED = 10_000_000  # evaluation episodes never share seeds with training


def imitate(config: ImitationConfig, disc_config: DiscriminatorConfig | None = None, *,
            resume: bool = False) -> dict[str, Any]:
    """Train ``config.algo`` and return the final evaluation (with ``wall_time_s``)."""
    start = time.perf_counter()
    if resume:
        config, disc_config = saved_configs(config.out, steps=config.steps, progress=config.progress)
    if config.algo == "bc":
        if resume:
            raise ValueError("--resume applies to gail and airl runs; BC trains in seconds, rerun it")
        result = _train_bc(config)
    else:
        trainer = (DAC if config.algo == "dac" else AdversarialImitation)(config, disc_config)
        trainer.train(resume=resume)
        result = dict(trainer.history[-1])
    result["wall_time_s"] = round(time.perf_counter() - start, 2)
    return result


def _train_bc(config: ImitationConfig) -> dict[str, Any]:
    env = gym.make(config.env)
    demos = load_demos(config.demos, env=env)
    bc_config = BCConfig(steps=config.bc_steps or 2000, seed=config.seed)
    start = time.perf_counter()
    bc = BC(env.observation_space, env.action_space, bc_config).fit(demos, progress=config.progress)
    fit_seconds = round(time.perf_counter() - start, 2)
    out = Path(config.out)
    bc.save(out / "bc")
    card = demos.metadata.get("expert_card") or {}
    write_json(out / "config.json", {
        "imitation": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
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


def evaluate_run(directory: str | Path, episodes: int = 20) -> dict[str, Any]:
    """Evaluate the final policy of a run directory on fresh seeds.

    Returns:
        ``return_mean``, ``return_std``, ``episodes`` and, when the demonstrations carried an
        expert card, ``normalised`` = (R - random) / (expert - random) with both references.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"run directory {directory} does not exist")
    meta = read_json(directory / "config.json", what="run")
    algo = meta["imitation"]["algo"]
    if algo == "bc":
        bc = BC.load(directory / "bc")
        returns = evaluate_policy(lambda o: bc.predict(o), meta["imitation"]["env"], episodes, seed=EVAL_SEED)
        expert, random_return = meta.get("expert_return"), meta.get("random_return")
        out = {"return_mean": float(returns.mean()), "return_std": float(returns.std())}
    else:
        trainer = load_run(directory)
        out = trainer.evaluate(episodes)
        out.pop("steps", None)
        expert, random_return = trainer.expert_return, trainer.random_return
    out.update(algo=algo, episodes=episodes, expert_return=expert, random_return=random_return)
    norm = normalised_return(out["return_mean"], expert, random_return)
    if norm is not None:
        out["normalised"] = norm
    return out


def plot_runs(path: str | Path, runs: dict[str, Path], *, title: str) -> Path:
    """One learning-curve PNG of several runs' ``eval.json`` histories."""
    data = {label: read_json(Path(run) / "eval.json", what="run") for label, run in runs.items()}
    refs = next(iter(data.values()), {})
    return save_learning_curve(path, {label: d["history"] for label, d in data.items()}, title=title,
                               expert=refs.get("expert_return"), random_return=refs.get("random_return"))


def summarise_runs(runs: dict[str, Path]) -> list[dict[str, Any]]:
    """Rows ``{name, return_mean, return_std, normalised, steps}``: random, expert, then each run's
    final evaluation (from its ``eval.json``)."""
    rows: list[dict[str, Any]] = []
    refs: dict[str, Any] = {}
    for name, run in runs.items():
        data = read_json(Path(run) / "eval.json", what="run")
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
