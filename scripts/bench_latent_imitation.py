"""Benchmark: imitation from pixels, with and without a world model as perception.

Run:  python scripts/bench_latent_imitation.py [--seeds 3] [--methods state-gail latent-gail latent-gail-vm latent-dac
      dream-gail pixel-gail]

The test bed is pixel CartPole (`gailkit/CartPoleCentredPixels-v1`, 64x64 frames) with 10
episodes of the zoo's CartPole expert, recorded as frames (and, for the state reference, as
states: the same seeds, so the same episodes). Methods:

* state-gail: GAIL on CartPole-v1's state vector (the reference);
* pixel-gail: GAIL on raw frames, CNN policy (SB3's NatureCNN) and CNN discriminator: the
  model-free baseline;
* latent-gail, latent-dac: GAIL / DAC in the real pixel env on the world model's ``[z, h]``
  (``--perception``), V and M frozen;
* latent-gail-vm: latent GAIL that keeps training V and M on the expert's and its own frames
  (``--perception-train vm``, default settings);
* dream-gail: GAIL trained in the world model's dream, grounded by a few real episodes that
  refresh M (``gailkit imitate dream-gail``).

The world model is the `quick` preset's (60 random-policy episodes; V and M), trained once in
ROOT/wm. *Real* environment steps to 0.9 normalised return count the world model's data for the
latent methods (its ``data_steps``) and, for dream-gail, only its grounding episodes besides
(dream steps are free); evaluation episodes count for no method. No absorbing states anywhere
(the dream has none), so on CartPole the discriminator's positive reward ``-log(1 - D)`` also
pays for surviving, for every method alike.

ROOT (default ~/.cache/gailkit/bench/latent, outside the repository) holds every run as a
normal run directory; a rerun reuses finished runs and resumes partial ones. Writes
scripts/results/bench_latent_imitation[_<methods>].json (per method and seed: the history with
real steps) and a PNG of the same name (normalised return against real steps, seed 0).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from gailkit.agents.dac import DACConfig
from gailkit.agents.experts import CollectConfig, collect_demos
from gailkit.agents.gail import DreamGAILConfig, GAILConfig
from gailkit.agents.imitate import imitate_or_resume
from gailkit.configs import CommandParser
from gailkit.files import write_json
from gailkit.worldmodels.model import WorldModel

PIXELS = "gailkit/CartPoleCentredPixels-v1"
METHODS = ("state-gail", "latent-gail", "latent-gail-vm", "latent-dac", "dream-gail", "pixel-gail")

parser = CommandParser(description=__doc__.splitlines()[0])
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
parser.add_argument("--root", type=Path, default=Path.home() / ".cache" / "gailkit" / "bench" / "latent")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
parser.add_argument("--scale", type=float, default=1.0, help="multiply every step budget (a smoke run: 0.02)")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)

# environment steps (dream steps for dream-gail) per method; GAIL's default settings everywhere.
# pixel-gail runs at ~100 steps/s here (CNN policy and discriminator), so it stops at 50k: where it
# has not reached 0.9 by then, its steps to 0.9 are only bounded below (> 50k).
STEPS = {"state-gail": 60_000, "pixel-gail": 50_000, "latent-gail": 50_000, "latent-gail-vm": 50_000,
         "latent-dac": 30_000, "dream-gail": 30_000}
COMMON = dict(absorbing=False, eval_every=4_096, checkpoint_every=8_192, progress=False)


def world_model(root: Path) -> Path:
    """The quick preset's world model in ROOT/wm (collected and trained once, resumably)."""
    model = root / "wm" / "model"
    if not (model / "mdn_rnn.safetensors").exists() or WorldModel.load(model).data_steps is None:
        for stage in ("collect", "train-vae", "train-mdn"):
            subprocess.run([sys.executable, "-m", "gailkit", "worldmodel", stage, "--preset", "quick",
                            "--dir", str(root / "wm"), *(["--resume"] if stage == "collect" else [])], check=True)
    return model


def demos(root: Path) -> tuple[Path, Path]:
    """The zoo expert's first 10 episodes (seeds 0-9) as states and as frames."""
    state, pixels = root / "demos_state.npz", root / "demos_pixels.npz"
    if not state.exists():
        collect_demos(CollectConfig(expert="zoo:CartPole-v1", episodes=10, out=state))
    if not pixels.exists():
        collect_demos(CollectConfig(expert="zoo:CartPole-v1", episodes=10, out=pixels, pixels=PIXELS))
    return state, pixels


def config_for(method: str, seed: int, root: Path, state: Path, pixels: Path, model: Path):
    steps = max(2_048, int(STEPS[method] * args.scale))
    common = dict(COMMON, seed=seed, out=root / f"{method}_seed{seed}", steps=steps)
    if method == "state-gail":
        return GAILConfig(env="CartPole-v1", demos=state, **common)
    if method == "pixel-gail":
        return GAILConfig(env=PIXELS, demos=pixels, **common)
    if method == "latent-gail":
        return GAILConfig(env=PIXELS, demos=pixels, perception=model, **common)
    if method == "latent-gail-vm":
        return GAILConfig(env=PIXELS, demos=pixels, perception=model, perception_train="vm", **common)
    if method == "latent-dac":
        return DACConfig(env=PIXELS, demos=pixels, perception=model, **common)
    return DreamGAILConfig(env=PIXELS, demos=pixels, perception=model, **common)


def real_steps(method: str, entry: dict, wm_steps: int) -> int:
    """Real environment steps behind an evaluation (world-model data included)."""
    if method == "dream-gail":
        return int(entry["real_steps"])
    return int(entry["steps"]) + (wm_steps if method.startswith("latent") else 0)


args.root.mkdir(parents=True, exist_ok=True)
model = world_model(args.root)
wm_steps = int(WorldModel.load(model).data_steps)
state_demos, pixel_demos = demos(args.root)
results: dict[str, dict] = {"world_model": {"dir": str(model), "data_steps": wm_steps, "preset": "quick"},
                            "methods": {}}
for method in args.methods:
    rows = []
    for seed in range(args.seeds):
        config = config_for(method, seed, args.root, state_demos, pixel_demos, model)
        history = imitate_or_resume(config)
        for entry in history:
            entry["real_steps"] = real_steps(method, entry, wm_steps)
        hit = next((e for e in history if e["normalised"] >= 0.9), None)
        rows.append({"seed": seed, "final_normalised": history[-1]["normalised"],
                     "real_steps_to_0_9": hit["real_steps"] if hit else None,
                     "steps": config.steps, "wall_s": history[-1]["wall_s"], "history": history})
        print(f"{method} seed {seed}: final {rows[-1]['final_normalised']:.3f}, real steps to 0.9 "
              f"{rows[-1]['real_steps_to_0_9']}, {rows[-1]['wall_s']:.0f} s", flush=True)
    results["methods"][method] = rows


def fmt_steps(values: list) -> str:
    hits = [v for v in values if v is not None]
    text = f"{statistics.median(hits):,.0f}" if len(hits) == len(values) else f"{len(hits)}/{len(values)} reached"
    return text + (f" ({min(hits):,}-{max(hits):,})" if hits else "")


print(f"\n| method | env steps (dream steps for dream-gail) | final normalised: median (min-max), {args.seeds} seeds "
      "| real steps to 0.9: median (min-max) | wall s (median) |")
print("|---|---:|---:|---:|---:|")
for method, rows in results["methods"].items():
    finals = np.array([r["final_normalised"] for r in rows])
    print(f"| {method} | {rows[0]['steps']:,} | {np.median(finals):.3f} ({finals.min():.3f}-{finals.max():.3f}) | "
          f"{fmt_steps([r['real_steps_to_0_9'] for r in rows])} | {statistics.median(r['wall_s'] for r in rows):.0f} |")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=110)
for method, rows in results["methods"].items():
    h = rows[0]["history"]
    ax.plot([e["real_steps"] for e in h], [e["normalised"] for e in h], marker="o", ms=3, label=method)
ax.axhline(0.9, color="grey", ls=":", lw=1)
ax.set(xscale="log", xlabel="real environment steps (world-model data included)", ylabel="normalised return",
       title="pixel CartPole, 10 expert episodes (seed 0)")
ax.legend(fontsize=8)
fig.tight_layout()
suffix = "" if args.methods == list(METHODS) else "_" + "-".join(args.methods)
suffix += "" if args.scale == 1.0 else f"_scale{args.scale:g}"
fig.savefig(args.out / f"bench_latent_imitation{suffix}.png")
write_json(args.out / f"bench_latent_imitation{suffix}.json", {**results, "seeds": args.seeds, "scale": args.scale})
