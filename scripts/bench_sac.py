"""Benchmark: gailkit's FastSAC against Stable-Baselines3's SAC, for speed and for learning.

Both use the same hyperparameters: gailkit's SAC generator preset (``GENERATORS["sac"]``: RL Zoo's
batch 256, 256x256 networks, one gradient step per env step; learning rate 1e-3, buffer 300k,
learning_starts 1000), SB3's defaults otherwise, one torch thread (--speed --threads 2: two, for all four).

  --speed   Hopper-v5: SB3's SAC, FastSAC and FastSAC with bfloat16 products (matmul_dtype; by default
            only on a CPU with native bfloat16 products, --bf16 auto|yes|no) pass
            learning_starts, then alternate blocks of --block-steps env steps (in turn, the order
            reversed every other block) in one process; median env steps/s of each and the ratios
            to SB3. A fourth model, SB3's SAC with its blocks run under flush-to-zero
            (torch.set_flush_denormal on the timing thread), says how much of FastSAC's lead is
            its Adam kernel's flushing of subnormal moments, which SB3 users get with one line
            (one thread only: with more, the intra-op workers keep their own float mode). Then the
            floor: each one's gradient step split into matrix products and the rest (torch
            profiler), the machine's 256^3 matmul rate, and FastSAC's ceiling ratio if all but its
            matrix products were free. Times need the machine to themselves.
            -> scripts/results/bench_sac_speed_<UTC stamp>.json
  --curves  evaluation return (deterministic, --eval-episodes on the library's evaluation seeds)
            every --eval-every steps for each of --impls (default: sb3 fast; fast_bf16 is FastSAC with
            bfloat16 products) on --envs x --seeds (same seeds).
            Runs live in ROOT/<env>/<impl>/seed<k> (ROOT: ~/.cache/gailkit/bench/sac) and save a
            checkpoint every --chunk steps (safetensors + JSON): a rerun resumes each unfinished
            run from its checkpoint and reuses finished ones. --workers N trains N runs at once,
            one process and one torch thread each (SB3's and FastSAC's run of a seed side by side).
            -> scripts/results/bench_sac_curves_<envs>_seeds<N>_<steps>steps[_<impls>].{json,png}

Run:  OMP_NUM_THREADS=1 python scripts/bench_sac.py --speed
      python scripts/bench_sac.py --speed --threads 2
      OMP_NUM_THREADS=1 nice python scripts/bench_sac.py --curves --envs Pendulum-v1 Hopper-v5 --seeds 3 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from gailkit.agents.experts import rollout_episodes
from gailkit.agents.fast_sac import FastSAC, cpu_info
from gailkit.agents.offpolicy import GENERATORS
from gailkit.agents.run import save_learning_curve
from gailkit.agents.sb3_adapter import counters, restart_episodes, restore_counters
from gailkit.buffers import NumbaReplayBuffer
from gailkit.configs import CommandParser, int_in
from gailkit.evaluation import EVAL_SEED
from gailkit.files import write_json
from gailkit.nn.checkpoint import (
    capture_rng,
    load_optimizer_tensors,
    load_tensors,
    optimizer_tensors,
    read_json,
    restore_rng,
    save_tensors,
    write_verified_dir,
)
from gailkit.versions import versions
from gailkit.worldmodels.backends import make_backend

RESULTS = Path(__file__).resolve().parent / "results"
IMPLS: dict[str, tuple[type[SAC], dict[str, Any]]] = {  # name: class, options
    "sb3": (SAC, {}), "fast": (FastSAC, {}), "fast_bf16": (FastSAC, {"matmul_dtype": "bfloat16"})}
DEFAULT_IMPLS = ["sb3", "fast"]
SB3_FLUSH = "sb3_flush_denormal"  # --speed's reference: SB3's SAC timed under flush-to-zero
PRESET = {**GENERATORS["sac"], "policy_kwargs": {"net_arch": [256, 256]}}
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")  # the profiler's names of the products
REPLAY = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def make(impl: str, env_id: str, seed: int) -> SAC:
    """One implementation on ``env_id`` with the preset; FastSAC on gailkit's replay buffer, SB3 on its own."""
    cls, options = IMPLS[impl]
    if cls is FastSAC:
        options = {**options, "replay_buffer_class": NumbaReplayBuffer, "replay_buffer_kwargs": {"seed": seed}}
    venv = make_vec_env(env_id, n_envs=1, seed=seed)
    return cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **PRESET, **options)


# ----- speed --------------------------------------------------------------------------------------
@contextlib.contextmanager
def flushing(impl: str) -> Iterator[None]:
    """Flush-to-zero on this thread while ``impl`` runs if it is :data:`SB3_FLUSH` (switched off after)."""
    if impl != SB3_FLUSH:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def speed(block_steps: int, blocks: int, bf16: bool = True) -> dict[str, Any]:
    """Median env steps/s on Hopper-v5 of SB3's SAC, FastSAC and (``bf16``) FastSAC with bfloat16
    products, and SB3's SAC under flush-to-zero, blocks interleaved."""
    names = [impl for impl in [*IMPLS, SB3_FLUSH] if bf16 or impl != "fast_bf16"]
    models = {impl: make(impl if impl != SB3_FLUSH else "sb3", "Hopper-v5", 0) for impl in names}
    for impl, m in models.items():  # past learning_starts, and one block of warm-up
        with flushing(impl):
            m.learn(m.learning_starts + block_steps, reset_num_timesteps=False)
    rates: dict[str, list[float]] = {impl: [] for impl in names}
    for b in range(blocks):
        for impl in (names if b % 2 == 0 else names[::-1]):
            with flushing(impl):
                start = time.perf_counter()
                models[impl].learn(block_steps, reset_num_timesteps=False)
                rates[impl].append(block_steps / (time.perf_counter() - start))
    medians = {impl: statistics.median(r) for impl, r in rates.items()}
    # also block by block (each block's models ran back to back), which the machine's drift affects less
    paired = {impl: statistics.median(x / s for x, s in zip(rates[impl], rates["sb3"], strict=True))
              for impl in names if impl != "sb3"}
    result = {"env": "Hopper-v5", "block_steps": block_steps, "blocks": blocks, "steps_per_s": rates,
              "median_steps_per_s": medians, "ratio_fast_over_sb3": medians["fast"] / medians["sb3"],
              f"ratio_{SB3_FLUSH}_over_sb3": medians[SB3_FLUSH] / medians["sb3"],
              "ratio_fast_over_sb3_flush_denormal": medians["fast"] / medians[SB3_FLUSH],
              "paired_ratio_fast_over_sb3": paired["fast"], f"paired_ratio_{SB3_FLUSH}_over_sb3": paired[SB3_FLUSH]}
    if bf16:
        result |= {"ratio_fast_bf16_over_sb3": medians["fast_bf16"] / medians["sb3"],
                   "paired_ratio_fast_bf16_over_sb3": paired["fast_bf16"]}
    return {**result, "floor": floor(models, medians)}


def floor(models: dict[str, SAC], medians: dict[str, float], steps: int = 100) -> dict[str, Any]:
    """Where a gradient step's time goes: matrix products vs the rest (torch profiler), the
    machine's 256x256x256 matmul rate, and the fastest env steps/s FastSAC could reach if
    everything but its matrix products cost nothing (its ceiling against SB3), in float32 and bfloat16."""
    from torch.profiler import ProfilerActivity, profile

    a, b = torch.randn(256, 256), torch.randn(256, 256)
    for _ in range(50):
        a @ b
    start = time.perf_counter()
    for _ in range(1000):
        torch.mm(a, b)
    gflops = 2 * 256**3 / ((time.perf_counter() - start) / 1000) / 1e9
    out: dict[str, Any] = {"matmul_256_gflop_per_s": gflops}
    step_ms: dict[str, list[float]] = {impl: [] for impl in models}
    for _ in range(5):  # gradient steps alone, interleaved like the blocks; the median of 5
        for impl, model in models.items():
            with flushing(impl):
                start = time.perf_counter()
                model.train(gradient_steps=steps, batch_size=model.batch_size)
                step_ms[impl].append((time.perf_counter() - start) / steps * 1e3)
    for impl, model in models.items():
        with flushing(impl), profile(activities=[ProfilerActivity.CPU]) as prof:
            model.train(gradient_steps=steps, batch_size=model.batch_size)
        self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
        out[impl] = {"train_step_ms": statistics.median(step_ms[impl]), "env_step_ms": 1e3 / medians[impl],
                     "matmul_ms": sum(self_us.get(op, 0) for op in MATMUL_OPS) / steps / 1e3}
    for name in (n for n in ("fast", "fast_bf16") if n in models):
        best_ms = out[name]["env_step_ms"] - out[name]["train_step_ms"] + out[name]["matmul_ms"]
        out[f"{name}_ceiling_ratio"] = out["sb3"]["env_step_ms"] / best_ms
    return out


# ----- curves -------------------------------------------------------------------------------------
def evaluate(model: SAC, env_id: str, episodes: int) -> float:
    """Mean deterministic return on the library's evaluation seeds."""
    trajs = rollout_episodes(lambda o: model.predict(o, deterministic=True)[0], env_id, episodes,
                             seed=EVAL_SEED, with_obs=False)
    return float(np.mean([t.episode_return for t in trajs]))


def save(model: SAC, run: Path, history: list[dict[str, float]], chunk_index: int) -> None:
    """Everything a resume needs, as one verified folder (gailkit's checkpoint format)."""
    buf, rng_tensors, rng_meta = model.replay_buffer, *capture_rng()
    n = buf.buffer_size if buf.full else buf.pos

    def write(ckpt: Path) -> None:
        save_tensors(ckpt / "policy.safetensors", model.policy.state_dict())
        optimizers = {"actor": model.actor.optimizer, "critic": model.critic.optimizer, "ent": model.ent_coef_optimizer}
        for name, opt in optimizers.items():
            save_tensors(ckpt / f"{name}_optim.safetensors", optimizer_tensors(opt))
        save_tensors(ckpt / "state.safetensors", {
            "log_ent_coef": model.log_ent_coef.detach(), **rng_tensors,
            **{f"replay.{k}": torch.from_numpy(np.ascontiguousarray(getattr(buf, k)[:n])) for k in REPLAY}})
        write_json(ckpt / "state.json", {
            "num_timesteps": model.num_timesteps, "counters": counters(model), "chunk_index": chunk_index,
            "history": history, "rng": rng_meta, "replay": {"pos": buf.pos, "full": buf.full},
            "replay_rng": buf.rng.bit_generator.state if hasattr(buf, "rng") else None,
            "action_space_rng": model.action_space.np_random.bit_generator.state})

    write_verified_dir(run / "checkpoint", write)


def load(model: SAC, run: Path) -> tuple[list[dict[str, float]], int]:
    """Inverse of :func:`save`; returns the history and the chunk index."""
    ckpt, buf = run / "checkpoint", model.replay_buffer
    model.policy.load_state_dict(load_tensors(ckpt / "policy.safetensors"))
    for name, opt in {"actor": model.actor.optimizer, "critic": model.critic.optimizer,
                      "ent": model.ent_coef_optimizer}.items():
        load_optimizer_tensors(opt, load_tensors(ckpt / f"{name}_optim.safetensors"))
    tensors, state = load_tensors(ckpt / "state.safetensors"), read_json(ckpt / "state.json")
    with torch.no_grad():
        model.log_ent_coef.copy_(tensors["log_ent_coef"])
    restore_rng(tensors, state["rng"])
    for k in REPLAY:
        data = tensors[f"replay.{k}"].numpy()
        getattr(buf, k)[: len(data)] = data
    buf.pos, buf.full = state["replay"]["pos"], state["replay"]["full"]
    if state["replay_rng"] is not None:
        buf.rng.bit_generator.state = state["replay_rng"]
    model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    model.num_timesteps = state["num_timesteps"]
    restore_counters(model, state["counters"])
    return state["history"], state["chunk_index"]


def curve(impl: str, env_id: str, seed: int, args: argparse.Namespace) -> list[dict[str, float]]:
    """Train (or resume) one run to ``args.steps``; its evaluation history."""
    run = args.root / env_id / impl / f"seed{seed}"
    model = make(impl, env_id, seed)
    history, chunk_index = load(model, run) if (run / "checkpoint" / "state.json").exists() else ([], 0)
    # wall_s counts on from the last evaluation a resumed run recorded, as gailkit's runs do
    started = time.perf_counter() - (history[-1]["wall_s"] if history else 0.0)
    while model.num_timesteps < args.steps:
        model.env.seed(seed + 7919 * (chunk_index + 1))  # as gailkit's runs: a resume restarts here too
        restart_episodes(model, model.env.reset())
        target = min(args.steps, (chunk_index + 1) * args.chunk)
        while model.num_timesteps < target:
            model.learn(min(args.eval_every - model.num_timesteps % args.eval_every, target - model.num_timesteps),
                        reset_num_timesteps=False)
            if model.num_timesteps % args.eval_every == 0 or model.num_timesteps == args.steps:
                history.append({"steps": model.num_timesteps,
                                "return_mean": evaluate(model, env_id, args.eval_episodes),
                                "wall_s": round(time.perf_counter() - started, 1)})
                print(f"{env_id} {impl} seed {seed}: {history[-1]}", flush=True)
        chunk_index += 1
        save(model, run, history, chunk_index)
    return history


def curve_task(task: tuple[str, str, int, argparse.Namespace]) -> list[dict[str, float]]:
    """One run in a worker process, on one torch thread."""
    torch.set_num_threads(1)
    return curve(*task)


def curves(args: argparse.Namespace) -> dict[str, Any]:
    """Per env: each implementation's evaluation histories over the seeds, and a PNG."""
    tasks = [(impl, env_id, seed, args) for env_id in args.envs for seed in range(args.seeds) for impl in args.impls]
    if args.workers > 1:
        with make_backend("local", args.workers, timeout_s=30 * 24 * 3600) as pool:
            done = pool.map(curve_task, tasks)
    else:
        done = [curve_task(task) for task in tasks]
    histories = {task[:3]: history for task, history in zip(tasks, done, strict=True)}
    results: dict[str, Any] = {}
    for env_id in args.envs:
        runs = {impl: [histories[impl, env_id, seed] for seed in range(args.seeds)] for impl in args.impls}
        mean = {impl: [{"steps": e[0]["steps"], "return_mean": float(np.mean([x["return_mean"] for x in e])),
                        "return_std": float(np.std([x["return_mean"] for x in e]))} for e in zip(*h, strict=True)]
                for impl, h in runs.items()}
        png = args.out / f"bench_sac_curves_{env_id}_seeds{args.seeds}_{args.steps}steps{impls_tag(args)}.png"
        save_learning_curve(png, {f"{impl} (mean of {args.seeds} seeds)": m for impl, m in mean.items()},
                            title=f"SB3 SAC vs {' vs '.join(i for i in args.impls if i != 'sb3')} on {env_id}")
        results[env_id] = {"per_seed": runs, "mean": mean, "compare": compare(runs), "png": png.name}
    return results


def impls_tag(args: argparse.Namespace) -> str:
    """File-name suffix for a set of implementations other than the default (SB3 and FastSAC)."""
    return "" if args.impls == DEFAULT_IMPLS else "_" + "_".join(args.impls)


def compare(runs: dict[str, list[list[dict[str, float]]]]) -> dict[str, Any]:
    """Each implementation minus SB3 over the seeds, for the final return and for the mean over the
    whole curve, beside the standard error of that difference (from the spread between seeds): a gap
    within two standard errors is within seed noise."""
    out: dict[str, Any] = {}
    for name, score in {"final": lambda h: h[-1]["return_mean"],
                        "curve_mean": lambda h: float(np.mean([e["return_mean"] for e in h]))}.items():
        per = {impl: np.array([score(h) for h in histories]) for impl, histories in runs.items()}
        out[name] = {impl: v.tolist() for impl, v in per.items()}
        for impl in (i for i in per if i != "sb3"):
            pair = (per[impl], per["sb3"])
            gap = float(pair[0].mean() - pair[1].mean())
            se = float(np.sqrt(sum(v.var(ddof=1) / len(v) for v in pair))) if len(pair[1]) > 1 else float("nan")
            out[name][f"{impl}_minus_sb3"] = {"gap": gap, "standard_error": se,
                                              "within_seed_noise": bool(abs(gap) <= 2 * se)}
    return out


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--block-steps", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--threads", type=int_in(1), default=1,
                        help="--speed: torch threads of the one process timing all four (--curves: one per run)")
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                        help="--speed: time FastSAC with bfloat16 products too; auto: only on a CPU with native "
                             "bfloat16 products (AVX512-BF16 or AMX), since emulated they run ~40x slower")
    parser.add_argument("--curves", action="store_true")
    parser.add_argument("--envs", nargs="+", default=["Pendulum-v1", "Hopper-v5"])
    parser.add_argument("--impls", nargs="+", choices=list(IMPLS), default=DEFAULT_IMPLS,
                        help="--curves: implementations to train; sb3 is always the reference")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=5000, help="env steps between checkpoints")
    parser.add_argument("--workers", type=int, default=1, help="--curves: runs trained at once, in processes")
    parser.add_argument("--root", type=Path, default=Path.home() / ".cache" / "gailkit" / "bench" / "sac")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if "sb3" not in args.impls:
        parser.error("--impls must include sb3, the reference")
    if args.chunk % args.eval_every and args.eval_every % args.chunk:
        parser.error("--chunk and --eval-every must divide one another")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads if args.speed else 1)
    stamp = {"versions": versions(), "machine": platform.processor() or platform.machine(), **cpu_info(),
             "torch_threads": torch.get_num_threads(), "preset": {k: str(v) for k, v in PRESET.items()}}
    if args.speed:
        bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and bool(stamp["cpu_bf16"]))
        result = speed(args.block_steps, args.blocks, bf16)
        m = result["median_steps_per_s"]
        if not bf16:
            print("FastSAC with bfloat16 products not timed: this CPU has no native bfloat16 products (--bf16 yes "
                  "times it emulated)")
        bf_rate, bf_ratio, bf_paired = ((f"{m['fast_bf16']:.1f}", f"{result['ratio_fast_bf16_over_sb3']:.2f}",
                                         f"{result['paired_ratio_fast_bf16_over_sb3']:.2f}") if bf16 else ("-",) * 3)
        print(f"| Hopper-v5 env steps/s (median of {args.blocks} blocks of {args.block_steps}) | SB3 SAC | FastSAC "
              f"| ratio | FastSAC, bfloat16 products | ratio |\n|---|---:|---:|---:|---:|---:|\n| | {m['sb3']:.1f} | "
              f"{m['fast']:.1f} | {result['ratio_fast_over_sb3']:.2f} | {bf_rate} | {bf_ratio} |\n"
              f"| block by block, median ratio | | | "
              f"{result['paired_ratio_fast_over_sb3']:.2f} | | {bf_paired} |\n"
              f"SB3 SAC under flush-to-zero: {m[SB3_FLUSH]:.1f} env steps/s, "
              f"{result[f'ratio_{SB3_FLUSH}_over_sb3']:.2f}x SB3 (block by block "
              f"{result[f'paired_ratio_{SB3_FLUSH}_over_sb3']:.2f}); FastSAC "
              f"{result['ratio_fast_over_sb3_flush_denormal']:.2f}x it")
        f = result["floor"]
        print(f"256^3 matmul: {f['matmul_256_gflop_per_s']:.0f} GFLOP/s; per env step (ms): " + "; ".join(
            f"{impl} {f[impl]['env_step_ms']:.1f} (gradient step {f[impl]['train_step_ms']:.1f}, of which matrix "
            f"products {f[impl]['matmul_ms']:.1f})" for impl in f if isinstance(f[impl], dict))
            + f"; ceiling with free non-matmul work: FastSAC {f['fast_ceiling_ratio']:.2f}x SB3"
            + (f", bfloat16 {f['fast_bf16_ceiling_ratio']:.2f}x" if bf16 else ""))
        now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        print("wrote", write_json(args.out / f"bench_sac_speed_{now}.json", {**stamp, "bf16_timed": bf16, **result}))
    if args.curves:
        result = curves(args)
        print("| env | impl | final return: mean (std) over seeds |\n|---|---|---:|")
        for env_id, r in result.items():
            for impl, m in r["mean"].items():
                print(f"| {env_id} | {impl} | {m[-1]['return_mean']:.1f} ({m[-1]['return_std']:.1f}) |")
        print("\n| env | score | impl | impl - SB3 | standard error | within seed noise (2 SE) |\n"
              "|---|---|---|---:|---:|---|")
        for env_id, r in result.items():
            for name, c in r["compare"].items():
                for impl in (i for i in args.impls if i != "sb3"):
                    g = c[f"{impl}_minus_sb3"]
                    print(f"| {env_id} | {name} | {impl} | {g['gap']:.1f} | {g['standard_error']:.1f} | "
                          f"{'yes' if g['within_seed_noise'] else 'no'} |")
        name = f"bench_sac_curves_{'_'.join(args.envs)}_seeds{args.seeds}_{args.steps}steps{impls_tag(args)}.json"
        print("wrote", write_json(args.out / name, {**stamp, "steps": args.steps, "eval_every": args.eval_every,
                                                    "envs": result}))


if __name__ == "__main__":
    main()
