"""Benchmark: the World Models pipeline on CarRacing-v3 (64x64), every stage timed.

Run:  python scripts/bench_worldmodel.py [--preset cpu-hour] [--eval-episodes 20]
Small smoke run: python scripts/bench_worldmodel.py --episodes 2 --vae-epochs 1 --mdn-epochs 1 \
          --generations 2 --eval-episodes 2 --dir runs/bench_wm_smoke
Prints a table and writes scripts/results/bench_worldmodel.json: real-environment steps used,
wall time of each stage, the controller's real return vs random (mean and std over the
evaluation tracks), its dream return (the dream/real gap), and batched dream steps/s against
real-environment steps/s measured in this run. (A V-only controller row is not implemented yet.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from gailkit.worldmodels.controller import DreamTrainingConfig, LinearController, dream_fitness, train_controller_in_dream
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.train import evaluate_controller, start_latents, train_mdn, train_vae

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-hour", choices=sorted(WM_PRESETS))
    parser.add_argument("--dir", type=Path, default=Path("runs/bench_wm"))
    parser.add_argument("--episodes", type=int)
    parser.add_argument("--vae-epochs", type=int)
    parser.add_argument("--mdn-epochs", type=int)
    parser.add_argument("--generations", type=int)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_worldmodel.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {k: v for k, v in (("episodes", args.episodes), ("vae_epochs", args.vae_epochs),
                                   ("mdn_epochs", args.mdn_epochs), ("generations", args.generations)) if v}
    p = dataclasses.replace(WM_PRESETS[args.preset], **overrides)
    data, model_dir, ctrl = args.dir / "data", args.dir / "model", args.dir / "controller"
    wall: dict[str, float] = {}

    start = time.perf_counter()
    collect_chunks(p.env, data, p.episodes, progress=True)
    wall["collect"] = time.perf_counter() - start
    real_steps = sum(int(load_chunk(c)["lengths"].sum()) for c in chunk_paths(data))

    start = time.perf_counter()
    train_vae(data, model_dir, latent_dim=p.latent_dim, epochs=p.vae_epochs)
    wall["V"] = time.perf_counter() - start
    start = time.perf_counter()
    model = train_mdn(data, model_dir, epochs=p.mdn_epochs)
    wall["M"] = time.perf_counter() - start

    cfg = DreamTrainingConfig(generations=p.generations, popsize=p.popsize, rollouts=p.rollouts,
                              max_steps=p.max_steps, tau=p.tau)
    z0 = start_latents(model, data)
    start = time.perf_counter()
    best, history = train_controller_in_dream(model, cfg, ctrl, start_z=z0, resume=(ctrl / "cmaes.json").exists())
    wall["C (dream)"] = time.perf_counter() - start

    start = time.perf_counter()
    real = evaluate_controller(model, best, p.env, args.eval_episodes)
    rand = evaluate_controller(model, None, p.env, args.eval_episodes)
    wall["evaluation"] = time.perf_counter() - start
    controller = LinearController(model.latent_dim + model.mdn_config.hidden, model.action_space)
    dream_score = float(dream_fitness(model, controller, best[None], rollouts=args.eval_episodes,
                                      max_steps=p.max_steps, tau=p.tau, seed=1, start_z=z0)[0])

    # throughput, same run: one real env vs 1024 batched dreams with the controller
    n, steps = 1024, 50
    start = time.perf_counter()
    dream_fitness(model, controller, np.repeat(best[None], n, 0), rollouts=1, max_steps=steps, tau=p.tau, seed=2,
                  start_z=z0)
    dream_sps = n * steps / (time.perf_counter() - start)
    real_sps = real_steps / wall["collect"] if wall["collect"] > 0 else float("nan")

    rows = {
        "env": p.env, "preset": args.preset, "real_env_steps_used": real_steps,
        "controller_return_mean": float(real.mean()), "controller_return_std": float(real.std()),
        "random_return_mean": float(rand.mean()), "random_return_std": float(rand.std()),
        "dream_return": dream_score, "dream_real_gap": dream_score - float(real.mean()),
        "dream_steps_per_s": dream_sps, "real_steps_per_s_while_collecting": real_sps,
        "wall_s": wall, "eval_episodes": args.eval_episodes, "preset_values": dataclasses.asdict(p),
    }
    print(f"\n| {p.env} ({args.preset}) | value |\n|---|---:|")
    print(f"| V+M+C real return (mean +/- std, {args.eval_episodes} tracks) | {real.mean():.1f} +/- {real.std():.1f} |")
    print(f"| random policy | {rand.mean():.1f} +/- {rand.std():.1f} |")
    print(f"| dream return of the same controller (gap) | {dream_score:.1f} ({dream_score - real.mean():+.1f}) |")
    print(f"| real-environment steps used | {real_steps:,} |")
    for stage, seconds in wall.items():
        print(f"| wall time: {stage} | {seconds:.1f} s |")
    print(f"| batched dream steps/s (1024 dreams) vs real env steps/s | {dream_sps:,.0f} vs {real_sps:,.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"\nwrote {args.out}")
