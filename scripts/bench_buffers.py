"""Benchmark: the Numba GAE kernel vs SB3's, and PPO end to end with either rollout buffer.

Run:  python scripts/bench_buffers.py [--repeats 3] [--ppo-steps 40000]
Prints a table and writes scripts/results/bench_buffers.json. Everything compared is
measured in this one run on the same data; medians over repeats, ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env

from gailkit.buffers import NumbaRolloutBuffer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--repeats", type=int, default=3, help="PPO runs per buffer")
parser.add_argument("--ppo-steps", type=int, default=40_000, help="environment steps per PPO run")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_buffers.json")
args = parser.parse_args()
th.set_num_threads(1)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- 1. GAE: same rollout in both buffers --------------------------------------------------
gae_rows = []
for n_steps, n_envs in [(2048, 8), (8192, 16)]:
    rng = np.random.default_rng(0)
    buffers = {}
    for name, cls in [("sb3", RolloutBuffer), ("gailkit", NumbaRolloutBuffer)]:
        buf = cls(n_steps, spaces.Box(-1, 1, (4,)), spaces.Discrete(2), n_envs=n_envs, gamma=0.99, gae_lambda=0.95)
        buffers[name] = buf
    data = dict(rewards=rng.normal(size=(n_steps, n_envs)), values=rng.normal(size=(n_steps, n_envs)),
                episode_starts=rng.random((n_steps, n_envs)) < 0.01)
    for buf in buffers.values():
        for key, value in data.items():
            getattr(buf, key)[:] = value
    last, dones = th.as_tensor(rng.normal(size=n_envs).astype(np.float32)), np.zeros(n_envs)
    buffers["gailkit"].compute_returns_and_advantage(last, dones)  # compile / load the cache
    t_sb3 = median_time(lambda: buffers["sb3"].compute_returns_and_advantage(last, dones), 15)
    t_ours = median_time(lambda: buffers["gailkit"].compute_returns_and_advantage(last, dones), 201)
    max_diff = float(np.abs(buffers["sb3"].advantages - buffers["gailkit"].advantages).max())
    gae_rows.append(dict(n_steps=n_steps, n_envs=n_envs, sb3_ms=t_sb3 * 1e3, gailkit_ms=t_ours * 1e3,
                         speedup=t_sb3 / t_ours, max_abs_diff=max_diff))

# --- 2. PPO end to end on CartPole-v1, same seed and hyperparameters -----------------------
configs = {
    "CartPole preset (8 envs x 32 steps, 20 epochs)": dict(
        n_envs=8, kw=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20)),
    "SB3 defaults (1 env x 2048 steps, 10 epochs)": dict(n_envs=1, kw=dict()),
}
ppo_rows = []
for label, cfg in configs.items():
    results: dict[str, list[float]] = {"sb3": [], "gailkit": []}
    returns: dict[str, float] = {}
    for rep in range(args.repeats):
        for name, cls in [("sb3", RolloutBuffer), ("gailkit", NumbaRolloutBuffer)][:: 1 if rep % 2 == 0 else -1]:
            env = make_vec_env("CartPole-v1", n_envs=cfg["n_envs"], seed=0)
            model = PPO("MlpPolicy", env, seed=0, device="cpu", rollout_buffer_class=cls, **cfg["kw"])
            start = time.perf_counter()
            model.learn(args.ppo_steps)
            results[name].append(model.num_timesteps / (time.perf_counter() - start))
            returns[name] = float(np.mean([ep["r"] for ep in model.ep_info_buffer]))
    sb3, ours = statistics.median(results["sb3"]), statistics.median(results["gailkit"])
    ppo_rows.append(dict(config=label, sb3_steps_per_s=sb3, gailkit_steps_per_s=ours, ratio=ours / sb3,
                         sb3_final_return=returns["sb3"], gailkit_final_return=returns["gailkit"],
                         runs=results))

# --- table ---------------------------------------------------------------------------------
print("\nGAE + returns, median time per call (SB3 RolloutBuffer vs gailkit NumbaRolloutBuffer)")
print("| steps x envs | SB3 (ms) | gailkit (ms) | speed-up | max abs diff |")
print("|---|---:|---:|---:|---:|")
for r in gae_rows:
    print(f"| {r['n_steps']} x {r['n_envs']} | {r['sb3_ms']:.2f} | {r['gailkit_ms']:.3f} | "
          f"{r['speedup']:.0f}x | {r['max_abs_diff']:.1e} |")
print(f"\nPPO on CartPole-v1, {args.ppo_steps:,} steps, seed 0, median of {args.repeats} runs")
print("| configuration | SB3 buffer (steps/s) | gailkit buffer (steps/s) | ratio | final return SB3 / gailkit |")
print("|---|---:|---:|---:|---:|")
for r in ppo_rows:
    print(f"| {r['config']} | {r['sb3_steps_per_s']:.0f} | {r['gailkit_steps_per_s']:.0f} | "
          f"{r['ratio']:.2f} | {r['sb3_final_return']:.0f} / {r['gailkit_final_return']:.0f} |")

args.out.parent.mkdir(parents=True, exist_ok=True)
args.out.write_text(json.dumps(dict(
    gae=gae_rows, ppo=ppo_rows, ppo_steps=args.ppo_steps, repeats=args.repeats,
    machine=dict(python=platform.python_version(), processor=platform.processor(), torch=th.__version__),
), indent=2))
print(f"\nwrote {args.out}")
