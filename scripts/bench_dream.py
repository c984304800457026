"""Benchmark: batched dream steps/s of a full-size world model against real CarRacing64 steps/s.

Run:  OMP_NUM_THREADS=1 python scripts/bench_dream.py        (about a minute; needs the machine to itself)

The dream's cost does not depend on what M has learnt, so M is untrained, at the size of the
`cpu-hour` / `paper` presets (z 32, LSTM 256, 5 mixtures, CarRacing's 3 continuous actions).
Each row steps ``BatchedDream`` a fixed number of steps (dreams that end keep being stepped:
this measures throughput, not returns), either with random actions or with the linear
controller choosing them, one candidate per dream, as CMA-ES does. The reference row steps one
real env of the preset (`gailkit/CarRacing64-v3`) with random actions (resetting at episode
ends). --preset quick measures the CartPole pixel test bed's sizes instead. One torch
thread; medians of --repeats. Prints a table and writes
scripts/results/bench_dream_<preset>_<UTC stamp>.json (every run its own file).
"""

from __future__ import annotations

import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import gailkit  # noqa: F401  (registers the gailkit/ envs)
from gailkit.configs import CommandParser
from gailkit.nn.checkpoint import write_json
from gailkit.worldmodels.controller import controller_for
from gailkit.worldmodels.dream import BatchedDream
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS

RESULTS = Path(__file__).resolve().parent / "results"


def dream_steps_per_s(model: WorldModel, n: int, steps: int, *, controller: bool, seed: int) -> float:
    """Dream steps per second (``n`` dreams x ``steps`` steps / wall), after one warm-up step."""
    dream = BatchedDream(model, n, max_steps=steps + 1, seed=seed)
    obs = dream.reset()
    rng = np.random.default_rng(seed)
    space = model.action_space
    c = controller_for(model)
    params = rng.normal(scale=0.1, size=(n, c.n_params))

    def act(o: np.ndarray) -> np.ndarray:
        if controller:
            return c.act(params, o)
        if isinstance(space, gym.spaces.Discrete):
            return rng.integers(space.n, size=n)
        return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)

    with torch.no_grad():
        obs = dream.step(act(obs))[0]
        start = time.perf_counter()
        for _ in range(steps):
            obs = dream.step(act(obs))[0]
    return n * steps / (time.perf_counter() - start)


def real_steps_per_s(env_id: str, steps: int, seed: int) -> float:
    """Random-action steps per second of one real env (episode resets included)."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    wall = time.perf_counter() - start
    env.close()
    return steps / wall


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dreams", type=int, nargs="+", default=[1024, 4096], help="batch sizes")
    parser.add_argument("--steps", type=int, default=100, help="dream steps per measurement")
    parser.add_argument("--real-steps", type=int, default=1000, help="real env steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per row (median)")
    parser.add_argument("--preset", default="cpu-hour", choices=sorted(WM_PRESETS), help="M's size")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    p = WM_PRESETS[args.preset]
    action_space = gym.make(p.env).action_space
    model = WorldModel(action_space, latent_dim=p.latent_dim, hidden=p.hidden, n_mixtures=p.n_mixtures)
    model.mdn.eval()

    rows = []
    for n in args.dreams:
        for controller in (False, True):
            runs = [dream_steps_per_s(model, n, args.steps, controller=controller, seed=r) for r in range(args.repeats)]
            rows.append(dict(what="dream", dreams=n, controller=controller, steps_per_s=statistics.median(runs),
                             runs=runs))
    runs = [real_steps_per_s(p.env, args.real_steps, seed=r) for r in range(args.repeats)]
    rows.append(dict(what="real", env=p.env, steps_per_s=statistics.median(runs), runs=runs))

    print(f"\nM: z {p.latent_dim}, LSTM {p.hidden}, {p.n_mixtures} mixtures ({args.preset} preset), "
          f"{torch.get_num_threads()} torch thread(s), medians of {args.repeats}")
    print("| what | actions | steps/s |\n|---|---|---:|")
    for r in rows:
        if r["what"] == "dream":
            print(f"| {r['dreams']} dreams, {args.steps} steps | {'controller' if r['controller'] else 'random'} | "
                  f"{r['steps_per_s']:,.0f} |")
        else:
            print(f"| one real {r['env']}, {args.real_steps} steps | random | {r['steps_per_s']:,.0f} |")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = args.out_dir / f"bench_dream_{args.preset}_{stamp}.json"
    write_json(path, dict(preset=args.preset, latent_dim=p.latent_dim, hidden=p.hidden, n_mixtures=p.n_mixtures,
                          steps=args.steps, real_steps=args.real_steps, repeats=args.repeats, rows=rows,
                          machine=dict(platform=platform.platform(), torch=torch.__version__,
                                       torch_threads=torch.get_num_threads())))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
