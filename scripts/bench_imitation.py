"""Benchmark: BC, GAIL, AIRL and DAC from 10 expert episodes, normalised returns over seeds.

Run:  python scripts/bench_imitation.py [--seeds 3] [--envs CartPole-v1 Pendulum-v1 Hopper-v5]
Experts come from runs/bench/experts/ENV (trained with the preset when missing and cheap; for
Hopper-v5 train one first: `gailkit expert train --env Hopper-v5 --out runs/bench/experts/Hopper-v5`,
its preset is 1M SAC steps). Prints a table and writes one JSON per run, named by its envs,
seeds and algorithms (no run overwrites another's):
scripts/results/bench_imitation_<envs>_seeds<N>[_<algos>].json, with each expert's card (return
mean and std over its evaluation episodes, training wall time), and one learning-curve PNG per
env. Normalised return = (R - random) / (expert - random), both measured on the expert card's
evaluation episodes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from gailkit.agents.experts import PRESETS, CollectConfig, ExpertConfig, collect_demos, train_expert
from gailkit.agents.imitate import imitate, plot_runs
from gailkit.agents.imitation import ImitationConfig
from gailkit.nn.checkpoint import write_json

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1", "Hopper-v5"])
parser.add_argument("--algos", nargs="+", default=["bc", "gail", "airl", "dac"])
parser.add_argument("--root", type=Path, default=Path("runs/bench"))
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
parser.add_argument("--max-expert-steps", type=int, default=200_000,
                    help="train a missing expert only if its preset needs at most this many steps")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)  # the learning curves are written into it before the JSON
torch.set_num_threads(1)

# RL Zoo's PPO settings for Pendulum (gSDE exploration), used as the GAIL/AIRL generator.
PENDULUM_PPO = dict(n_envs=4, n_steps=1024, gae_lambda=0.95, ent_coef=0.0, learning_rate=1e-3, use_sde=True)
# Per env: steps per algorithm and the settings that differ from ImitationConfig's defaults.
SETTINGS = {
    "CartPole-v1": dict(steps={"bc": 0, "gail": 100_000, "airl": 100_000, "dac": 50_000}, common={},
                        per_algo={"dac": dict(eval_every=5000)}),
    "Pendulum-v1": dict(steps={"bc": 0, "gail": 100_000, "airl": 100_000, "dac": 30_000},
                        common=dict(absorbing=False, gamma=0.9),  # never terminates: no absorbing state needed
                        per_algo={"gail": PENDULUM_PPO, "airl": PENDULUM_PPO, "dac": dict(eval_every=2000, gamma=0.99)}),
    "Hopper-v5": dict(steps={"bc": 0, "gail": 1_000_000, "airl": 1_000_000, "dac": 1_000_000},
                      common={}, per_algo={"dac": dict(eval_every=20_000)}),
}

results: dict[str, dict] = {}
for env_id in args.envs:
    expert_dir = args.root / "experts" / env_id
    if not (expert_dir / "card.json").exists():
        if PRESETS[env_id].steps > args.max_expert_steps:
            print(f"skipping {env_id}: no expert in {expert_dir}; train one with "
                  f"`gailkit expert train --env {env_id} --out {expert_dir}` ({PRESETS[env_id].steps:,} steps)")
            continue
        train_expert(ExpertConfig(env=env_id, out=expert_dir, progress=False))
    demos_path, demos = collect_demos(CollectConfig(expert=expert_dir, episodes=10, seed=0,
                                                    out=args.root / "demos" / f"{env_id}.npz"))
    card = demos.metadata["expert_card"]
    s = SETTINGS[env_id]
    env_rows = {"expert_return": card["return_mean"], "random_return": card["random_return_mean"],
                "expert_card": card, "algos": {}}
    for algo in args.algos:
        finals, to_09_steps, to_09_wall, walls = [], [], [], []
        for seed in range(args.seeds):
            out = args.root / env_id / f"{algo}_seed{seed}"
            fields = dict(s["common"], **s["per_algo"].get(algo, {}))
            cfg = ImitationConfig(env=env_id, demos=demos_path, algo=algo, steps=max(1, s["steps"][algo]),
                                  out=out, seed=seed, progress=False, **fields)
            finished = (out / "policy.safetensors").exists() or (algo == "bc" and (out / "eval.json").exists())
            if not finished:  # a new run, or one stopped before its end: resumed from its checkpoint
                imitate(cfg, resume=(out / "checkpoint").is_dir())
            history = json.loads((out / "eval.json").read_text())["history"]
            finals.append(history[-1]["normalised"])
            walls.append(history[-1].get("wall_s", float("nan")))
            hit = next((h for h in history if h["normalised"] >= 0.9), None)
            to_09_steps.append(hit["steps"] if hit else None)
            to_09_wall.append(hit.get("wall_s") if hit else None)
        env_rows["algos"][algo] = dict(final_normalised=finals, steps_to_0_9=to_09_steps, wall_to_0_9=to_09_wall,
                                       wall_s=walls, steps=s["steps"][algo],
                                       config={k: str(v) for k, v in dataclasses.asdict(cfg).items()})
        print(f"{env_id} {algo}: final normalised {np.round(finals, 3).tolist()}, steps to 0.9 {to_09_steps}")
    plot_runs(args.out / f"bench_imitation_{env_id}.png",
              {f"{a} (seed 0)": args.root / env_id / f"{a}_seed0" for a in args.algos},
              title=f"{env_id}, 10 expert episodes")
    results[env_id] = env_rows


def fmt_median(values):
    hits = [v for v in values if v is not None]
    if len(hits) < len(values):
        return f"{len(hits)}/{len(values)} reached" + (f", median {statistics.median(hits):,.0f}" if hits else "")
    return f"{statistics.median(hits):,.0f}"


print(f"\n| env | expert | random | method | env steps | final normalised: mean (min-max) over {args.seeds} seeds "
      f"| steps to 0.9 (median) | wall s to 0.9 (median) |")
print("|---|---:|---:|---|---:|---:|---:|---:|")
for env_id, r in results.items():
    for algo, a in r["algos"].items():
        f = np.array(a["final_normalised"])
        print(f"| {env_id} | {r['expert_return']:.1f} | {r['random_return']:.1f} | {algo} | {a['steps']:,} | "
              f"{f.mean():.3f} ({f.min():.3f}-{f.max():.3f}) | {fmt_median(a['steps_to_0_9'])} | "
              f"{fmt_median(a['wall_to_0_9'])} |")
algos = "" if args.algos == parser.get_default("algos") else "_" + "-".join(args.algos)
path = args.out / f"bench_imitation_{'_'.join(results)}_seeds{args.seeds}{algos}.json"
write_json(path, results)
print(f"\nwrote {path} and the learning curves next to it")
