"""Benchmark: gailkit's Numba rollout buffer against SB3's, for speed and for learning.

Two parts, each writing its own JSON (never overwriting another run's) in scripts/results/:

  --part timing   GAE + returns per call (same data in both buffers), then PPO on CartPole-v1
                  with either buffer, side by side in one run: seeds 0..R-1, the two buffers
                  alternating which goes first; medians, never the best run. Times need the
                  machine to themselves: run this part alone (`make bench` runs it).
                  -> bench_buffers_timing_<UTC stamp>.json
  --part returns  the same PPO runs over --seeds with no clock: the evaluation return of the
                  final policy (20 episodes, deterministic, evaluation seeds disjoint from
                  training) and the training return (last 100 episodes) per buffer and seed.
                  A third buffer, gailkit's with SB3's float32 GAE, tells whether a difference
                  on one seed comes from the float64 GAE accumulation alone.
                  -> bench_buffers_returns[_<configs>][_<buffers>]_seeds<A>-<B>_<steps>steps.json
                  (same options, same file; <configs>, <buffers> when not all of them)

Run:  OMP_NUM_THREADS=1 python scripts/bench_buffers.py --part timing --repeats 5
      OMP_NUM_THREADS=1 nice python scripts/bench_buffers.py --part returns --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env

from gailkit.agents.experts import evaluate_policy
from gailkit.buffers import NumbaRolloutBuffer
from gailkit.configs import CommandParser
from gailkit.evaluation import EVAL_SEED  # the library's evaluation seeds: disjoint from training
from gailkit.nn.checkpoint import write_json

RESULTS = Path(__file__).resolve().parent / "results"
EVAL_EPISODES = 20


class Float32GaeBuffer(NumbaRolloutBuffer):
    """gailkit's buffer with SB3's own GAE (float32 accumulation): the diagnostic column."""

    compute_returns_and_advantage = RolloutBuffer.compute_returns_and_advantage


BUFFERS: dict[str, type[RolloutBuffer]] = {"sb3": RolloutBuffer, "gailkit": NumbaRolloutBuffer,
                                           "gailkit_f32_gae": Float32GaeBuffer}
CONFIGS: dict[str, dict[str, Any]] = {
    "CartPole preset (8 envs x 32 steps, 20 epochs)": dict(
        key="preset", n_envs=8, kw=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20)),
    "SB3 defaults (1 env x 2048 steps, 10 epochs)": dict(key="defaults", n_envs=1, kw=dict()),
}


def median_time(fn: Callable[[], None], calls: int) -> float:
    """Median wall seconds of ``calls`` calls of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gae_timing(n_steps: int, n_envs: int) -> dict[str, float]:
    """SB3's and gailkit's ``compute_returns_and_advantage`` on the same random rollout."""
    rng = np.random.default_rng(0)
    data = dict(rewards=rng.normal(size=(n_steps, n_envs)), values=rng.normal(size=(n_steps, n_envs)),
                episode_starts=rng.random((n_steps, n_envs)) < 0.01)
    buffers = {}
    for name in ("sb3", "gailkit"):
        buf = BUFFERS[name](n_steps, spaces.Box(-1, 1, (4,)), spaces.Discrete(2), n_envs=n_envs,
                            gamma=0.99, gae_lambda=0.95)
        for key, value in data.items():
            getattr(buf, key)[:] = value
        buffers[name] = buf
    last, dones = th.as_tensor(rng.normal(size=n_envs).astype(np.float32)), np.zeros(n_envs)
    buffers["gailkit"].compute_returns_and_advantage(last, dones)  # compile / load the Numba cache
    # SB3's call is ~200x slower: fewer calls give a median as stable as the kernel's
    t_sb3 = median_time(lambda: buffers["sb3"].compute_returns_and_advantage(last, dones), 15)
    t_ours = median_time(lambda: buffers["gailkit"].compute_returns_and_advantage(last, dones), 201)
    max_diff = float(np.abs(buffers["sb3"].advantages - buffers["gailkit"].advantages).max())
    return dict(n_steps=n_steps, n_envs=n_envs, sb3_ms=t_sb3 * 1e3, gailkit_ms=t_ours * 1e3,
                speedup=t_sb3 / t_ours, max_abs_diff=max_diff)


def ppo_run(config: str, buffer: str, seed: int, steps: int, *, evaluate: bool) -> dict[str, float]:
    """One seeded PPO run on CartPole-v1; steps/s of ``learn`` and the returns."""
    cfg = CONFIGS[config]
    env = make_vec_env("CartPole-v1", n_envs=cfg["n_envs"], seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", rollout_buffer_class=BUFFERS[buffer], **cfg["kw"])
    start = time.perf_counter()
    model.learn(steps)
    out = dict(steps_per_s=model.num_timesteps / (time.perf_counter() - start),
               train_return=float(np.mean([ep["r"] for ep in model.ep_info_buffer])))
    if evaluate:
        returns = evaluate_policy(lambda o: model.predict(o, deterministic=True)[0], "CartPole-v1",
                                  EVAL_EPISODES, seed=EVAL_SEED + seed)
        out["eval_return"] = float(returns.mean())
    return out


def timing_part(args: argparse.Namespace) -> dict[str, Any]:
    """GAE per call and PPO steps/s, both buffers side by side, medians."""
    gae = [gae_timing(n_steps, n_envs) for n_steps, n_envs in [(2048, 8), (8192, 16)]]
    ppo = []
    for config in CONFIGS:
        runs: dict[str, list[dict[str, float]]] = {"sb3": [], "gailkit": []}
        for rep in range(args.repeats):
            order = ["sb3", "gailkit"] if rep % 2 == 0 else ["gailkit", "sb3"]  # neither always runs first
            for name in order:
                runs[name].append(ppo_run(config, name, rep, args.ppo_steps, evaluate=False) | {"seed": rep})
        med = {name: statistics.median(r["steps_per_s"] for r in rs) for name, rs in runs.items()}
        ppo.append(dict(config=config, sb3_steps_per_s=med["sb3"], gailkit_steps_per_s=med["gailkit"],
                        ratio=med["gailkit"] / med["sb3"], runs=runs))
    return dict(gae=gae, ppo=ppo)


def returns_part(args: argparse.Namespace) -> dict[str, Any]:
    """Returns per buffer and seed; Mann-Whitney U between SB3's and gailkit's per configuration."""
    from scipy.stats import mannwhitneyu  # scipy comes with the dev extras, not with gailkit itself

    rows = []
    for config in (c for c in CONFIGS if CONFIGS[c]["key"] in args.configs):
        runs = {name: [ppo_run(config, name, seed, args.ppo_steps, evaluate=True) | {"seed": seed}
                       for seed in args.seeds] for name in args.buffers}
        summary: dict[str, Any] = {}
        for key in ("eval_return", "train_return"):
            per = {name: [r[key] for r in rs] for name, rs in runs.items()}
            summary[key] = {name: dict(mean=float(np.mean(v)), std=float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                                       median=float(np.median(v))) for name, v in per.items()}
            summary[key]["mannwhitney_p_sb3_vs_gailkit"] = float(
                mannwhitneyu(per["sb3"], per["gailkit"]).pvalue) if len(args.seeds) > 1 else float("nan")
            for other in ("gailkit", "gailkit_f32_gae"):
                if other in per:
                    summary[key][f"seeds_identical_sb3_vs_{other}"] = sum(
                        a == b for a, b in zip(per["sb3"], per[other], strict=True))
        rows.append(dict(config=config, runs=runs, summary=summary))
    return dict(ppo=rows)


def print_timing(result: dict[str, Any], args: argparse.Namespace) -> None:
    print("\nGAE + returns, median time per call (same data in both buffers)")
    print("| steps x envs | SB3 (ms) | gailkit (ms) | speed-up | max abs diff |\n|---|---:|---:|---:|---:|")
    for r in result["gae"]:
        print(f"| {r['n_steps']} x {r['n_envs']} | {r['sb3_ms']:.2f} | {r['gailkit_ms']:.3f} | "
              f"{r['speedup']:.0f}x | {r['max_abs_diff']:.1e} |")
    print(f"\nPPO on CartPole-v1, {args.ppo_steps:,} steps, medians of {args.repeats} runs per buffer "
          f"(seeds 0-{args.repeats - 1}, side by side)")
    print("| configuration | SB3 buffer (steps/s) | gailkit buffer (steps/s) | ratio |\n|---|---:|---:|---:|")
    for r in result["ppo"]:
        print(f"| {r['config']} | {r['sb3_steps_per_s']:.0f} | {r['gailkit_steps_per_s']:.0f} | {r['ratio']:.2f} |")


def print_returns(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nPPO on CartPole-v1, {args.ppo_steps:,} steps, seeds {args.seeds}: evaluation return of the final "
          f"policy ({EVAL_EPISODES} episodes) / training return (last 100 episodes)")
    titles = {"sb3": "SB3 buffer", "gailkit": "gailkit buffer", "gailkit_f32_gae": "gailkit, float32 GAE"}
    print("| configuration | seed | " + " | ".join(titles[n] for n in args.buffers) + " |\n|---|---:|"
          + "---:|" * len(args.buffers))
    for row in result["ppo"]:
        for i, seed in enumerate(args.seeds):
            cells = [f"{row['runs'][n][i]['eval_return']:.1f} / {row['runs'][n][i]['train_return']:.1f}"
                     for n in args.buffers]
            print(f"| {row['config']} | {seed} | " + " | ".join(cells) + " |")
        s = row["summary"]
        cells = [f"{s['eval_return'][n]['mean']:.1f} +/- {s['eval_return'][n]['std']:.1f} / "
                 f"{s['train_return'][n]['mean']:.1f} +/- {s['train_return'][n]['std']:.1f}" for n in args.buffers]
        print(f"| {row['config']} | mean +/- sd | " + " | ".join(cells) + " |")
        same = ", ".join(f"SB3 = {titles[o]} {s['eval_return'][f'seeds_identical_sb3_vs_{o}']}/{len(args.seeds)}"
                         for o in ("gailkit", "gailkit_f32_gae") if o in args.buffers)
        print(f"  Mann-Whitney p (SB3 vs gailkit): eval {s['eval_return']['mannwhitney_p_sb3_vs_gailkit']:.2f}, "
              f"train {s['train_return']['mannwhitney_p_sb3_vs_gailkit']:.2f}; seeds with identical eval return: "
              f"{same}")


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["timing", "returns"], default="timing")
    parser.add_argument("--repeats", type=int, default=5, help="timing: PPO runs per buffer (seeds 0..R-1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="returns: PPO seeds")
    parser.add_argument("--ppo-steps", type=int, default=40_000, help="environment steps per PPO run")
    keys = [c["key"] for c in CONFIGS.values()]
    parser.add_argument("--configs", nargs="+", choices=keys, default=keys, help="returns: PPO configurations")
    parser.add_argument("--buffers", nargs="+", choices=list(BUFFERS), default=list(BUFFERS),
                        help="returns: buffers to compare (sb3 and gailkit always included)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.buffers = ["sb3", "gailkit"] + [b for b in args.buffers if b not in ("sb3", "gailkit")]
    th.set_num_threads(1)
    machine = dict(python=platform.python_version(), platform=platform.platform(), torch=th.__version__,
                   torch_threads=th.get_num_threads())
    if args.part == "timing":
        result = timing_part(args)
        print_timing(result, args)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = args.out_dir / f"bench_buffers_timing_{stamp}.json"
        options = dict(repeats=args.repeats, ppo_steps=args.ppo_steps)
    else:
        result = returns_part(args)
        print_returns(result, args)
        lo, hi = min(args.seeds), max(args.seeds)
        seeds = f"{lo}-{hi}" if args.seeds == list(range(lo, hi + 1)) else "_".join(map(str, args.seeds))
        configs = "" if args.configs == keys else "_" + "-".join(args.configs)
        configs += "" if args.buffers == list(BUFFERS) else "_" + "-".join(args.buffers)
        path = args.out_dir / f"bench_buffers_returns{configs}_seeds{seeds}_{args.ppo_steps}steps.json"
        options = dict(seeds=args.seeds, configs=args.configs, buffers=args.buffers, ppo_steps=args.ppo_steps,
                       eval_episodes=EVAL_EPISODES)
    write_json(path, dict(part=args.part, **options, **result, machine=machine))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
