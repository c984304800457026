"""Benchmark: the World Models iterative procedure on CarRacing, C trained in the dream only.

Run:  python scripts/probe_worldmodel_dream.py --preset fast-2h-m32-hold-z-m30-means --refit 50 --refit-noise 0
      python scripts/bench_worldmodel_dream_iterations.py --preset fast-2h-m32-hold-z-m30-means   (about 60 minutes)
      python scripts/bench_worldmodel_dream_iterations.py --preset fast-2h-m32-hold-z-m30 --tau 1.15   (the paper's
          remedy for exploits: a controller fed V's draws, trained in M's draws at temperature 1.15)
      python scripts/bench_worldmodel_dream_iterations.py --preset fast-2h-m32-hold-z-m30 --tau 1.15 --dream-start 50
          (the same, dreams started past CarRacing's opening zoom, M's memory warmed on the real steps)
      python scripts/bench_worldmodel_dream_iterations.py --preset fast-2h-m32-hold-z-m30 --tau 1.15 --dream-start 50 \
          --from-vonly --sigma0 0.2   (C's search from the run's V only driver, not from zeros)
      python scripts/bench_worldmodel_dream_iterations.py --preset fast-2h-m32-hold-z-m30 --tau 1.15 --dream-start 50 \
          --m-ensemble 3 --iterations 8 --keep best --select-tracks 32   (each dream follows one of 3 M's)

scripts/probe_worldmodel_dream.py found M's dream faithful to a real controller only once M was refitted on that
controller's own driving; a controller searched from nothing in that dream exploits it (it pays for a car that
does not drive). This runs ``gailkit.worldmodels.iterative.train_iteratively`` from there: M is fitted on the
run's collected episodes and the probe's 50 noise-free episodes of the run's V+M+C; each iteration, C's CMA-ES
(from zeros, then continuing) runs ``--generations`` in M's dream, its real return on 8 tracks is measured
beside its dream return, and the next iteration records ``--episodes`` real episodes of it (no exploration
noise, which brakes CarRacing's car), refits M on all data and continues. Does the dream/real gap close, and
does a controller trained only in dreams learn to drive? V is the run's throughout.

- ``--tau``: M's temperature in C's training dreams; each iteration's dream return is measured at
  temperature 1, M as fitted, too. For a preset whose controller is fed V's mean the dream is M's mixture
  mean, which the temperature barely moves (it only flattens the mixture's weights); for one fed V's draws,
  the dream draws too.
- ``--dream-start W``: C's dreams (and the measured ones) start W steps into the newest episodes (the probe's
  driving ones, then the previous controller's), M's memory run over the real steps before, as the probe's
  second closed loop does: the dream need not invent the track through CarRacing's opening zoom.
- ``--from-vonly``: C's search starts from the V only controller that the run's V+M+C started from in the
  real env (weights on h 0): can the dream improve a driver? That start's real return is measured on the
  same tracks as each iteration's and as the last controller's. With ``--hold-z`` the weights on z stay
  V only's, and the search moves those on h and the biases, as the real-env stage of the hold-z presets.
- ``--m-ensemble K``: each iteration fits K M's, each from its own seed, and each of C's dreams follows one of
  them, drawn at its start, for its whole length (``train_mdn(..., ensemble=K)``,
  :class:`~gailkit.worldmodels.dream.BatchedDream`), meant to pay an exploit of one M's mistakes only in the
  dreams of that M. C sees the first M's h, as in the real env (each iteration's dream returns are measured in
  the same ensemble dream). With ``--ensemble-draw step`` every dream step draws its member (MBPO's way; the
  run folder has no ``_per_dream``). With ``--halt-quantile Q`` a
  dream ends, paying -100, where the M's forecasts part by more than they do at the Q quantile of the
  newest real episodes' steps (MOReL's halt; ``IterativeConfig.halt_quantile``).

At the end, the last iteration's controller (``--keep best``: the best on the selection tracks,
``--select-tracks`` tracks apart from the benchmark's) drives ``--final-tracks`` real tracks, the same
as bench_worldmodel.py's.
Every iteration is written under the run folder (``dream_iterations/``, with ``_tau<T>``, ``_start<W>``,
``_from_vonly``, ``_hold_z``, ``_sigma<S>``, ``_ensemble<K>``, ``_per_dream`` and ``_halt<Q>`` for the options'
other values), and a rerun resumes. Writes
scripts/results/bench_worldmodel_dream_iterations_<preset><the same suffixes>.json
(``_keep_best`` added with ``--keep best``, ``_keep_best<N>`` with ``--select-tracks N`` too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser, float_above_zero, int_in
from gailkit.files import write_json
from gailkit.worldmodels.controller import DreamTrainingConfig, load_solution
from gailkit.worldmodels.iterative import IterativeConfig, kept_iteration, train_iteratively
from gailkit.worldmodels.linear_controller import all_but_z_weights, with_memory
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.real import evaluate_controller

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(WM_PRESETS), default="fast-2h-m32-hold-z-m30-means")
    parser.add_argument("--dir", type=Path, help="the run folder (default: ~/.cache/gailkit/bench/worldmodel/<preset>)")
    parser.add_argument("--iterations", type=int_in(1), default=8)
    parser.add_argument("--episodes", type=int_in(1), default=32, help="real episodes recorded per iteration")
    parser.add_argument("--generations", type=int_in(1), default=100, help="C's CMA-ES generations per iteration")
    parser.add_argument("--tau", type=float_above_zero(), default=1.0, help="M's temperature in C's training dreams")
    parser.add_argument("--dream-start", type=int_in(0, 1000), default=0, metavar="W",
                        help="C's dreams start W steps into the recorded episodes, M's memory run over the steps "
                             "before (0: at their first frames; 50: past CarRacing's opening zoom)")
    parser.add_argument("--from-vonly", action="store_true",
                        help="C's search starts from the run's V only controller (the one V+M+C's real-env search "
                             "started from; weights on h 0), not from zeros: can the dream improve a driver?")
    parser.add_argument("--hold-z", action="store_true",
                        help="with --from-vonly: the weights on z stay V only's, the search moves those on h and the "
                             "biases (the real-env stage's hold_z)")
    parser.add_argument("--sigma0", type=float_above_zero(), default=0.5, help="C's CMA-ES initial step size")
    parser.add_argument("--m-ensemble", type=int_in(1), default=1, metavar="K",
                        help="fit K M's each iteration; each of C's dreams follows one of them (--ensemble-draw)")
    parser.add_argument("--ensemble-draw", choices=("dream", "step"),
                        help="with --m-ensemble: one member per dream for its whole length (default), or a member "
                             "per dream step")
    parser.add_argument("--halt-quantile", type=float_above_zero(), metavar="Q",
                        help="with --m-ensemble: dreams halt (paying -100) where the M's disagree more than at this "
                             "quantile of their disagreements on the newest real episodes, e.g. 0.99")
    parser.add_argument("--keep", choices=("last", "best"), default="last",
                        help="the iteration that drives the final tracks: the last, or the best on the selection "
                             "tracks (apart from the benchmark's)")
    parser.add_argument("--select-tracks", type=int_in(1), default=8,
                        help="real tracks, apart from the benchmark's, each iteration is scored on for --keep best")
    parser.add_argument("--final-tracks", type=int_in(0), default=100,
                        help="the kept iteration's controller on the benchmark's evaluation tracks (0: not)")
    parser.add_argument("--out", type=Path,
                        help="default: scripts/results/bench_worldmodel_dream_iterations_<preset><the folder's "
                             "suffixes>.json")
    args = parser.parse_args(argv)
    if args.hold_z and not args.from_vonly:
        parser.error("--hold-z holds the weights on z at V only's: add --from-vonly")
    if args.halt_quantile is not None and (args.m_ensemble == 1 or args.halt_quantile > 1):
        parser.error("--halt-quantile Q halts dreams where an ensemble's M's disagree: add --m-ensemble K (K > 1), "
                     "Q in (0, 1]")
    if args.ensemble_draw is not None and args.m_ensemble == 1:
        parser.error("--ensemble-draw picks among an ensemble's M's: add --m-ensemble K (K > 1)")
    args.ensemble_draw = args.ensemble_draw or "dream"
    torch.set_num_threads(2)
    p = WM_PRESETS[args.preset]
    run = args.dir or Path.home() / ".cache" / "gailkit" / "bench" / "worldmodel" / args.preset
    driving = run / "probe_dream" / "controller_noisy_50_noise0"
    if not (driving / "meta.json").exists():
        parser.error(f"no noise-free episodes of the run's controller in {driving}: run python "
                     f"scripts/probe_worldmodel_dream.py --preset {args.preset} --refit 50 --refit-noise 0 first")
    suffix = "".join(tag for tag, other in ((f"_tau{args.tau:g}", args.tau != 1.0),
                                            (f"_start{args.dream_start}", args.dream_start),
                                            ("_from_vonly", args.from_vonly), ("_hold_z", args.hold_z),
                                            (f"_sigma{args.sigma0:g}", args.sigma0 != 0.5),
                                            (f"_ensemble{args.m_ensemble}", args.m_ensemble > 1),
                                            ("_per_dream", args.m_ensemble > 1 and args.ensemble_draw == "dream"),
                                            (f"_halt{args.halt_quantile}", args.halt_quantile)) if other)
    x0, held = None, {}
    if args.from_vonly:
        vonly = run / "controller_vonly"
        if not p.warm_start_generations or not (vonly / "history.json").exists():
            parser.error(f"no V only controller that V+M+C's search started from in {vonly}: --from-vonly needs a "
                         "preset with --warm-start-generations, run by scripts/bench_worldmodel.py")
        model = WorldModel.load(run / "model")
        x0 = with_memory(model, load_solution(vonly, p.controller_solution))
        if args.hold_z:
            held = {"search_index": all_but_z_weights(model).tolist(), "held": x0.tolist()}
    controller = DreamTrainingConfig(generations=args.generations, popsize=16, rollouts=16, max_steps=1000,
                                     tau=args.tau, sigma0=args.sigma0, solution="mean",
                                     latent_noise=p.controller_latent_noise, dream_start=args.dream_start,
                                     ensemble_draw=args.ensemble_draw, **held)
    config = IterativeConfig(iterations=args.iterations, episodes=args.episodes, noise=0.0, where="dream",
                             mdn_epochs=p.mdn_epochs, eval_episodes=8,
                             select_episodes=args.select_tracks, halt_quantile=args.halt_quantile)
    folder = run / f"dream_iterations{suffix}"
    records = train_iteratively(run / "model", [run / "data", driving], p.env, config, controller, folder,
                                mdn_options={k: v for k, v in p.mdn_options().items() if k != "epochs"}
                                | {"ensemble": args.m_ensemble}, x0=x0)

    def real_returns(model_dir: Path, params: np.ndarray, tracks: int) -> np.ndarray:  # the benchmark's first tracks
        return evaluate_controller(WorldModel.load(model_dir), params, p.env, tracks, max_steps=controller.max_steps,
                                   frame_skip=controller.frame_skip, latent_noise=controller.latent_noise)

    start = None
    if x0 is not None:  # the V only start on the iterations' tracks (it reads no h: any M will do)
        start = {"tracks": config.eval_episodes,
                 "mean": float(real_returns(run / "model", x0, config.eval_episodes).mean())}
        print(f"the V only start on the iterations' {config.eval_episodes} tracks: {start['mean']:.1f}")
    hot = f" | dream return at tau {args.tau:g}" if args.tau != 1.0 else ""
    print(f"| iteration | episodes | dream return{hot} | real return | gap | on the selection tracks |")
    print("|---:" * (7 if hot else 6) + "|")
    for r in records:
        at_tau = f" | {r['dream_return_at_tau']:.1f}" if hot else ""
        print(f"| {r['iteration']} | {r['episodes']} | {r['dream_return']:.1f}{at_tau} | {r['real_return']:.1f} | "
              f"{r['gap']:+.1f} | {r['select_return']:.1f} |")
    final = None
    if args.final_tracks:  # the same tracks as bench_worldmodel.py's rows, C fed its own iteration's M's h
        kept = kept_iteration(folder, args.keep, iterations=len(records))
        returns = real_returns(kept["model_dir"], np.asarray(kept["best_x"]), args.final_tracks)
        final = {"iteration": kept["iteration"], "keep": args.keep, "tracks": args.final_tracks,
                 "mean": float(returns.mean()), "std": float(returns.std()), "returns": returns.tolist()}
        print(f"iteration {kept['iteration']}'s controller ({args.keep}) on {args.final_tracks} tracks: "
              f"{returns.mean():.1f} +/- {returns.std():.1f}")
        if x0 is not None:
            before = real_returns(run / "model", x0, args.final_tracks)
            diff = returns - before
            start.update(final_tracks=args.final_tracks, final_mean=float(before.mean()), final_std=float(before.std()),
                         final_returns=before.tolist())
            print(f"the V only start on the same tracks: {before.mean():.1f} +/- {before.std():.1f}; the dream's "
                  f"gain {diff.mean():+.1f} (SE {diff.std(ddof=1) / np.sqrt(len(diff)):.1f})")
    keep = f"_keep_best{'' if args.select_tracks == 8 else args.select_tracks}" if args.keep == "best" else ""
    out = args.out or RESULTS / f"bench_worldmodel_dream_iterations_{args.preset}{suffix}{keep}.json"
    write_json(out, {"preset": args.preset, "env": p.env, "iterative": config.__dict__,
                     "controller": controller.__dict__, "from_vonly": args.from_vonly, "m_ensemble": args.m_ensemble,
                     "start": start,
                     "records": records, "final": final})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
