"""Benchmark: the `quick` world-model preset end to end on the CartPole pixel test bed, one seed per run.

Run:  OMP_NUM_THREADS=1 python scripts/bench_worldmodel_quick.py --seed 0     (4-10 minutes on 2 cores)

collect (60 random episodes of gailkit/CartPoleCentredPixels-v1) -> V -> M -> C trained by CMA-ES
only in M's dream -> the controller and the random policy on 20 real episodes each. Also, on 4
held-out episodes, V's reconstruction error against the mean training frame (does z carry the
pole?) and M's next-latent error against copying the current latent (does M predict?).

The seed drives collection (episode i is reset with seed * 1000 + i), V, M and CMA-ES; the real
evaluation uses the library's fixed evaluation seeds, so every run is judged on the same 20
episodes. Seed 0 is the run the test suite used to repeat. Prints a table and writes
scripts/results/bench_worldmodel_quick_seed<S>.json (seed, returns, random baseline, wall time
per stage); a run of another seed never touches it, a rerun of the same seed replaces it.
"""

from __future__ import annotations

import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser
from gailkit.nn.checkpoint import write_json
from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.real import evaluate_controller
from gailkit.worldmodels.train import next_latent_errors, start_latents, train_mdn, train_vae

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT_EPISODES = 4


def frames_of(data_dir: Path) -> np.ndarray:
    """Every frame of the chunks in ``data_dir``: ``(N, 64, 64, 3)`` uint8."""
    return np.concatenate([load_chunk(p)["frames"] for p in chunk_paths(data_dir)])


@torch.no_grad()
def reconstruction_vs_mean_frame(model: WorldModel, train_dir: Path, held_dir: Path) -> dict[str, float]:
    """Summed squared error per frame of V (decoding the posterior mean) and of the mean training frame."""
    x = torch.as_tensor(frames_of(held_dir)).permute(0, 3, 1, 2).float() / 255  # (N, 3, 64, 64)
    mean_frame = torch.as_tensor(frames_of(train_dir)).float().mean(0).permute(2, 0, 1)[None] / 255
    mu, _ = model.vae.encode(x)
    v = ((model.vae.decode(mu) - x) ** 2).sum((1, 2, 3)).mean().item()
    base = ((mean_frame - x) ** 2).sum((1, 2, 3)).mean().item()
    return {"v_sse_per_frame": v, "mean_frame_sse_per_frame": base, "ratio": v / base}


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of collection, V, M and CMA-ES (default: 0)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    p = WM_PRESETS["quick"]
    wall: dict[str, float] = {}
    start_all = time.perf_counter()

    def stage(name: str, fn, *fn_args, **fn_kwargs):
        start = time.perf_counter()
        out = fn(*fn_args, **fn_kwargs)
        wall[name] = time.perf_counter() - start
        print(f"{name}: {wall[name]:.0f} s", flush=True)
        return out

    with tempfile.TemporaryDirectory(prefix="bench_wm_quick_") as tmp:
        root = Path(tmp)
        data, held, model_dir = root / "data", root / "held_out", root / "model"
        stage("collect", collect_chunks, p.env, data, p.episodes, policy=p.collect_policy, seed=1000 * args.seed,
              progress=False)
        collect_chunks(p.env, held, HELD_OUT_EPISODES, policy=p.collect_policy, seed=1000 * args.seed + 500,
                       progress=False)
        stage("V", train_vae, data, model_dir, **p.vae_options(), seed=args.seed, progress=False)
        model = stage("M", train_mdn, data, model_dir, **p.mdn_options(), seed=args.seed, progress=False)
        cfg = DreamTrainingConfig(**p.controller_options(), seed=args.seed)
        best, history = stage("C in the dream", train_controller_in_dream, model, cfg, root / "controller",
                              start_z=start_latents(model, data), progress=False)
        returns = stage("evaluation", lambda: {name: evaluate_controller(model, params, p.env, args.eval_episodes)
                                               for name, params in (("controller", best), ("random", None))})
        recon = reconstruction_vs_mean_frame(model, data, held)
        m_sse, copy_sse = next_latent_errors(model, held)
        prediction = {"m_sse": m_sse, "copy_sse": copy_sse, "ratio": m_sse / copy_sse}
        n_frames = len(frames_of(data))
    wall["total"] = time.perf_counter() - start_all

    ctrl, rand = returns["controller"], returns["random"]
    result = {
        "preset": "quick", "env": p.env, "seed": args.seed, "eval_episodes": args.eval_episodes,
        "returns": {k: {"mean": float(v.mean()), "std": float(v.std()), "all": v.tolist()} for k, v in returns.items()},
        "controller_over_random": float(ctrl.mean() / rand.mean()),
        "v_reconstruction_vs_mean_frame": recon, "m_next_latent_vs_copy": prediction,
        "training_frames": n_frames, "dream_history": history, "wall_s": wall,
        "preset_values": dataclasses.asdict(p),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
    }
    print(f"\n| quick preset, seed {args.seed}, {args.eval_episodes} real episodes | return (mean +/- std) |"
          "\n|---|---:|")
    print(f"| controller trained only in M's dream | {ctrl.mean():.1f} +/- {ctrl.std():.1f} |")
    print(f"| random policy | {rand.mean():.1f} +/- {rand.std():.1f} |")
    print(f"\ncontroller / random: {ctrl.mean() / rand.mean():.2f}x; dream return (CMA-ES mean) "
          f"{history[0]['mean']:.1f} -> {history[-1]['mean']:.1f}")
    print(f"V: {recon['v_sse_per_frame']:.1f} squared error per held-out frame vs "
          f"{recon['mean_frame_sse_per_frame']:.1f} "
          f"for the mean frame ({recon['ratio']:.2f}); M: next latent {prediction['m_sse']:.2f} vs copying "
          f"{prediction['copy_sse']:.2f} ({prediction['ratio']:.2f})")
    print("stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in wall.items()))
    path = write_json(args.out_dir / f"bench_worldmodel_quick_seed{args.seed}.json", result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
