"""Benchmark: the World Models pipeline on CarRacing (64x64), every stage timed.

Run:  python scripts/bench_worldmodel.py [--preset fast-2h] [--eval-episodes 100]
      python scripts/bench_worldmodel.py --backend ray --ray-address HEAD:6379 --workers 64  (a cluster)
Small smoke run: python scripts/bench_worldmodel.py --episodes 2 --vae-epochs 1 --mdn-epochs 1 \
          --generations 2 --vonly-generations 1 --eval-episodes 2 --dir runs/bench_wm_smoke \
          --out runs/bench_wm_smoke/result.json

Prints a table and writes scripts/results/bench_worldmodel_<preset>.json (with a CMA-ES curve PNG
and a GIF of the V+M+C controller on a real track beside it):
- V+M+C: the controller over [z, h], trained where the preset says (``fast-2h``: in the real env,
  the paper's best setting; ``cpu-hour``: in M's dream), evaluated on real tracks.
  With ``fast-2h-warm``, V+M+C's search starts from V only's controller after 100 generations
  (its weights on h at 0) and refines it for 60 more; ``fast-2h-m32`` does the same after 60
  generations, for 40, with a 32-unit M (C over [z, h] has 195 weights, not 867);
  ``fast-2h-m32-noindicators`` is that on frames without the speed gauge (the paper's input), and
  ``fast-2h-m32-noindicators-blind`` the same with an M that is not fed the actions (its h cannot
  hold the last action);
  ``fast-2h-m32-refit`` refits M, before V+M+C's search, on 50 more episodes driven by V only's
  controller (the paper's iterative step; ``--refit-m-episodes N``); ``fast-2h-m32-continue``
  continues V only's CMA-ES itself (its step size and covariance, h's weights as new coordinates)
  instead of a fresh search at step size 0.2; ``fast-2h-m32-centred`` searches C over
  [z, h - h's mean over the collected data] (the same controllers; a step in a weight on h then
  moves the action through h's variation, not its mean); ``fast-2h-m32-hold-z`` starts from V only
  after 100 generations and searches only the weights on h and the bias (99 parameters, as V only's),
  the weights on z held at V only's; its control row, "V only, biases searched (z held)", is V only's
  controller from the same start with the same 40-generation search over its 3 biases alone (the
  same step size, population and training tracks): what V+M+C gains over it, h's weights gained;
  ``fast-2h-m32-hold-z-m30`` is hold-z with M trained 30 epochs on a fresh draw of V's posterior each
  epoch (not 10 on one draw): an M that forecasts from draws of V 1.4x better, and
  ``fast-2h-m32-hold-z-m30-means`` the same with every controller fed V's posterior mean instead of a
  draw, in training and in every evaluation row (``controller_latent_noise``), and
  ``fast-2h-m32-hold-z-m30-means-noindicators`` that on frames without the speed gauge, and
  ``fast-2h-m32-hold-z-means-m-whole`` ``-m30-means`` with M trained on whole episodes (one 1,000-step
  window from a zero state each, as the World Models code trains its RNN, not 32-step windows);
  ``fast-2h-m32-noindicators-blind-dagger`` starts both controllers by imitation: DAgger fits C to a
  privileged teacher that reads the track and the car (V+M+C over [z, h], V only over z; same
  teacher, budget and tracks), then CMA-ES trains each on reward in the real env for 30 generations;
  the fitted starts are rows of their own ("V+M+C (DAgger start)", "V only (DAgger start)"), and so is
  the V+M+C start with h held at its data mean;
- V only: a controller over z alone trained by CMA-ES in the real environment (no M, no dream),
  for as many generations as V+M+C had in all;
- the random policy on the same tracks;
- both controllers again with the other choice of solution (the preset's is the CMA-ES mean for
  ``fast-2h``, as in the paper's code, or the best candidate seen; the other is a second row each);
- M's ablation: V+M+C's controller with its weights on h dropped (h = 0), and with h held at its
  average over the collected data (folded into the bias): does C use what h varies with?
with real-environment steps used, the wall time of each stage, the controller's dream/real score
gap, and batched dream steps/s against real-environment steps/s measured in this run. Every
stage resumes from what an interrupted run left in --dir (CMA-ES from its last generation).
``--seed N`` reruns the searches after a warm start with their own draws (one result per seed;
``scripts/bench_worldmodel_seeds.py`` sums the seeds up).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser, int_in
from gailkit.envs.car_racing import TrackFollower
from gailkit.files import write_json
from gailkit.nn.checkpoint import read_json
from gailkit.worldmodels.cmaes import CMAES
from gailkit.worldmodels.controller import (
    SOLUTIONS,
    DreamTrainingConfig,
    dream_fitness,
    load_solution,
    train_controller_in_dream,
    train_controller_in_real,
)
from gailkit.worldmodels.dagger import DaggerConfig, DaggerResult, dagger_controller
from gailkit.worldmodels.data import collect_chunks, recorded_steps
from gailkit.worldmodels.iterative import refit_memory
from gailkit.worldmodels.linear_controller import (
    all_but_z_weights,
    controller_for,
    memory_index,
    with_memory,
    without_memory,
)
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.pictures import controller_gif
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.real import ControllerPolicy, evaluate_controllers
from gailkit.worldmodels.train import (
    mean_memory,
    memory_components,
    start_latents,
    stopped_training,
    train_mdn,
    train_vae,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_worldmodel_seeds import difference  # noqa: E402  (scripts/ is not a package)

SOLUTION_LABELS = {"best": "best candidate seen", "mean": "CMA-ES mean"}
HELD_ROW = "V only, biases searched (z held)"  # hold-z's control row
RESTART_ROW = "V only, search restarted as V+M+C's"  # memory_components' control row
DAGGER_ROWS = ("V+M+C (DAgger start)", "V only (DAgger start)")  # a DAgger preset's fitted starts
DAGGER_HELD = "V+M+C (DAgger start), h held at its data mean"  # and M's ablation of V+M+C's


def timed(wall: dict[str, float], wall_file: Path, stage: str, fn, *fn_args, started_before: bool = False,
          **fn_kwargs):
    """Run one stage; its wall time is kept in ``wall_file`` so a resumed run still reports it.
    A CMA-ES stage (it returns ``(best, history)``) is timed by the sum of its generations' own
    times, which stay right when the stage was interrupted and resumed. Another stage that had
    ``started_before`` this call without its time kept (interrupted, or run by an older version)
    is left untimed: this call saw only its rest."""
    start = time.perf_counter()
    out = fn(*fn_args, **fn_kwargs)
    history = out[1] if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], list) else None
    if history and all("wall_s" in h for h in history):
        wall[stage] = sum(h["wall_s"] for h in history)
        write_json(wall_file, wall)
    elif stage not in wall and not started_before:  # a stage timed before keeps its first time
        wall[stage] = time.perf_counter() - start
        write_json(wall_file, wall)
    return out


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """``a - b`` over the same tracks: its mean, the standard error of that mean, and the tracks each way."""
    return difference(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))


def plot_curves(path: Path, history: list[dict], where: str, vonly_history: list[dict], real: dict[str, float],
                title: str, warm: int = 0, extra: dict[str, list[dict]] | None = None) -> None:
    """CMA-ES curves; a V+M+C search that started from V only's generation ``warm`` is drawn from there,
    and so is each ``extra`` search (a control row's, by name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=110)
    gens = [warm + h["generation"] for h in history]
    start = f" (from V only at {warm})" if warm else ""
    ax.plot(gens, [h["mean"] for h in history], label=f"V+M+C: {where}, candidates' average{start}")
    ax.plot(gens, [h["best"] for h in history], label=f"V+M+C: {where}, generation's best", alpha=0.6)
    if vonly_history:
        ax.plot([h["generation"] for h in vonly_history], [h["mean"] for h in vonly_history],
                label="V only: real, candidates' average")
    for k, (name, extra_history) in enumerate((extra or {}).items()):  # colours after the lines below
        ax.plot([warm + h["generation"] for h in extra_history], [h["mean"] for h in extra_history],
                color=f"C{3 + len(real) + k}", label=f"{name}: real, candidates' average")
    for i, (label, value) in enumerate(real.items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{i + 3}", label=f"{label}: real, full tracks")
    ax.set(xlabel="CMA-ES generation", ylabel="return", title=title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":  # the real-env CMA-ES uses spawn workers, which re-import this file
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast-2h", choices=sorted(WM_PRESETS))
    parser.add_argument("--dir", type=Path, help="run folder (default: ~/.cache/gailkit/bench/worldmodel/<preset>)")
    parser.add_argument("--episodes", type=int)
    parser.add_argument("--vae-epochs", type=int)
    parser.add_argument("--mdn-epochs", type=int)
    parser.add_argument("--generations", type=int)
    parser.add_argument("--sigma0", type=float, help="V+M+C's first CMA-ES step size (default: preset's)")
    parser.add_argument("--warm-start-generations", type=int,
                        help="V+M+C starts from V only's controller after this many generations (default: preset's)")
    parser.add_argument("--dagger-iterations", type=int_in(0),
                        help="both controllers start from C fitted by DAgger to a privileged teacher in this many "
                             "iterations (0: no DAgger; default: preset's)")
    parser.add_argument("--refit-m-episodes", type=int_in(0),
                        help="episodes driven by V only's controller that M is refitted on before V+M+C's "
                             "search (needs a warm start; default: preset's)")
    parser.add_argument("--seed", type=int_in(0), default=0,
                        help="seed of the searches after the warm start (V+M+C's and V only's last generations: "
                             "their CMA-ES draws and training tracks), in folders and stage names of their own; the "
                             "data, V, M and the warm start are shared (needs a warm start; default: 0)")
    parser.add_argument("--vonly-generations", type=int,
                        help="CMA-ES generations of the V-only row (default: V+M+C's, warm start included)")
    parser.add_argument("--vonly-popsize", type=int, help="default: as V+M+C")
    parser.add_argument("--vonly-steps", type=int, help="steps per V-only training episode (default: as V+M+C)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int_in(1), default=2,
                        help="torch threads of this process: V, M and the evaluation (C's workers use one each)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", help="HOST:PORT of a running Ray cluster")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--out", type=Path, help="default: scripts/results/bench_worldmodel_<preset>.json")
    args = parser.parse_args()
    if args.sigma0 is not None and not args.sigma0 > 0:
        parser.error(f"--sigma0 {args.sigma0}: must be > 0")
    torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in (("episodes", args.episodes), ("vae_epochs", args.vae_epochs),
                                   ("mdn_epochs", args.mdn_epochs), ("generations", args.generations),
                                   ("warm_start_generations", args.warm_start_generations),
                                   ("controller_sigma0", args.sigma0),
                                   ("refit_m_episodes", args.refit_m_episodes),
                                   ("dagger_iterations", args.dagger_iterations)) if v is not None}
    p = dataclasses.replace(WM_PRESETS[args.preset], **overrides)
    if args.seed and not (p.warm_start_generations or p.dagger_iterations):
        parser.error(f"--seed {args.seed} seeds the searches after a warm start: set --warm-start-generations above 0")
    if p.dagger_iterations and p.warm_start_generations:
        parser.error(f"preset {args.preset} starts the controllers from DAgger ({p.dagger_iterations} iterations) and "
                     f"from V only's search ({p.warm_start_generations} generations); set one of "
                     "--dagger-iterations and --warm-start-generations to 0")
    if p.dagger_iterations and "CarRacing" not in p.env:
        parser.error(f"--dagger-iterations {p.dagger_iterations}: DAgger's teacher drives CarRacing, not {p.env}; "
                     "set it to 0")
    if p.warm_start_continue and (not p.warm_start_generations or args.sigma0 is not None):
        parser.error(f"preset {args.preset} continues V only's search (and its step size) after a warm start: "
                     "set --warm-start-generations above 0 and drop --sigma0")
    if sum((p.warm_start_continue, p.centre_memory, p.hold_z, p.memory_components > 0)) > 1:
        parser.error(f"preset {args.preset} sets more than one of continuing V only's search, centring h, "
                     "holding z's weights and reading h's principal components; choose one")
    if p.hold_z and not p.warm_start_generations:
        parser.error(f"preset {args.preset} holds z's weights at V only's: set --warm-start-generations above 0")
    if p.refit_m_episodes and not p.warm_start_generations:
        parser.error(f"--refit-m-episodes {p.refit_m_episodes} needs V only's controller to drive: "
                     "set --warm-start-generations above 0")
    run_dir = args.dir or Path.home() / ".cache" / "gailkit" / "bench" / "worldmodel" / args.preset
    tag = f"_seed{args.seed}" if args.seed else ""  # the seeded searches' folders, stages and default result
    seeded = f", seed {args.seed}" if args.seed else ""
    out = args.out or Path(__file__).parent / "results" / f"bench_worldmodel_{args.preset}{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # the GIF and the curve are written beside it
    data, model_dir = run_dir / "data", run_dir / "model"
    run_dir.mkdir(parents=True, exist_ok=True)
    wall_file = run_dir / "wall.json"
    wall: dict[str, float] = json.loads(wall_file.read_text()) if wall_file.exists() else {}
    backend = dict(workers=args.workers, backend=args.backend, ray_address=args.ray_address)
    eval_options = dict(frame_skip=p.frame_skip, latent_noise=p.controller_latent_noise)  # as the controllers trained

    timed(wall, wall_file, "collect", collect_chunks, p.env, data, p.episodes, policy=p.collect_policy,
          started_before=data.exists())
    real_steps = {"collect": recorded_steps(data)}
    if not (run_dir / "V.done").exists():
        stopped = stopped_training(model_dir, "V")  # a V that stopped goes on from its last epoch (then untimed)
        timed(wall, wall_file, "V", train_vae, data, model_dir, **p.vae_options(), resume=stopped,
              started_before=stopped)
        (run_dir / "V.done").touch()
    if (run_dir / "M.done").exists():
        model = WorldModel.load(model_dir)
    else:
        stopped = stopped_training(model_dir, "M")
        model = timed(wall, wall_file, "M", train_mdn, data, model_dir, **p.mdn_options(), resume=stopped,
                      started_before=stopped)
        (run_dir / "M.done").touch()

    where = p.controller_where

    def vonly_config(generations: int) -> DreamTrainingConfig:
        return DreamTrainingConfig(generations=generations, popsize=args.vonly_popsize or p.popsize,
                                   rollouts=1 if where == "dream" else p.rollouts,
                                   max_steps=args.vonly_steps or p.max_steps, tau=p.tau, memory=False,
                                   frame_skip=p.frame_skip, solution=p.controller_solution,
                                   latent_noise=p.controller_latent_noise)

    def vonly_steps(config: DreamTrainingConfig) -> int:  # an upper bound: episodes may end early
        return config.generations * config.popsize * config.rollouts * config.max_steps

    cfg = DreamTrainingConfig(**p.controller_options(), seed=args.seed)
    z0 = start_latents(model, data, latent_noise=p.controller_latent_noise)  # dreams start as C is fed
    warm, x0 = p.warm_start_generations, None
    vmc_model_dir = model_dir  # V+M+C's world model: M refitted in a folder of its own with refit_m_episodes
    if warm:  # V+M+C's search starts from V only's controller after `warm` generations (h weights 0)
        start_dir = run_dir / "controller_vonly"
        warm_stage = f"C in the real env (V only, generations 1-{warm}: V+M+C's start)"
        x0, first = timed(wall, wall_file, warm_stage, train_controller_in_real, model_dir, p.env,
                          vonly_config(warm), start_dir, resume=(start_dir / "cmaes.json").exists(), **backend)
        if len(first) != warm:
            parser.error(f"{start_dir} holds {len(first)} generations of V only, not the preset's {warm}: "
                         "use another --dir")
        real_steps["V-only training, V+M+C's start"] = vonly_steps(vonly_config(warm))
        if p.refit_m_episodes:  # M refitted on data that V only's controller drove as well (V unchanged)
            refit_data, vmc_model_dir = run_dir / "data_vonly", run_dir / "model_refit"
            driver = ControllerPolicy(model, x0, noise=0.1, latent_noise=p.controller_latent_noise)
            timed(wall, wall_file, "collect (V only's controller)", collect_chunks, p.env, refit_data,
                  p.refit_m_episodes, policy=driver, seed=1_000_000, started_before=refit_data.exists())
            real_steps["collect (V only's controller)"] = recorded_steps(refit_data)
            if (run_dir / "M_refit.done").exists():
                model = WorldModel.load(vmc_model_dir)
            else:
                model = timed(wall, wall_file, "M refit (all data)", refit_memory, model_dir, [data, refit_data],
                              vmc_model_dir, **p.mdn_options())
                (run_dir / "M_refit.done").touch()
        x_vonly, x0 = x0, with_memory(model, x0)
        if p.warm_start_continue:  # V only's search goes on, h's weights its new coordinates
            x0 = CMAES.load(start_dir).widened(len(x0), memory_index(model), popsize=p.popsize, seed=args.seed)
            cfg = dataclasses.replace(cfg, sigma0=x0.sigma)
        if p.hold_z:  # the weights on z stay V only's; the search moves those on h and the bias
            cfg = dataclasses.replace(cfg, search_index=all_but_z_weights(model).tolist(), held=x0.tolist())
    dagger = {}  # a DAgger preset's fitted starts, V+M+C's (over [z, h]) and V only's (over z)
    dagger_stages = {name: f"C by DAgger ({name.split(' (')[0]}{seeded})" for name in DAGGER_ROWS}
    if p.dagger_iterations:
        for name, memory in zip(DAGGER_ROWS, (True, False), strict=True):
            d = run_dir / f"dagger_{'zh' if memory else 'z'}{tag}"
            if (d / "dagger.json").exists():
                dagger[name] = DaggerResult.load(d)
            else:
                dagger[name] = timed(wall, wall_file, dagger_stages[name], dagger_controller, model, p.env,
                                     TrackFollower(), memory=memory,
                                     config=DaggerConfig(iterations=p.dagger_iterations, seed=args.seed))
                dagger[name].save(d)
            real_steps[f"DAgger ({name.split(' (')[0]})"] = dagger[name].history[-1]["labelled_steps"]
        x0 = dagger[DAGGER_ROWS[0]].params
    h_mean = mean_memory(model, data) if p.centre_memory else None
    if p.centre_memory:  # V+M+C's search over [z, h - h's data mean]
        cfg = dataclasses.replace(cfg, input_offset=[0.0] * model.latent_dim + h_mean.tolist())
    if p.memory_components:  # V+M+C's search over [z, h's leading principal components]
        centre, components = memory_components(model, data, p.memory_components)
        z_dim = model.latent_dim
        input_map = np.zeros((z_dim + len(components), z_dim + len(centre)))
        input_map[:z_dim, :z_dim], input_map[z_dim:, z_dim:] = np.eye(z_dim), components
        cfg = dataclasses.replace(cfg, input_offset=[0.0] * z_dim + centre.tolist(), input_map=input_map.tolist())
    start_name, start_dir_name = ((", from V only", "_from_vonly") if warm else (", from DAgger", "_from_dagger")
                                  if dagger else ("", ""))
    c_dir = run_dir / f"controller_{where}{start_dir_name}{tag}"
    stage = f"C in the {'dream' if where == 'dream' else 'real env'} (V+M+C{start_name}{seeded})"
    if where == "dream":
        best, history = timed(wall, wall_file, stage, train_controller_in_dream, model, cfg, c_dir, start_z=z0,
                              resume=(c_dir / "cmaes.json").exists(), x0=x0)
    else:
        best, history = timed(wall, wall_file, stage, train_controller_in_real, vmc_model_dir, p.env, cfg, c_dir,
                              resume=(c_dir / "cmaes.json").exists(), x0=x0, **backend)
        real_steps["V+M+C training"] = p.generations * p.popsize * p.rollouts * p.max_steps  # upper bound
    refit_stages = ["collect (V only's controller)", "M refit (all data)"] if p.refit_m_episodes else []
    vmc_stages = ["collect", "V", "M", *([warm_stage] if warm else []),
                  *([dagger_stages[DAGGER_ROWS[0]]] if dagger else []),
                  *refit_stages, stage]

    vonly_cfg = dataclasses.replace(vonly_config(args.vonly_generations or warm + p.generations), seed=args.seed)
    vonly_dir = run_dir / "controller_vonly"
    if warm:  # the V only row continues a copy of V+M+C's start to as many generations as V+M+C had in all
        vonly_dir = run_dir / f"controller_vonly_{vonly_cfg.generations}{tag}"
        if not vonly_dir.exists():
            tmp = vonly_dir.with_name(vonly_dir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(start_dir, tmp)
            if args.seed:  # its own CMA-ES draws from the warm start on (its tracks follow vonly_cfg.seed)
                es = CMAES.load(tmp)
                es.rng = np.random.default_rng([args.seed, warm])
                es.save(tmp)
                saved = read_json(tmp / "history.json", what="controller")
                write_json(tmp / "history.json", {**saved, "config": {**saved["config"], "seed": args.seed}})
            tmp.rename(vonly_dir)
    vonly_x0 = None
    if dagger:  # V only from its own DAgger start, searched as V+M+C's: same generations and step size
        vonly_cfg = dataclasses.replace(vonly_cfg, sigma0=cfg.sigma0)
        vonly_dir, vonly_x0 = run_dir / f"controller_vonly_from_dagger{tag}", dagger[DAGGER_ROWS[1]].params
    vonly_stage = f"C in the real env (V only{', from DAgger' if dagger else ''}{seeded})"
    _, vonly_history = timed(wall, wall_file, vonly_stage, train_controller_in_real, model_dir,
                             p.env, vonly_cfg, vonly_dir, resume=(vonly_dir / "cmaes.json").exists(), x0=vonly_x0,
                             **backend)
    real_steps["V-only training"] = vonly_steps(vonly_cfg)
    # the controls: V only's controller from V+M+C's start, searched as V+M+C's search is (its generations and
    # step size) over some of V only's numbers; V+M+C minus a control is what h's weights added to that search
    controls = []  # (row, config, folder name, stage label)
    if p.hold_z:  # its biases alone
        small = controller_for(model, memory=False)  # its parameters: the weights on z, then the biases
        controls.append((HELD_ROW, dataclasses.replace(
            vonly_config(p.generations), seed=args.seed, sigma0=cfg.sigma0,
            search_index=list(range(small.n_params - small.out_dim, small.n_params)), held=x_vonly.tolist()),
            "biases", "biases searched"))
    if p.memory_components:  # all of them, by a fresh CMA-ES
        controls.append((RESTART_ROW, dataclasses.replace(vonly_config(p.generations), seed=args.seed,
                                                          sigma0=cfg.sigma0), "restart", "search restarted"))
    control_dirs, control_stages, extra_histories = {}, {}, {}  # per row: its folder, stage, CMA-ES history
    for row, control_cfg, name, label in controls:
        control_dirs[row] = run_dir / f"controller_vonly_{name}{tag}"
        control_stages[row] = f"C in the real env (V only, {label}{seeded})"
        _, extra_histories[row] = timed(wall, wall_file, control_stages[row], train_controller_in_real, model_dir,
                                        p.env, control_cfg, control_dirs[row],
                                        resume=(control_dirs[row] / "cmaes.json").exists(), x0=x_vonly, **backend)
        real_steps[f"V-only training, {label}"] = vonly_steps(control_cfg)

    # each controller with both solutions, batched: the preset's is the row, the other a second row
    other = next(s for s in SOLUTIONS if s != p.controller_solution)
    start = time.perf_counter()
    returns = {}
    for name, run in (("V+M+C", c_dir), ("V only", vonly_dir)):
        both = evaluate_controllers(model, np.stack([load_solution(run, p.controller_solution),
                                                     load_solution(run, other)]), p.env, args.eval_episodes,
                                    **eval_options)
        returns[name], returns[f"{name} ({SOLUTION_LABELS[other]})"] = both
    returns["random"] = evaluate_controllers(model, None, p.env, args.eval_episodes, **eval_options)[0]
    returns = {k: returns[k] for k in ("V+M+C", "V only", "random", f"V+M+C ({SOLUTION_LABELS[other]})",
                                       f"V only ({SOLUTION_LABELS[other]})")}
    for row, folder in control_dirs.items():  # a batch of its own each, so the rows above keep their numbers
        returns[row] = evaluate_controllers(model, load_solution(folder)[None], p.env, args.eval_episodes,
                                            **eval_options)[0]
    for name in DAGGER_ROWS if dagger else ():  # the fitted starts, batches of their own
        returns[name] = evaluate_controllers(model, dagger[name].params[None], p.env, args.eval_episodes,
                                             **eval_options)[0]
    wall["evaluation"] = time.perf_counter() - start
    # M's ablation: V+M+C's controller with h at 0 or held at its average over the collected data (a
    # constant: h's variation gone); separate batches, so the rows above keep their numbers
    ablations = ("V+M+C, h's weights dropped", "V+M+C, h held at its data mean")
    vmc, controller = load_solution(c_dir, p.controller_solution), controller_for(model)
    if len(vmc) == controller.n_params:
        h_mean = mean_memory(model, data) if h_mean is None else h_mean
        for name, h in zip(ablations, (None, h_mean), strict=True):
            returns[name] = evaluate_controllers(model, without_memory(model, vmc, h)[None], p.env,
                                                 args.eval_episodes, **eval_options)[0]
        if dagger:
            returns[DAGGER_HELD] = evaluate_controllers(
                model, without_memory(model, dagger[DAGGER_ROWS[0]].params, h_mean)[None], p.env,
                args.eval_episodes, **eval_options)[0]
    dream_score = float(dream_fitness(model, controller, best[None], rollouts=args.eval_episodes,
                                      max_steps=1000, tau=1.0, seed=1, start_z=z0,
                                      latent_noise=p.controller_latent_noise)[0])

    # throughput, same run: one real env (while collecting) vs 1024 batched dreams with the controller
    n, steps = 1024, 50
    start = time.perf_counter()
    dream_fitness(model, controller, np.repeat(best[None], n, 0), rollouts=1, max_steps=steps, tau=p.tau, seed=2,
                  start_z=z0, latent_noise=p.controller_latent_noise)
    dream_sps = n * steps / (time.perf_counter() - start)
    real_sps = real_steps["collect"] / wall["collect"] if wall.get("collect", 0) > 1 else float("nan")
    gif, gif_return = controller_gif(model, best, p.env, out.with_name(out.stem + ".gif"), seed=0,
                                      latent_noise=p.controller_latent_noise)

    means = {k: float(v.mean()) for k, v in returns.items()}
    paired = {b: paired_difference(returns["V+M+C"], returns[b])
              for b in ("V only", HELD_ROW, RESTART_ROW, "random", *ablations) if b in returns}
    alt = f" ({SOLUTION_LABELS[other]})"
    paired_other = paired_difference(returns["V+M+C" + alt], returns["V only" + alt])
    paired_dagger = {b: paired_difference(returns[DAGGER_ROWS[0]], returns[b])
                     for b in (DAGGER_ROWS[1], DAGGER_HELD) if b in returns}
    rows = {
        "env": p.env, "preset": args.preset, "eval_episodes": args.eval_episodes, "controller_where": where,
        "returns": {k: {"mean": float(v.mean()), "std": float(v.std()), "all": v.tolist()} for k, v in returns.items()},
        "solution": p.controller_solution, "vmc_minus_on_same_tracks": paired,
        "other_solution": {"solution": other, "vmc_minus_vonly_on_same_tracks": paired_other},
        **({"dagger_start_minus_on_same_tracks": paired_dagger,
            "dagger_histories": {k: v.history for k, v in dagger.items()}} if dagger else {}),
        "dream_return_full_tracks_tau1": dream_score, "dream_real_gap": dream_score - means["V+M+C"],
        "real_env_steps": real_steps, "dream_steps_per_s": dream_sps, "real_steps_per_s_while_collecting": real_sps,
        "wall_s": {k: wall[k] for k in (*vmc_stages, *([dagger_stages[DAGGER_ROWS[1]]] if dagger else []),
                                        vonly_stage, *control_stages.values(), "evaluation")
                   if k in wall},  # this run's stages
        "controller_history": history, "vonly_history": vonly_history,
        **{key: value for row, control_cfg, name, _ in controls
           for key, value in ((f"vonly_{name}_history", extra_histories[row]),
                              (f"vonly_{name}_values", dataclasses.asdict(control_cfg)))},
        "vmc_pipeline_s": None if any(k not in wall for k in vmc_stages) else sum(wall[k] for k in vmc_stages),
        "gif": gif.name, "gif_return": gif_return, "preset_values": dataclasses.asdict(p),
        "vonly_values": dataclasses.asdict(vonly_cfg), "backend": args.backend, "workers": args.workers,
        "threads": args.threads,
    }
    print(f"\n| {p.env} ({args.preset}), {args.eval_episodes} tracks | real return (mean +/- std) |\n|---|---:|")
    for name, v in returns.items():
        print(f"| {name} | {v.mean():.1f} +/- {v.std():.1f} |")
    print(f"| V+M+C in its own dream (1000 steps, tau 1) / gap to real | {dream_score:.1f} / "
          f"{dream_score - means['V+M+C']:+.1f} |")
    for b, d in [*paired.items(), ("V only" + alt, paired_other), *paired_dagger.items()]:
        a = DAGGER_ROWS[0] if b in paired_dagger else "V+M+C" + (alt if b.endswith(alt) else "")
        print(f"{a} minus {b}, same {args.eval_episodes} tracks: {d['mean']:+.1f} (standard error "
              f"{d['standard_error']:.1f}; {a} ahead on {d['tracks_ahead']}, behind on {d['tracks_behind']})")
    print("\n| stage | wall time |\n|---|---:|")
    for name, seconds in rows["wall_s"].items():  # wall.json also holds other seeds' stages
        print(f"| {name} | {seconds / 60:.1f} min |")
    if rows["vmc_pipeline_s"] is not None:
        print(f"| V+M+C in all: collect, V, M and its C stage(s) | {rows['vmc_pipeline_s'] / 60:.1f} min |")
    print("\nreal-environment steps: " + ", ".join(f"{k} {v:,}" for k, v in real_steps.items())
          + f"; {len(returns) * args.eval_episodes} evaluation tracks")
    print(f"batched dream steps/s (1024 dreams, with the controller) vs real env steps/s: "
          f"{dream_sps:,.0f} vs {real_sps:,.0f} ({dream_sps / real_sps:,.0f}x)")
    write_json(out, rows)
    curve = out.with_name(out.stem + "_curve.png")
    plot_curves(curve, history, where, vonly_history,
                {k: means[k] for k in ("V+M+C", "V only", "random", *(DAGGER_ROWS if dagger else ()))},
                f"{p.env}\n{args.preset} preset{seeded}", warm, extra_histories)
    print(f"wrote {out}, {curve.name} and {gif.name} (return {gif_return:.1f}) beside it")
