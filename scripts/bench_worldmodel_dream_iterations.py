"""Benchmark: the World Models iterative procedure on CarRacing, C trained in the dream only.

Run:  python scripts/probe_worldmodel_dream.py --preset fast-2h-m32-hold-z-m30-means --refit 50 --refit-noise 0
      python scripts/bench_worldmodel_dream_iterations.py --preset fast-2h-m32-hold-z-m30-means   (about 60 minutes)

scripts/probe_worldmodel_dream.py found M's dream faithful to a real controller only once M was refitted on that
controller's own driving; a controller searched from nothing in that dream exploits it (it pays for a car that
does not drive). This runs ``gailkit.worldmodels.iterative.train_iteratively`` from there: M is fitted on the
run's collected episodes and the probe's 50 noise-free episodes of the run's V+M+C; each iteration, C's CMA-ES
(from zeros, then continuing) runs ``--generations`` in M's dream, its real return on 8 tracks is measured
beside its dream return, and the next iteration records ``--episodes`` real episodes of it (no exploration
noise, which brakes CarRacing's car), refits M on all data and continues. Does the dream/real gap close, and
does a controller trained only in dreams learn to drive? V is the run's throughout.

Every iteration is written under the run folder (``dream_iterations/``), and a rerun resumes. Writes
scripts/results/bench_worldmodel_dream_iterations_<preset>.json.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gailkit.configs import CommandParser, int_in
from gailkit.files import write_json
from gailkit.worldmodels.controller import DreamTrainingConfig
from gailkit.worldmodels.iterative import IterativeConfig, train_iteratively
from gailkit.worldmodels.presets import WM_PRESETS

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(WM_PRESETS), default="fast-2h-m32-hold-z-m30-means")
    parser.add_argument("--dir", type=Path, help="the run folder (default: ~/.cache/gailkit/bench/worldmodel/<preset>)")
    parser.add_argument("--iterations", type=int_in(1), default=8)
    parser.add_argument("--episodes", type=int_in(1), default=32, help="real episodes recorded per iteration")
    parser.add_argument("--generations", type=int_in(1), default=100, help="C's CMA-ES generations per iteration")
    parser.add_argument("--out", type=Path,
                        help="default: scripts/results/bench_worldmodel_dream_iterations_<preset>.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    p = WM_PRESETS[args.preset]
    run = args.dir or Path.home() / ".cache" / "gailkit" / "bench" / "worldmodel" / args.preset
    driving = run / "probe_dream" / "controller_noisy_50_noise0"
    if not (driving / "meta.json").exists():
        parser.error(f"no noise-free episodes of the run's controller in {driving}: run python "
                     f"scripts/probe_worldmodel_dream.py --preset {args.preset} --refit 50 --refit-noise 0 first")
    controller = DreamTrainingConfig(generations=args.generations, popsize=16, rollouts=16, max_steps=1000, tau=1.0,
                                     sigma0=0.5, solution="mean", latent_noise=p.controller_latent_noise)
    config = IterativeConfig(iterations=args.iterations, episodes=args.episodes, noise=0.0, where="dream",
                             mdn_epochs=p.mdn_epochs, eval_episodes=8)
    records = train_iteratively(run / "model", [run / "data", driving], p.env, config, controller,
                                run / "dream_iterations",
                                mdn_options={k: v for k, v in p.mdn_options().items() if k != "epochs"})
    print("| iteration | episodes | dream return | real return | gap |\n|---:|---:|---:|---:|---:|")
    for r in records:
        print(f"| {r['iteration']} | {r['episodes']} | {r['dream_return']:.1f} | {r['real_return']:.1f} | "
              f"{r['gap']:+.1f} |")
    out = args.out or RESULTS / f"bench_worldmodel_dream_iterations_{args.preset}.json"
    write_json(out, {"preset": args.preset, "env": p.env, "iterative": config.__dict__,
                     "controller": controller.__dict__, "records": records})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
