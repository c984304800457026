"""World Models' iterative training: collect with the current controller, retrain M, retrain C.

The paper's procedure for tasks that random rollouts do not cover: a world model fitted to
random play knows nothing of the states a good controller reaches, and a controller trained in
its dream exploits exactly those gaps. Each iteration here

1. records ``episodes`` real episodes with the current controller (V+M+C acting frame by frame,
   Gaussian exploration noise on its actions; iteration 0 uses the data already collected),
2. retrains M on *all* data so far (V stays fixed: its latents define M's space),
3. continues C's CMA-ES from the previous best, in the dream or in the real env,
4. measures the dream/real gap: the new controller's mean dream return beside its real return,
   and its real return on the *selection tracks*, apart from the evaluation tracks, on which
   :func:`kept_iteration` picks the iteration to keep (the last is not always the best: a
   dream-trained controller's real return can fall as its dream return climbs).

Every step writes into ``out/iter_<k>/`` and ``out/iterations.json``; a rerun skips finished
iterations and resumes the unfinished one (collection and CMA-ES resume on their own).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gailkit.envs.make import check_env_id
from gailkit.errors import UsageError
from gailkit.evaluation import EVAL_SEED
from gailkit.nn.checkpoint import CheckpointError, read_json, write_json
from gailkit.worldmodels.controller import (
    DreamTrainingConfig,
    dream_fitness,
    train_controller_in_dream,
    train_controller_in_real,
)
from gailkit.worldmodels.data import collect_chunks
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import ControllerPolicy, evaluate_controller
from gailkit.worldmodels.train import (
    ensemble_disagreements,
    start_latents,
    stopped_training,
    train_mdn,
    warm_starts,
)

__all__ = ["SELECT_SEED", "IterativeConfig", "kept_iteration", "refit_memory", "train_iteratively"]

# the first of the tracks an iteration is picked on: apart from the evaluation tracks (EVAL_SEED on),
# so the iteration kept is scored on tracks it was not picked on
SELECT_SEED = EVAL_SEED + 500_000


@dataclasses.dataclass
class IterativeConfig:
    """Options of :func:`train_iteratively` (C's own are a :class:`DreamTrainingConfig`)."""

    iterations: int = 3
    episodes: int = 32  # real episodes recorded per iteration with the current controller
    noise: float = 0.1  # std of the Gaussian added to the controller's actions while recording
    where: str = "dream"  # where C trains: "dream" (the paper's iterative setting) or "real"
    mdn_epochs: int = 20
    eval_episodes: int = 8  # real episodes (and dreams x 4) measuring the dream/real gap
    select_episodes: int = 8  # real episodes on the selection tracks (SELECT_SEED on), to pick the iteration kept
    # where the selection episodes are cut; None: run to the env's end, as the evaluation runs them (a cut at C's
    # max_steps ties the controllers that reach it, and the tie goes to the earlier iteration)
    select_max_steps: int | None = None
    seed: int = 0
    # with an ensemble of M's: each iteration's dreams halt (DreamTrainingConfig.halt_above) where its M's disagree
    # more than at this quantile of their disagreements on the newest real episodes (train.ensemble_disagreements)
    halt_quantile: float | None = None


def train_iteratively(model_dir: str | Path, data_dir: str | Path | Sequence[str | Path], env_id: str,
                      config: IterativeConfig,
                      controller: DreamTrainingConfig, out: str | Path, *, mdn_options: dict | None = None,
                      workers: int = 2, backend: str = "local", ray_address: str | None = None,
                      x0: np.ndarray | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) ``config.iterations`` iterations; returns one record per iteration (the first
    ``config.iterations`` of a folder that holds more).

    Args:
        model_dir: a world model with V trained (and M, which iteration 0 retrains anyway).
        data_dir: the initial (e.g. random-play) chunks V and M were trained on, or several folders of
            them (M is fitted on all; dreams start from the first folder's first frames or, with
            ``controller.dream_start``, inside the newest episodes: the last folder's at iteration 0, then
            the previous controller's).
        env_id: the real pixel env.
        controller: C's CMA-ES options per iteration (``generations`` per iteration).
        out: folder of the iterations: ``iter_<k>/{data,model,controller}``, ``iterations.json``.
        mdn_options: keyword arguments of :func:`~gailkit.worldmodels.train.train_mdn` besides epochs.
        x0: where C's search starts at iteration 0 (default zeros), e.g. a V-only controller widened
            with zero weights on h (:func:`~gailkit.worldmodels.linear_controller.with_memory`).

    Returns:
        Per iteration: ``iteration``, ``episodes`` of data so far, ``dream_return`` (at temperature 1,
        M as fitted), ``real_return`` (means of the new controller), ``gap`` (dream minus real),
        ``generations``, ``select_return`` (the mean on ``select_episodes`` selection tracks, cut at
        ``select_max_steps``, which :func:`kept_iteration` ranks; a resumed run with another
        ``select_episodes`` or ``select_max_steps`` measures them again);
        ``dream_return_at_tau`` too where C was trained in dreams at another temperature, ``halt_above``
        where its dreams halt (``config.halt_quantile`` or the controller's).
        With ``controller.dream_start`` > 0 the dreams (training and measure) start that many steps into
        the newest episodes and pay from there, the real return the whole episode (on
        CarRacing, a driving car's first 50 steps pay 10 to 20).
    """
    if config.where not in ("dream", "real"):
        raise UsageError(f"where={config.where!r}: train C in 'dream' or 'real'")
    if config.select_episodes < 1:
        raise UsageError(f"select_episodes={config.select_episodes}: must be >= 1")
    if config.select_max_steps is not None and config.select_max_steps < 1:
        raise UsageError(f"select_max_steps={config.select_max_steps}: must be >= 1, or None for whole episodes")
    if config.select_max_steps is not None and config.select_max_steps % controller.frame_skip:
        raise UsageError(f"select_max_steps={config.select_max_steps}: must be a multiple of the frame skip "
                         f"({controller.frame_skip}), or None for whole episodes")
    if config.halt_quantile is not None and not 0 < config.halt_quantile <= 1:
        raise UsageError(f"halt_quantile={config.halt_quantile}: a quantile in (0, 1], e.g. 0.99")
    if config.halt_quantile is not None and controller.halt_above is not None:
        raise UsageError("halt_quantile sets each iteration's halt_above from its data: give one of them")
    if config.halt_quantile is not None and config.where != "dream":
        raise UsageError("halt_quantile halts dreams; C trained in the real env meets none: drop it, or train in "
                         "the dream")
    if config.halt_quantile is not None and (mdn_options or {}).get("ensemble", 1) < 2:
        raise UsageError("halt_quantile halts dreams where an ensemble's M's disagree: fit one (mdn_options "
                         "ensemble=K, --m-ensemble K)")
    dirs = [data_dir] if isinstance(data_dir, (str, Path)) else data_dir
    out, data_dirs = Path(out), [Path(d) for d in dirs]
    WorldModel.load(model_dir).check_env(env_id, f"world model {model_dir}")
    ensemble = (mdn_options or {}).get("ensemble", 1)
    state_path = out / "iterations.json"
    records: list[dict] = read_json(state_path, what="iterative run")["records"] if state_path.exists() else []
    best = x0

    def selection(model: WorldModel, x: np.ndarray) -> dict:
        found = evaluate_controller(model, x, env_id, config.select_episodes, seed=SELECT_SEED,
                                    max_steps=config.select_max_steps, frame_skip=controller.frame_skip,
                                    latent_noise=controller.latent_noise)
        return {"select_return": float(found.mean()), "select_episodes": config.select_episodes,
                "select_max_steps": config.select_max_steps}

    horizon = check_env_id(env_id).max_episode_steps

    def cut(steps: int | None) -> int | None:  # None: whole episodes (a cut at the env's horizon is none)
        return None if steps is None or (horizon is not None and steps >= horizon) else steps

    def measured_as_configured(record: dict) -> bool:  # False: a run from before the selection tracks, or scored
        # on another number of them or another cut (runs from before select_max_steps were cut at C's max_steps)
        found = record.get("select_episodes"), cut(record.get("select_max_steps", controller.max_steps))
        return "select_return" in record and found == (config.select_episodes, cut(config.select_max_steps))

    def save() -> None:
        write_json(state_path, {"records": records, "config": dataclasses.asdict(config),
                                "controller": dataclasses.asdict(controller)})

    for k in range(config.iterations):
        it = out / f"iter_{k}"
        model_k = it / "model"
        if k > 0:  # record real episodes with the previous controller
            prev = WorldModel.load(out / f"iter_{k - 1}" / "model")
            policy = ControllerPolicy(prev, best, noise=config.noise, latent_noise=controller.latent_noise)
            collect_chunks(env_id, it / "data", config.episodes, seed=config.seed * 1_000_003 + k * 10_007,
                           policy=policy, progress=progress)
            data_dirs.append(it / "data")
        if k < len(records):  # finished before: its controller is the next start
            best = np.asarray(records[k]["best_x"])
            if not measured_as_configured(records[k]):  # measure it now
                records[k] |= selection(WorldModel.load(model_k), best)
                save()
            continue
        if not (model_k / "mdn_rnn.safetensors").exists() or not (it / "m_done").exists():
            refit_memory(model_dir, data_dirs, model_k, epochs=config.mdn_epochs, seed=config.seed + k,
                         progress=progress, **(mdn_options or {}))
            (it / "m_done").write_text("M trained on " + ", ".join(map(str, data_dirs)) + "\n")
        model = WorldModel.load(model_k)
        if len(model.mdns) != ensemble:
            raise CheckpointError(f"{model_k} holds {len(model.mdns)} M's, this run fits {ensemble}: resume it with "
                                  "its own ensemble, or iterate into another folder")
        # dreams start from real first frames (V is fixed), fed to C as it is fed in the real env; or, with
        # controller.dream_start, that many steps into the newest episodes, M's memory warmed on them
        if controller.dream_start:
            z0, s0 = warm_starts(model, data_dirs[-1], controller.dream_start, latent_noise=controller.latent_noise)
        else:
            z0, s0 = start_latents(model, data_dirs[0], latent_noise=controller.latent_noise), None
        ctrl_dir = it / "controller"
        resume = (ctrl_dir / "cmaes.json").exists()  # the search state, saved after its history
        cfg = dataclasses.replace(controller, seed=controller.seed + k)
        if config.halt_quantile is not None:  # where these M's disagree more than on the newest real steps
            found = ensemble_disagreements(model, data_dirs[-1], seed=config.seed + k,
                                           latent_noise=controller.latent_noise)
            cfg = dataclasses.replace(cfg, halt_above=float(np.quantile(found, config.halt_quantile)))
        if config.where == "dream":
            best, history = train_controller_in_dream(model, cfg, ctrl_dir, start_z=z0, start_state=s0,
                                                      resume=resume, progress=progress, x0=best)
        else:
            best, history = train_controller_in_real(model_k, env_id, cfg, ctrl_dir, workers=workers, resume=resume,
                                                     progress=progress, backend=backend, ray_address=ray_address,
                                                     x0=best)

        # the new controller's mean over 4x eval_episodes dreams: at temperature 1 (M as fitted) and, where
        # C was trained in dreams at another temperature, in those
        taus = [1.0] + ([controller.tau] if config.where == "dream" and controller.tau != 1.0 else [])
        dreams = [float(dream_fitness(model, controller_for(model, n_params=len(best)), best[None],
                                      rollouts=4 * config.eval_episodes,
                                      max_steps=controller.max_steps - controller.dream_start, tau=tau,
                                      seed=config.seed + k, start_z=z0, start_state=s0,
                                      latent_noise=controller.latent_noise, ensemble_draw=controller.ensemble_draw,
                                      halt_above=cfg.halt_above, halt_reward=cfg.halt_reward)[0])
                  for tau in taus]
        real = float(evaluate_controller(model, best, env_id, config.eval_episodes, max_steps=controller.max_steps,
                                         frame_skip=controller.frame_skip,
                                         latent_noise=controller.latent_noise).mean())
        record = {"iteration": k, "episodes": sum(_episodes(d) for d in data_dirs),
                  "generations": history[-1]["generation"], "dream_return": dreams[0], "real_return": real,
                  "gap": dreams[0] - real, **selection(model, best), "best_x": best.tolist()}
        if cfg.halt_above is not None:
            record["halt_above"] = cfg.halt_above
        if len(dreams) > 1:
            record["dream_return_at_tau"] = dreams[1]
        records.append(record)
        save()
    return [{k: v for k, v in r.items() if k != "best_x"} for r in records[: config.iterations]]


def kept_iteration(out: str | Path, keep: str | int = "best", *, iterations: int | None = None) -> dict:
    """The iteration of the run in ``out`` to keep: its record (``best_x``: C's parameters) plus
    ``model_dir`` and ``controller_dir``.

    Args:
        keep: ``"best"``: the highest ``select_return`` (the earlier on a tie), picked on tracks apart
            from the evaluation tracks; ``"last"``; or an iteration's number.
        iterations: choose among the first this many iterations only (default: all in ``out``).
    """
    out = Path(out)
    state_path = out / "iterations.json"
    if not state_path.exists():
        raise UsageError(f"no iterative run in {out} (no iterations.json): run `gailkit worldmodel iterate` first")
    records = read_json(state_path, what="iterative run")["records"][:iterations]
    if not records:
        raise UsageError(f"{out} holds no finished iteration yet: resume `gailkit worldmodel iterate`")
    if keep == "best":
        unmeasured = [r["iteration"] for r in records if "select_return" not in r]
        if unmeasured:
            raise UsageError(f"iterations {unmeasured} in {out} have no return on the selection tracks (a run from "
                             "before them): resume it with `gailkit worldmodel iterate` to measure them")
        record = records[int(np.argmax([r["select_return"] for r in records]))]
    elif keep == "last":
        record = records[-1]
    elif isinstance(keep, int) and not isinstance(keep, bool) and 0 <= keep < len(records):
        record = records[keep]
    else:
        raise UsageError(f"keep={keep!r}: use 'best', 'last' or an iteration's number, 0 to {len(records) - 1}")
    it = out / f"iter_{record['iteration']}"
    return record | {"model_dir": it / "model", "controller_dir": it / "controller"}


def refit_memory(model_dir: str | Path, data_dirs: list[Path], out: str | Path, **mdn_options) -> WorldModel:
    """The world model in ``model_dir`` copied to ``out`` with a fresh M fitted on ``data_dirs``
    (V unchanged: its latents define M's space); ``mdn_options`` are :func:`train_mdn`'s."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for path in [Path(model_dir) / "world_model.json", *Path(model_dir).glob("*.safetensors"),
                 *Path(model_dir).glob("training.json")]:  # V's weights and history; M's are refitted
        shutil.copyfile(path, out / path.name)
    return train_mdn(data_dirs, out, resume=stopped_training(out, "M"), **mdn_options)  # a refit that stopped goes on


def _episodes(data_dir: Path) -> int:
    return int(read_json(data_dir / "meta.json", what="rollout data")["episodes"])
