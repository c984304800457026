"""Benchmark: gailkit's FastCarRacing against Gymnasium's CarRacing-v3, for speed and for fidelity.

  speed     env steps/s of CarRacing-v3, gailkit/FastCarRacing64-v3, gailkit/FastCarRacing96-v3
            and of the physics alone (CarRacing-v3 that draws nothing: the floor), in alternating
            blocks of --block-steps steps of one fixed drive, in one process; the median of each
            and the ratios to CarRacing-v3. Times need the machine to themselves.
  batched   a World Models controller (V 32, M 256 units, random weights) on FastCarRacing64:
            8 candidates x 2 episodes of --batch-steps steps, all 16 in lockstep (one V encode and
            one M step per tick) against one episode at a time (one frame per forward pass).
  fidelity  --seeds tracks x --steps steps of the same fixed drive (``fixed_actions``) through
            CarRacing-v3 and both fast envs in lockstep: rewards and terminations compared
            exactly, frames by mean absolute difference per pixel and channel (0-255) against
            Gymnasium's 96x96 frame (resized to 64x64 with a box filter for the 64 env).

Run:  OMP_NUM_THREADS=1 python scripts/bench_envs.py
      -> scripts/results/bench_envs.json
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.envs.box2d.car_racing import CarRacing
from PIL import Image

from gailkit.configs import CommandParser
from gailkit.envs.car_racing import FastCarRacing, fixed_actions
from gailkit.files import write_json
from gailkit.versions import versions
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import evaluate_controllers

parser = CommandParser(description=__doc__.split("\n")[0])
parser.add_argument("--seeds", type=int, default=5)
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--block-steps", type=int, default=200)
parser.add_argument("--blocks", type=int, default=5, help="timed blocks per env")
parser.add_argument("--batch-steps", type=int, default=250)
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_envs.json")
args = parser.parse_args()


class PhysicsOnly(CarRacing):
    """CarRacing-v3 with no observation drawn: what a step costs without any renderer."""

    def _render(self, mode):
        return None


ENVS = {"CarRacing-v3": CarRacing, "FastCarRacing64": lambda: FastCarRacing(size=64),
        "FastCarRacing96": lambda: FastCarRacing(size=96), "physics only": PhysicsOnly}

# ------------------------------------------------------------------------------------------ speed
drive = fixed_actions(args.block_steps * args.blocks * 2, seed=0)
envs = {name: make() for name, make in ENVS.items()}
for env in envs.values():
    env.reset(seed=0)
    for action in drive[:50]:  # compile the kernels, pass the opening zoom
        env.step(action)
rates: dict[str, list[float]] = {name: [] for name in envs}
for block in range(args.blocks):
    order = list(envs) if block % 2 == 0 else list(envs)[::-1]
    for name in order:
        env = envs[name]
        actions = drive[block * args.block_steps:(block + 1) * args.block_steps]
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, _, _ = env.step(action)
            if terminated:
                env.reset(seed=block)
        rates[name].append(len(actions) / (time.perf_counter() - start))
speed = {name: statistics.median(r) for name, r in rates.items()}
base = speed["CarRacing-v3"]
print(f"{'env':<18}{'steps/s':>10}{'x CarRacing-v3':>16}")
for name, rate in speed.items():
    print(f"{name:<18}{rate:>10.0f}{rate / base:>16.1f}")

# ---------------------------------------------------------------------------------------- batched
torch.set_num_threads(1)
torch.manual_seed(0)
model = WorldModel(spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32)),
                   env_id="gailkit/FastCarRacing64-v3")
params = np.random.default_rng(0).normal(0, 0.1, (8, controller_for(model).n_params))
batched_rates = {}
for label, n_envs in (("one at a time", 1), ("16 in lockstep", 16)):
    start = time.perf_counter()
    evaluate_controllers(model, params, "gailkit/FastCarRacing64-v3", 2, max_steps=args.batch_steps, n_envs=n_envs)
    batched_rates[label] = 16 * args.batch_steps / (time.perf_counter() - start)
print(f"\nV+M+C controller on FastCarRacing64: {batched_rates['one at a time']:,.0f} env steps/s one episode at a "
      f"time, {batched_rates['16 in lockstep']:,.0f} with 16 in lockstep "
      f"({batched_rates['16 in lockstep'] / batched_rates['one at a time']:.1f}x)")

# --------------------------------------------------------------------------------------- fidelity
ref, fast = CarRacing(), {64: FastCarRacing(size=64), 96: FastCarRacing(size=96)}
mads = {64: [], 96: []}
mismatches, steps_compared, terminations = 0, 0, 0
for seed in range(args.seeds):
    ref_obs, _ = ref.reset(seed=seed)
    for env in fast.values():
        env.reset(seed=seed)
    for action in fixed_actions(args.steps, seed=seed):
        ref_obs, ref_r, ref_term, _, _ = ref.step(action)
        steps_compared += 1
        terminations += int(ref_term)
        for size, env in fast.items():
            obs, r, term, _, _ = env.step(action)
            mismatches += int((r, term) != (ref_r, ref_term))
            want = ref_obs if size == 96 else np.asarray(Image.fromarray(ref_obs).resize((size, size), Image.BOX))
            mads[size].append(float(np.abs(want.astype(np.int16) - obs).mean()))
        if ref_term:
            break
fidelity = {
    "seeds": args.seeds, "steps_per_seed": args.steps, "steps_compared": steps_compared,
    "terminations": terminations, "reward_or_termination_mismatches": mismatches,
    **{f"frame_mad_{s}": {"mean": float(np.mean(m)), "median": float(np.median(m)), "max": float(np.max(m))}
       for s, m in mads.items()},
}
print(f"\nfidelity over {args.seeds} tracks x {args.steps} steps: {mismatches} reward/termination mismatches")
for size in (64, 96):
    m = fidelity[f"frame_mad_{size}"]
    print(f"  {size}x{size} frames: mean |diff| {m['mean']:.2f} (median {m['median']:.2f}, "
          f"worst {m['max']:.2f}) of 255")

write_json(args.out, {
    "what": "CarRacing-v3 vs gailkit's FastCarRacing: env steps/s (median of blocks, one process) and fidelity",
    "steps_per_s": speed, "ratio_to_carracing_v3": {n: r / base for n, r in speed.items()},
    "blocks": args.blocks, "block_steps": args.block_steps, "rates": rates, "fidelity": fidelity,
    "controller_steps_per_s": batched_rates, "batch_steps": args.batch_steps,
    "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version()},
    "versions": versions(),
})
print(f"-> {args.out}")
