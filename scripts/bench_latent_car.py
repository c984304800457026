"""Benchmark: latent DAC on CarRacing from pixel demonstrations of the world-model controller.

Run:  python scripts/bench_latent_car.py [--steps 300000] [--report]

The demonstrator is the `fast-2h` preset's V+M+C controller, the best candidate its CMA-ES saw
(`python scripts/bench_worldmodel.py --preset fast-2h` trains it, in WM_DIR). Its first 10 real episodes on
`gailkit/FastCarRacing64-v3` (reset seeds 0-9) are recorded as 64x64 frames
(`gailkit worldmodel demos`), with their mean return as the expert reference. DAC then learns
in the real pixel env on the same world model's `[z, h]` (`--perception WM_DIR/model`, V and M
frozen), from the discriminator's reward alone: SAC, no absorbing state (a CarRacing episode
ends by the time limit, or by leaving the playfield), gamma 0.99, 5 evaluation tracks every
10k steps. Normalised return: 0 is the random policy, 1 the demonstrator. The curve's
references are the demonstrator's 10 demonstration episodes and the random policy; the final
row (`--final-tracks N`) scores the run's latest policy on the first N of the 100 evaluation
tracks of scripts/results/bench_worldmodel_fast-2h.json and normalises it by the demonstrator's
and the random policy's returns on those same tracks.

The run lives in ROOT (default ~/.cache/gailkit/bench/latent_car, outside the repository) and
resumes from its checkpoint (every 10k steps); at ~26 steps/s on one core here, 300k steps take
about 3.2 hours, so a run usually spans sessions. `--report` trains nothing: it writes the
results of the run as it stands (e.g. while it trains in another process). Writes
scripts/results/bench_latent_car.json (the evaluation history, `finished`) and a PNG of the curve.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from gailkit.agents.dac import DACConfig
from gailkit.agents.imitate import imitate_or_resume
from gailkit.configs import CommandParser
from gailkit.discriminators import DiscriminatorConfig
from gailkit.files import write_json
from gailkit.nn.checkpoint import read_json

ENV = "gailkit/FastCarRacing64-v3"
BENCH = Path.home() / ".cache" / "gailkit" / "bench"
RESULTS = Path(__file__).parent / "results"

parser = CommandParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=300_000)
parser.add_argument("--report", action="store_true", help="write the results of the run as it stands; train nothing")
parser.add_argument("--root", type=Path, default=BENCH / "latent_car")
parser.add_argument("--wm-dir", type=Path, default=BENCH / "worldmodel" / "fast-2h",
                    help="the fast-2h run of scripts/bench_worldmodel.py (its model/ and controller)")
parser.add_argument("--final-tracks", type=int, default=20,
                    help="evaluate the run's latest policy on the first N of the 100 tracks the demonstrator "
                         "was scored on")
parser.add_argument("--out", type=Path, default=RESULTS)
args = parser.parse_args()

model, demos, run = args.wm_dir / "model", args.root / "demos10.npz", args.root / "dac_seed0"
if not (model / "world_model.json").exists():
    parser.error(f"no world model in {model}: run `python scripts/bench_worldmodel.py --preset fast-2h` first")
if args.report:
    if not (run / "eval.json").exists():
        parser.error(f"{run} has no evaluation yet: run this script without --report first")
    history = read_json(run / "eval.json")["history"]
else:
    if not demos.exists():
        from gailkit.cli import main

        args.root.mkdir(parents=True, exist_ok=True)
        main(["worldmodel", "demos", "--preset", "fast-2h", "--dir", str(args.wm_dir), "--out", str(demos),
              "--episodes", "10", "--solution", "best"])
    config = DACConfig(env=ENV, demos=demos, perception=model, absorbing=False, gamma=0.99, steps=args.steps,
                       eval_every=10_000, checkpoint_every=10_000, eval_episodes=5, out=run, progress=False)
    history = imitate_or_resume(config, disc=DiscriminatorConfig(reward="gail", seed=0))

meta = read_json(run / "eval.json")
final = None
if args.final_tracks:
    import numpy as np

    from gailkit.agents.imitate import evaluate_run

    wm = read_json(RESULTS / "bench_worldmodel_fast-2h.json")
    tracks = wm["returns"]
    vmc = "V+M+C" if wm.get("solution", "best") == "best" else "V+M+C (best candidate seen)"  # the demonstrator
    ours = evaluate_run(run, episodes=args.final_tracks)
    demonstrator, rand = (float(np.mean(tracks[k]["all"][: args.final_tracks])) for k in (vmc, "random"))
    done = (run / "policy.safetensors").exists()  # else the latest checkpoint's policy is evaluated
    steps = history[-1]["steps"] if done else read_json(run / "checkpoint" / "state.json")["num_timesteps"]
    final = {"tracks": args.final_tracks, "steps": steps, "return_mean": ours["return_mean"],
             "return_std": ours["return_std"], "demonstrator_return": demonstrator, "random_return": rand,
             "normalised": (ours["return_mean"] - rand) / (demonstrator - rand)}
best = max(history, key=lambda e: e["normalised"])
late = [e["normalised"] for e in history if e["steps"] > history[-1]["steps"] / 2]  # the second half
result = {"env": ENV, "demonstrator": {"controller": str(args.wm_dir), "episodes": 10,
                                       "return_mean": meta["expert_return"]},
          "random_return": meta["random_return"], "run": str(run), "steps_planned": args.steps,
          "finished": history[-1]["steps"] >= args.steps and (run / "policy.safetensors").exists(),
          "final": history[-1], "best": best,
          "second_half": {"evaluations": len(late), "median_normalised": statistics.median(late),
                          "min_normalised": min(late), "max_normalised": max(late)},
          "same_tracks": final, "history": history}
print(f"demonstrator {meta['expert_return']:.1f}, random {meta['random_return']:.1f}")
print("| steps | return (5 tracks) | normalised | wall min |\n|---:|---:|---:|---:|")
for e in history:
    print(f"| {e['steps']:,} | {e['return_mean']:.1f} +/- {e['return_std']:.1f} | {e['normalised']:.3f} | "
          f"{e['wall_s'] / 60:.0f} |")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
ax.plot([e["steps"] for e in history], [e["normalised"] for e in history], marker="o", ms=3, label="latent DAC")
ax.axhline(1.0, color="grey", ls=":", lw=1, label="demonstrator (V+M+C)")
ax.set(xlabel="real environment steps", ylabel="normalised return (5 tracks)", title=f"latent DAC on {ENV}")
ax.legend(fontsize=8)
fig.tight_layout()
args.out.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out / "bench_latent_car.png")
write_json(args.out / "bench_latent_car.json", result)
print(f"best evaluation {best['normalised']:.3f} at {best['steps']:,} steps; "
      f"the second half's {len(late)} evaluations: "
      f"median {statistics.median(late):.3f} ({min(late):.3f} to {max(late):.3f})")
if final:
    print(f"latest policy ({final['steps']:,} steps) on {final['tracks']} tracks: {final['return_mean']:.1f} +/- "
          f"{final['return_std']:.1f}; demonstrator {final['demonstrator_return']:.1f}, random "
          f"{final['random_return']:.1f} on the same tracks: normalised {final['normalised']:.3f}")
print(f"wrote {args.out / 'bench_latent_car.json'} ({'finished' if result['finished'] else 'partial'})")
