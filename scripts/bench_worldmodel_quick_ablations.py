"""Benchmark: what M's memory and an ensemble of M's are worth on the quick preset (one frame lacks the velocities).

Run:  OMP_NUM_THREADS=1 python scripts/bench_worldmodel_quick_ablations.py --seed 0
      (about 21 minutes with two seeds side by side on 2 cores), then --summary for the table of the seeds run

For one seed: collect (60 random episodes of gailkit/CartPoleCentredPixels-v1) -> V -> an ensemble of K M's
(``train_mdn(..., ensemble=K)``; the first is the one M the quick preset fits, bit for bit). Then controllers
trained by CMA-ES, each from the same CMA-ES seed, with the quick preset's settings, in the dream or in the real env:

- ``one M``: C over ``[z, h]`` in the first M's dream (the quick preset's own controller, as
  ``bench_worldmodel_quick.py`` trains it);
- ``V only``: C over ``z`` alone, in the same dream (the paper's V-only row, trained where V+M+C is);
- ``per step``: C over ``[z, h]``, every dream step from a member drawn at that step (``ensemble_draw="step"``);
- ``per dream``: the same, every dream following the one member drawn at its start (``ensemble_draw="dream"``);
- ``one M, real`` and ``V only, real``: C over ``[z, h]`` (the first M's h) and over ``z`` alone, trained by the
  same CMA-ES in the *real* env (``train_controller_in_real``, ``REAL_ROLLOUTS`` episodes per candidate, cut at
  ``max_steps``), as the paper trained both of its rows;

and, with no training of their own, ``one M, h held`` and ``one M, real, h held``: the one-M controllers with h
held at its average over the collected data (``without_memory(..., mean_memory(...))``), which shows whether a
controller uses what h varies with. A CartPole frame shows the cart and the pole but not how fast they move, which
only h, fed the frames in turn, can carry.

Each controller drives the same 20 real episodes (the library's evaluation seeds), and its own dream (the first
M's for the rows trained in the real env) scores it (the controller over ``--dream-episodes`` dreams from real
first frames, a seed apart from training's): the dream/real gap is how much its dream overrates it. On CarRacing
the per-step dream was exploited and the per-dream one gave the best dream-trained controller, and V only drove
as well as V+M+C (docs/carracing.md); this asks the same on a second task.

Writes scripts/results/bench_worldmodel_quick_ablations_seed<S>.json; ``--summary`` prints the table of
every seed's JSON there, with the differences seed by seed, and writes bench_worldmodel_quick_ablations.json.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser
from gailkit.nn.checkpoint import write_json
from gailkit.worldmodels.controller import (
    DreamTrainingConfig,
    dream_fitness,
    train_controller_in_dream,
    train_controller_in_real,
)
from gailkit.worldmodels.data import collect_chunks
from gailkit.worldmodels.linear_controller import controller_for, without_memory
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS, WorldModelPreset
from gailkit.worldmodels.real import evaluate_controller
from gailkit.worldmodels.train import mean_memory, start_latents, train_mdn, train_vae

RESULTS = Path(__file__).resolve().parent / "results"
DREAM_SEED = 7_777  # the dreams that score each finished controller, apart from every training generation's
REAL_ROLLOUTS = 4  # real episodes per candidate for the rows trained in the real env (the fast-2h presets' number)
# name: (where C trains: the dream of the first M alone or of the ensemble, or the real env; C over [z, h] or z
# alone; the ensemble draw)
TRAINED = {"one M": ("first", True, "dream"), "V only": ("first", False, "dream"),
           "per step": ("ensemble", True, "step"), "per dream": ("ensemble", True, "dream"),
           "one M, real": ("real", True, "dream"), "V only, real": ("real", False, "dream")}
HELD = {"one M": "one M, h held", "one M, real": "one M, real, h held"}  # those controllers, h held at its data mean
ROWS = (*TRAINED, *HELD.values())
DIFFERENCES = (("one M", "V only"), ("one M", HELD["one M"]), ("per dream", "per step"), ("per dream", "one M"),
               ("per step", "one M"), ("one M, real", "V only, real"), ("one M, real", HELD["one M, real"]),
               ("one M, real", "one M"), ("V only, real", "V only"))


def one_m(model: WorldModel) -> WorldModel:
    """The same world model with its first M alone (a shallow copy: V and M shared)."""
    single = copy.copy(model)
    single.members = []
    return single


def run_seed(seed: int, ensemble: int, eval_episodes: int, dream_episodes: int,
             p: WorldModelPreset = WM_PRESETS["quick"]) -> dict:
    """One seed's controllers (``ROWS``) and the random policy, on preset ``p``'s pipeline."""
    wall: dict[str, float] = {}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench_wm_quick_ablations_") as tmp:
        root = Path(tmp)
        data, model_dir = root / "data", root / "model"
        start = time.perf_counter()
        collect_chunks(p.env, data, p.episodes, policy=p.collect_policy, seed=1000 * seed, progress=False)
        train_vae(data, model_dir, **p.vae_options(), seed=seed, progress=False)
        wall["collect and V"] = time.perf_counter() - start
        start = time.perf_counter()
        model = train_mdn(data, model_dir, **{**p.mdn_options(), "ensemble": ensemble}, seed=seed, progress=False)
        wall[f"{ensemble} M's"] = time.perf_counter() - start
        start_z = start_latents(model, data)
        h_mean = mean_memory(model, data)

        def score(name: str, world: WorldModel, params: np.ndarray, cfg: DreamTrainingConfig, **extra) -> None:
            real = evaluate_controller(model, params, p.env, eval_episodes)
            dream = dream_fitness(world, controller_for(world, memory=cfg.memory), params[None],
                                  rollouts=dream_episodes, max_steps=cfg.max_steps, tau=cfg.tau, seed=DREAM_SEED,
                                  start_z=start_z, latent_noise=cfg.latent_noise, ensemble_draw=cfg.ensemble_draw)[0]
            rows[name] = {"real": {"mean": float(real.mean()), "std": float(real.std()), "all": real.tolist()},
                          "dream": float(dream), "gap": float(dream - real.mean()), **extra}
            print(f"seed {seed}, {name}: real {real.mean():.1f} +/- {real.std():.1f}, dream {dream:.1f}, "
                  f"gap {dream - real.mean():+.1f}", flush=True)

        for name, (where, memory, draw) in TRAINED.items():
            world = model if where == "ensemble" else one_m(model)
            cfg = DreamTrainingConfig(**p.controller_options(), seed=seed, memory=memory, ensemble_draw=draw)
            out = root / name.replace(" ", "_").replace(",", "")
            start = time.perf_counter()
            if where == "real":
                cfg = dataclasses.replace(cfg, rollouts=REAL_ROLLOUTS)
                best, history = train_controller_in_real(model_dir, p.env, cfg, out, workers=1, progress=False)
            else:
                best, history = train_controller_in_dream(world, cfg, out, start_z=start_z, progress=False)
            wall[f"C, {name}"] = time.perf_counter() - start
            score(name, world, best, cfg, **{f"{'real' if where == 'real' else 'dream'}_history": history})
            if name in HELD:
                held = without_memory(model, best, h_mean)
                score(HELD[name], world, held, dataclasses.replace(cfg, memory=False))
        random = evaluate_controller(model, None, p.env, eval_episodes)
    return {"preset": "quick", "env": p.env, "seed": seed, "ensemble": ensemble, "eval_episodes": eval_episodes,
            "dream_episodes": dream_episodes, "rows": rows,
            "random": {"mean": float(random.mean()), "std": float(random.std()), "all": random.tolist()},
            "wall_s": wall, "preset_values": dataclasses.asdict(p),
            "machine": {"platform": platform.platform(), "torch": torch.__version__,
                        "torch_threads": torch.get_num_threads()}}


def seed_difference(a: list[float], b: list[float]) -> dict:
    """``a`` minus ``b`` seed by seed: the differences, their mean, its standard error over the seeds, and the
    seeds on which ``a`` is ahead."""
    d = np.subtract(a, b)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"seeds": d.tolist(), "mean": float(d.mean()), "se_over_seeds": se, "ahead": int((d > 0).sum())}


def print_differences(differences: dict[str, dict], n_seeds: int) -> None:
    for name, d in differences.items():
        print(f"{name}: {d['mean']:+.1f} (SE {d['se_over_seeds']:.1f} over the seeds; ahead on {d['ahead']} of "
              f"{n_seeds})")


def summary(results: Path) -> dict:
    """Every seed's JSON in ``results`` side by side; the table printed and written."""
    seeds = [json.loads(path.read_text())
             for path in sorted(results.glob("bench_worldmodel_quick_ablations_seed*.json"))]
    if not seeds:
        raise SystemExit(f"no bench_worldmodel_quick_ablations_seed*.json in {results}: run a --seed first")
    table = {name: {"real": [s["rows"][name]["real"]["mean"] for s in seeds],
                    "dream": [s["rows"][name]["dream"] for s in seeds],
                    "gap": [s["rows"][name]["gap"] for s in seeds]} for name in ROWS}
    for row in table.values():
        row.update({f"{k}_mean": float(np.mean(row[k])) for k in ("real", "dream", "gap")})
    random = [s["random"]["mean"] for s in seeds]
    differences = {f"{a} minus {b}": seed_difference(table[a]["real"], table[b]["real"]) for a, b in DIFFERENCES}
    out = {"seeds": [s["seed"] for s in seeds], "ensemble": seeds[0]["ensemble"],
           "eval_episodes": seeds[0]["eval_episodes"], "rows": table, "random": random,
           "differences": differences}
    cells = " | ".join(f"seed {s}" for s in out["seeds"])
    print(f"| quick preset ({out['ensemble']} M's) | real return: {cells} | mean | dream | gap |")
    print("|---|" + "---:|" * (len(seeds) + 3))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{r:.1f}" for r in row["real"]) +
              f" | **{row['real_mean']:.1f}** | {row['dream_mean']:.1f} | {row['gap_mean']:+.1f} |")
    print("| random | " + " | ".join(f"{r:.1f}" for r in random) + f" | {np.mean(random):.1f} | | |")
    print_differences(differences, len(seeds))
    print(f"\nwrote {write_json(results / 'bench_worldmodel_quick_ablations.json', out)}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of collection, V, the M's and CMA-ES")
    parser.add_argument("--ensemble", type=int, default=3, help="M's in the ensemble (K > 1)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="real episodes per controller")
    parser.add_argument("--dream-episodes", type=int, default=256, help="dreams that score each controller")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--summary", action="store_true", help="only print and write the table of the seeds run")
    args = parser.parse_args(argv)
    if args.summary:
        summary(args.out_dir)
        return
    if args.ensemble < 2:
        parser.error(f"--ensemble {args.ensemble}: an ensemble has K > 1 M's")
    torch.set_num_threads(1)
    result = run_seed(args.seed, args.ensemble, args.eval_episodes, args.dream_episodes)
    print(f"wrote {write_json(args.out_dir / f'bench_worldmodel_quick_ablations_seed{args.seed}.json', result)}")


if __name__ == "__main__":
    main()
