"""Benchmark: the World Models iterative procedure on the quick preset (C trained only in the dream).

Run:  OMP_NUM_THREADS=1 python scripts/bench_worldmodel_quick_iterations.py --seed 0 --iterations 5
      (30-42 minutes a seed with two or three side by side on 2 cores), then --summary for the table of the seeds run

For one seed: collect (60 random episodes of gailkit/CartPoleCentredPixels-v1) -> V -> M, the quick preset's
pipeline with ``bench_worldmodel_quick_ablations.py``'s seeds; then ``train_iteratively`` (what ``gailkit
worldmodel iterate --preset quick`` runs): iteration 0 fits M on the random episodes and trains C by CMA-ES in
its dream, from zeros; each later iteration records 32 real episodes of the previous controller (Gaussian noise
0.1 on its actions), fits M again on all the data, and continues C's search in the new M's dream. Iteration 0
is the ablation bench's ``one M`` row, bit for bit. Each iteration's controller then drives the same 20 real
episodes (the library's evaluation seeds, run in full: ``train_iteratively``'s own measure of the gap cuts them
at the preset's 200 training steps), to compare with the ablation bench's rows: does collecting with the
controller move a controller trained only in dreams towards the one trained in the real env?

The iteration gailkit keeps is the best on 8 selection tracks apart from those 20, run in whole episodes
(``IterativeConfig.select_max_steps`` None); the bench also picks on the same tracks cut at 200 steps, as
``train_iteratively`` did before, where controllers that reach 200 tie and the tie goes to the earlier one.

Writes scripts/results/bench_worldmodel_quick_iterations_seed<S>.json; ``--summary`` prints the table of every
seed's JSON there and writes bench_worldmodel_quick_iterations.json (with the kept iteration minus the ablation
bench's V+M+C trained in the real env, where bench_worldmodel_quick_ablations.json holds the same seeds).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser
from gailkit.nn.checkpoint import write_json
from gailkit.worldmodels.controller import DreamTrainingConfig
from gailkit.worldmodels.data import collect_chunks
from gailkit.worldmodels.iterative import SELECT_SEED, IterativeConfig, kept_iteration, train_iteratively
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS, WorldModelPreset
from gailkit.worldmodels.real import evaluate_controller
from gailkit.worldmodels.train import train_mdn, train_vae

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_worldmodel_quick_ablations import print_differences, seed_difference  # noqa: E402  (scripts/ is no package)

RESULTS = Path(__file__).resolve().parent / "results"


def run_seed(seed: int, iterations: int, eval_episodes: int, p: WorldModelPreset = WM_PRESETS["quick"],
             record_episodes: int = 32) -> dict:
    """One seed's iterations: ``train_iteratively``'s records, each with its controller's real return."""
    wall: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_wm_quick_iterations_") as tmp:
        root = Path(tmp)
        data, model_dir, out = root / "data", root / "model", root / "iterations"
        start = time.perf_counter()
        collect_chunks(p.env, data, p.episodes, policy=p.collect_policy, seed=1000 * seed, progress=False)
        train_vae(data, model_dir, **p.vae_options(), seed=seed, progress=False)
        train_mdn(data, model_dir, **p.mdn_options(), seed=seed, progress=False)
        wall["collect, V and M"] = time.perf_counter() - start
        start = time.perf_counter()
        iterating = IterativeConfig(iterations=iterations, episodes=record_episodes, mdn_epochs=p.mdn_epochs, seed=seed)
        controller = DreamTrainingConfig(**p.controller_options(), seed=seed)
        m_options = {k: v for k, v in p.mdn_options().items() if k != "epochs"}
        records = train_iteratively(model_dir, data, p.env, iterating, controller, out, mdn_options=m_options,
                                    workers=1, progress=False)
        wall["iterations"] = time.perf_counter() - start
        for record in records:
            kept = kept_iteration(out, record["iteration"])
            real = evaluate_controller(WorldModel.load(kept["model_dir"]), np.asarray(kept["best_x"]), p.env,
                                       eval_episodes)
            record["real"] = {"mean": float(real.mean()), "std": float(real.std()), "all": real.tolist()}
            record["select_return_cut"] = float(evaluate_controller(  # the selection before select_max_steps
                WorldModel.load(kept["model_dir"]), np.asarray(kept["best_x"]), p.env, iterating.select_episodes,
                seed=SELECT_SEED, max_steps=p.max_steps).mean())
            print(f"seed {seed}, iteration {record['iteration']}: real {real.mean():.1f} +/- {real.std():.1f} "
                  f"({eval_episodes} episodes); while training: dream {record['dream_return']:.1f}, real "
                  f"{record['real_return']:.1f} (cut at {p.max_steps} steps), gap {record['gap']:+.1f}", flush=True)
    return {"preset": "quick", "env": p.env, "seed": seed, "iterations": records, "eval_episodes": eval_episodes,
            "wall_s": wall, "preset_values": dataclasses.asdict(p),
            "machine": {"platform": platform.platform(), "torch": torch.__version__,
                        "torch_threads": torch.get_num_threads()}}


def summary(results: Path) -> dict:
    """Every seed's JSON in ``results`` side by side; the table printed and written."""
    seeds = [json.loads(path.read_text())
             for path in sorted(results.glob("bench_worldmodel_quick_iterations_seed*.json"))]
    if not seeds:
        raise SystemExit(f"no bench_worldmodel_quick_iterations_seed*.json in {results}: run a --seed first")
    n = min(len(s["iterations"]) for s in seeds)
    table = []
    for k in range(n):
        rows = [s["iterations"][k] for s in seeds]
        real = [r["real"]["mean"] for r in rows]
        table.append({"iteration": k, "episodes": rows[0]["episodes"], "real": real, "real_mean": float(np.mean(real)),
                      "dream_mean": float(np.mean([r["dream_return"] for r in rows])),
                      "gap_mean": float(np.mean([r["gap"] for r in rows]))})
    # the iteration gailkit keeps (kept_iteration's "best"): the highest return on the selection tracks (in whole
    # episodes), the earlier on a tie; and the one kept on the same tracks cut at the preset's training steps
    def kept(key: str) -> dict:
        picks = [s["iterations"][int(np.argmax([r[key] for r in s["iterations"][:n]]))] for s in seeds]
        real = [r["real"]["mean"] for r in picks]
        return {"iteration": [r["iteration"] for r in picks], "real": real, "real_mean": float(np.mean(real))}

    whole, cut = kept("select_return"), kept("select_return_cut")
    out = {"seeds": [s["seed"] for s in seeds], "eval_episodes": seeds[0]["eval_episodes"], "rows": table,
           "kept": whole, "kept_cut": cut}
    differences = {f"iteration {n - 1} minus iteration 0": seed_difference(table[-1]["real"], table[0]["real"]),
                   "kept minus iteration 0": seed_difference(whole["real"], table[0]["real"]),
                   "kept minus kept on cut selection episodes": seed_difference(whole["real"], cut["real"])}
    ablations = results / "bench_worldmodel_quick_ablations.json"  # the same seeds' controller trained in the real env
    if ablations.exists() and (found := json.loads(ablations.read_text()))["seeds"] == out["seeds"]:
        differences["kept minus V+M+C trained in the real env"] = seed_difference(
            whole["real"], found["rows"]["one M, real"]["real"])
    out |= differences
    cells = " | ".join(f"seed {s}" for s in out["seeds"])
    print(f"| iteration | episodes | real return: {cells} | mean | dream (training) | gap (training) |")
    print("|---:|---:|" + "---:|" * (len(seeds) + 3))
    for row in table:
        print(f"| {row['iteration']} | {row['episodes']} | " + " | ".join(f"{r:.1f}" for r in row["real"]) +
              f" | **{row['real_mean']:.1f}** | {row['dream_mean']:.1f} | {row['gap_mean']:+.1f} |")
    for name, picked in (("kept (best on the selection tracks)", whole),
                         (f"kept on them cut at {seeds[0]['preset_values']['max_steps']} steps", cut)):
        print(f"| {name} | | " + " | ".join(f"{r:.1f} (it. {k})" for r, k in zip(picked["real"], picked["iteration"]))
              + f" | **{picked['real_mean']:.1f}** | | |")
    print_differences(differences, len(seeds))
    print(f"\nwrote {write_json(results / 'bench_worldmodel_quick_iterations.json', out)}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of collection, V, M and CMA-ES")
    parser.add_argument("--iterations", type=int, default=3, help="iterations, the first on random play alone")
    parser.add_argument("--eval-episodes", type=int, default=20, help="real episodes per iteration's controller")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--summary", action="store_true", help="only print and write the table of the seeds run")
    args = parser.parse_args(argv)
    if args.summary:
        summary(args.out_dir)
        return
    if args.iterations < 1:
        parser.error(f"--iterations {args.iterations}: run at least 1")
    torch.set_num_threads(1)
    result = run_seed(args.seed, args.iterations, args.eval_episodes)
    print(f"wrote {write_json(args.out_dir / f'bench_worldmodel_quick_iterations_seed{args.seed}.json', result)}")


if __name__ == "__main__":
    main()
