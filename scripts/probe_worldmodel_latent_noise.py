"""Probe: what V's sampling noise costs a trained CarRacing controller. C (and M) are trained on draws of
V's posterior, as in the World Models code; on CarRacing that posterior is wide (its variance sums to about
20 over 32 dimensions: scripts/probe_worldmodel_m_samples.py). This evaluates a finished
scripts/bench_worldmodel.py run's controllers fed draws and fed V's posterior mean, on the same 100 tracks
(the way they were trained, DreamTrainingConfig.latent_noise, reproduces the run's own rows). With
--split-idle, also, for the preset's solution, fed draws in part of z only: in V's idle dimensions (whose
mean hardly varies over the run's frames: variance below 0.05; a draw there is noise alone) with V's mean
in the others, and the converse.

Run:  python scripts/probe_worldmodel_latent_noise.py --preset fast-2h-m32-hold-z-m30   (about 5 minutes)
      python scripts/probe_worldmodel_latent_noise.py --preset fast-2h-m32-hold-z-m30 --split-idle  (about 10)

Reads the run folder (default ~/.cache/gailkit/bench/worldmodel/<preset>, seed 0's searches); writes
scripts/results/probe_worldmodel_latent_noise_<preset>.json: each controller's returns (the preset's
solution and the other, evaluated together as the benchmark does) and track by track mean minus draws;
with --split-idle, each partial feed minus draws and V's posterior over the run's frames (the idle
dimensions), in probe_worldmodel_latent_noise_<preset>_split.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser
from gailkit.files import write_json
from gailkit.worldmodels.controller import SOLUTIONS, load_solution
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.real import evaluate_controllers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_worldmodel_seeds import difference  # noqa: E402  (scripts/ is not a package)
from probe_worldmodel_m_samples import v_posterior  # noqa: E402

IDLE = 0.05  # a dimension whose mean varies less than this over the frames carries V's noise alone

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(WM_PRESETS), default="fast-2h-m32-hold-z-m30")
    parser.add_argument("--dir", type=Path, help="the run folder (default: ~/.cache/gailkit/bench/worldmodel/<preset>)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--split-idle", action="store_true",
                        help="also feed draws in V's idle dimensions only, and in the others only")
    parser.add_argument("--out", type=Path, help="default: scripts/results/probe_worldmodel_latent_noise_<preset>.json "
                                                 "(with --split-idle, ..._<preset>_split.json)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    p = WM_PRESETS[args.preset]
    run = args.dir or Path.home() / ".cache" / "gailkit" / "bench" / "worldmodel" / args.preset
    warm = p.warm_start_generations
    folders = {"V+M+C": f"controller_{p.controller_where}{'_from_vonly' if warm else ''}",
               "V only": f"controller_vonly_{warm + p.generations}" if warm else "controller_vonly"}
    missing = [str(run / f) for f in folders.values() if not (run / f / "history.json").exists()]
    if missing:
        parser.error(f"no trained controller in {', '.join(missing)}: run python scripts/bench_worldmodel.py "
                     f"--preset {args.preset} first, or name its folder with --dir")
    model = WorldModel.load(run / "model")
    split = {}  # the partial feeds' names: which dimensions get draws
    if args.split_idle:
        with torch.no_grad():
            posterior = v_posterior(model, run / "data")
        idle = np.asarray(posterior["signal_variance"]) < IDLE
        split = {"draws in the idle dimensions only": idle, "draws in the other dimensions only": ~idle}
        print(f"V on the run's frames: {idle.sum()} of {model.latent_dim} dimensions idle (their mean's variance "
              f"below {IDLE}), carrying {np.asarray(posterior['noise_variance'])[idle].sum():.2f} of the noise's "
              f"{posterior['noise_variance_sum']:.2f}", flush=True)
    other = next(s for s in SOLUTIONS if s != p.controller_solution)
    returns, differences = {}, {}
    for name, folder in folders.items():
        params = np.stack([load_solution(run / folder, p.controller_solution), load_solution(run / folder, other)])
        for fed, noise in (("draws", 1.0), ("mean", 0.0)):
            both = evaluate_controllers(model, params, p.env, args.eval_episodes, frame_skip=p.frame_skip,
                                        latent_noise=noise)
            returns[f"{name}, fed V's {fed}"] = both[0]
            returns[f"{name} (the {other} solution), fed V's {fed}"] = both[1]
        for fed, where in split.items():
            returns[f"{name}, fed {fed}"] = evaluate_controllers(model, params[:1], p.env, args.eval_episodes,
                                                                 frame_skip=p.frame_skip,
                                                                 latent_noise=where.astype(float))[0]
        for label in (name, f"{name} (the {other} solution)"):
            drawn = returns[f"{label}, fed V's draws"]
            for fed in ("V's mean", *split):
                if f"{label}, fed {fed}" not in returns:
                    continue
                fed_so = returns[f"{label}, fed {fed}"]
                key = f"{label}: mean minus draws" if fed == "V's mean" else f"{label}: {fed} minus draws"
                d = differences[key] = difference(fed_so - drawn)
                print(f"{label}: fed draws {drawn.mean():.1f}, fed {fed} {fed_so.mean():.1f}; minus draws "
                      f"{d['mean']:+.1f} (SE {d['standard_error']:.1f}, {d['tracks_ahead']} tracks ahead, "
                      f"{d['tracks_behind']} behind)", flush=True)
    out = args.out or RESULTS / f"probe_worldmodel_latent_noise_{args.preset}{'_split' if split else ''}.json"
    minus = {k: v for k, v in differences.items() if k.endswith("mean minus draws")}
    write_json(out, {"preset": args.preset, "env": p.env, "eval_episodes": args.eval_episodes,
                     "folders": folders, "returns": {k: {"mean": float(v.mean()), "std": float(v.std()),
                                                         "all": v.tolist()} for k, v in returns.items()},
                     "mean_minus_draws": minus,
                     **({"partial_minus_draws": {k: v for k, v in differences.items() if k not in minus},
                         "v_posterior": posterior, "idle_dimensions": np.flatnonzero(idle).tolist(),
                         "idle_threshold": IDLE} if split else {})})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
