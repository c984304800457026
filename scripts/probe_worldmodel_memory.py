"""What M's memory h is worth to World Models' linear controller C on CarRacing, apart from any search.

Run:  python scripts/bench_worldmodel.py --preset fast-2h-m32     # (V and M; the first 18 minutes suffice)
      python scripts/probe_worldmodel_memory.py                    # --run-dir DIR, --seeds 0 1 2
On frames without the speed gauge, where one frame does not tell the speed:
      python scripts/bench_worldmodel.py --preset fast-2h-m32-noindicators   # (V and M: about 20 minutes)
      python scripts/probe_worldmodel_memory.py --run-dir ~/.cache/gailkit/bench/worldmodel/fast-2h-m32-noindicators \
          --out scripts/results/worldmodel_memory_probe_noindicators.json

CMA-ES found no controller over ``[z, h]`` that beats the one over ``z`` (docs/carracing.md).
Either C cannot drive better with h, or the search does not find how. This script takes the search
out: a privileged teacher that reads the track and the car (``gailkit.envs.car_racing.TrackFollower``)
labels frames, and C is fitted to it by DAgger (``gailkit.worldmodels.dagger``), with the same
teacher, budget and training tracks for each of
- ``[z, h]``: V+M+C, h from the trained M;
- ``z``: V only;
- ``[z, h]`` from an untrained M of the same shape (its LSTM's random features of the past z and
  actions): whether what helps is M's training or only a longer view of the past;
- ``[z, a_{t-1}]``: z and the action taken at the step before, the classic test of a copycat (an imitator
  that can read its own last action fits a smooth teacher by repeating it). h is fed every action, so
  it holds the last one too. This row drives with ``dagger.drive``, and so does a z row beside it
  (the same C as V only's, with the same V noise).
Each C is then evaluated on the benchmark's 100 tracks (gailkit.evaluation.EVAL_SEED onwards, as
``bench_worldmodel.py``), with each [z, h] row's ablation beside it: the same C with h held at its average over
the frames it was fitted on. Differences are track by track (standard error over the tracks; with
several DAgger seeds, over the seeds' tracks pooled, and again over the seeds' mean differences,
which counts how much DAgger's seed moves C). The teacher's own return on the same tracks is the ceiling.

Writes scripts/results/worldmodel_memory_probe.json and .png (DAgger's curves: the return as driven
per iteration).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from gailkit.configs import CommandParser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "scripts" / "results"
ROWS = {"zh": "V+M+C: [z, h], M trained", "z": "V only: z", "zh_untrained": "[z, h], M untrained",
        "zh_frozen": "V+M+C, h held at its average", "za": "[z, a_{t-1}]: z and the action before",
        "z_drive": "V only: z, V's noise as [z, a_{t-1}]'s", "zh_blind": "[z, h], M trained without the actions",
        "zh_blind_frozen": "[z, h], M trained without the actions, h held at its average"}
FITTED = ("zh", "z", "zh_untrained", "za", "zh_blind")  # the input sets DAgger fits a C over
DIFFERENCES = {"[z, h] minus z": ("zh", "z"), "[z, h] minus [z, h] of an untrained M": ("zh", "zh_untrained"),
               "[z, h] minus h held at its average": ("zh", "zh_frozen"),
               "[z, h] of an untrained M minus z": ("zh_untrained", "z"),
               "[z, a_{t-1}] minus z (the same V noise)": ("za", "z_drive"),
               "[z, h] of an M without the actions minus z": ("zh_blind", "z"),
               "[z, h] of an M without the actions minus h held at its average": ("zh_blind", "zh_blind_frozen")}


def paired(a: list[np.ndarray], b: list[np.ndarray]) -> dict:
    """Track-by-track differences of two rows, given per seed: over the seeds' tracks pooled, and per
    seed (a seed's mean difference; the standard error over the seeds counts what DAgger's seed varies)."""
    diffs = [np.asarray(x, float) - np.asarray(y, float) for x, y in zip(a, b, strict=True)]
    d, per_seed = np.concatenate(diffs), np.array([x.mean() for x in diffs])

    def se(x: np.ndarray) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x)))

    return {"mean": float(d.mean()), "se": se(d), "ahead": int((d > 0).sum()), "behind": int((d < 0).sum()),
            "per_seed": per_seed.tolist(), "se_over_seeds": se(per_seed) if len(per_seed) > 1 else None,
            "seeds_ahead": int((per_seed > 0).sum())}


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path.home() / ".cache/gailkit/bench/worldmodel/fast-2h-m32",
                        help="a bench_worldmodel.py run folder with a trained world model in model/")
    parser.add_argument("--env", help="default: the env the world model was trained on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--episodes", type=int, default=8, help="DAgger episodes per iteration")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--rows", nargs="+", choices=FITTED, default=list(FITTED[:4]),
                        help="the input sets to fit, in order (za needs z before it); zh_blind first trains an M "
                             "that does not see the actions, in RUN_DIR/model_blind")
    parser.add_argument("--m-epochs", type=int, default=10, help="zh_blind's M: epochs (the fast-2h presets' 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "worldmodel_memory_probe.json")
    args = parser.parse_args(argv)
    model_dir = args.run_dir / "model"
    if not (model_dir / "world_model.json").exists() or not (model_dir / "mdn_rnn.safetensors").exists():
        print(f"error: no trained world model in {model_dir}; train one first "
              f"(python scripts/bench_worldmodel.py --preset fast-2h-m32) or pass --run-dir", file=sys.stderr)
        return 2
    if "za" in args.rows and ("z" not in args.rows or args.rows.index("za") < args.rows.index("z")):
        print("error: --rows za drives a z row beside it with z's controller; put z before za", file=sys.stderr)
        return 2
    return run(args, model_dir)


def run(args, model_dir: Path) -> int:
    import torch

    from gailkit.envs.car_racing import TrackFollower
    from gailkit.evaluation import EVAL_SEED
    from gailkit.files import write_json
    from gailkit.worldmodels.dagger import DaggerConfig, dagger_controller, drive, teacher_returns
    from gailkit.worldmodels.linear_controller import without_memory
    from gailkit.worldmodels.model import WorldModel
    from gailkit.worldmodels.real import evaluate_controller

    torch.set_num_threads(args.threads)
    model = WorldModel.load(model_dir)
    args.env = args.env or model.env_id or "gailkit/FastCarRacing64-v3"
    model.check_env(args.env)
    teacher = TrackFollower()
    tracks = list(range(EVAL_SEED, EVAL_SEED + args.eval_episodes))
    start = time.perf_counter()
    returns: dict[str, list[np.ndarray]] = {k: [] for k in ROWS}
    curves: dict[str, list[list[dict]]] = {k: [] for k in args.rows}
    wall: dict[str, float] = {}
    blind = train_blind_m(args, model, wall) if "zh_blind" in args.rows else None
    for seed in args.seeds:
        config = DaggerConfig(iterations=args.iterations, episodes=args.episodes, seed=seed)
        torch.manual_seed(seed)
        untrained = WorldModel(model.action_space, latent_dim=model.latent_dim, hidden=model.mdn_config.hidden,
                               n_mixtures=model.mdn_config.n_mixtures, env_id=model.env_id)
        untrained.vae = model.vae  # the same V; M's weights as initialised
        params: dict[str, np.ndarray] = {}
        inputs = {"zh": (model, True, False), "z": (model, False, False), "zh_untrained": (untrained, True, False),
                  "za": (model, False, True), "zh_blind": (blind, True, False)}
        for key, (wm, memory, previous) in ((k, inputs[k]) for k in args.rows):
            t = time.perf_counter()
            fitted = dagger_controller(wm, args.env, teacher, memory=memory, previous_action=previous, config=config)
            wall[f"DAgger {key} seed {seed}"] = time.perf_counter() - t
            curves[key].append(fitted.history)
            t = time.perf_counter()
            if key == "za":  # evaluate_controller drives [z, h] or z; drive() also [z, a_{t-1}], and z beside it
                returns[key].append(drive(model, args.env, fitted.params, tracks, memory=False, previous_action=True,
                                          seed=seed))
                returns["z_drive"].append(drive(model, args.env, params["z"], tracks, memory=False, seed=seed))
            else:
                returns[key].append(evaluate_controller(wm, fitted.params, args.env, args.eval_episodes))
            params[key] = fitted.params
            if key in ("zh", "zh_blind"):
                frozen = without_memory(wm, fitted.params, fitted.input_mean[wm.latent_dim:])
                returns[f"{key}_frozen"].append(evaluate_controller(wm, frozen, args.env, args.eval_episodes))
            wall[f"evaluation {key} seed {seed}"] = time.perf_counter() - t
            print(f"seed {seed} {ROWS[key]}: {returns[key][-1].mean():.1f}"
                  + (f"; {ROWS['z_drive']}: {returns['z_drive'][-1].mean():.1f}" if key == "za" else ""), flush=True)
    t = time.perf_counter()
    teacher_on_tracks = teacher_returns(args.env, teacher, tracks)
    wall["teacher on the evaluation tracks"] = time.perf_counter() - t
    pooled = {k: np.concatenate(v) for k, v in returns.items() if v}
    result = {
        "env": args.env, "run_dir": str(args.run_dir), "seeds": args.seeds, "eval_episodes": args.eval_episodes,
        "dagger": {"iterations": args.iterations, "episodes": args.episodes},
        "teacher": {"mean": float(teacher_on_tracks.mean()), "std": float(teacher_on_tracks.std()),
                    "all": teacher_on_tracks.tolist()},
        "rows": {ROWS[k]: {"mean": float(pooled[k].mean()), "std": float(pooled[k].std()),
                           "per_seed": [float(r.mean()) for r in returns[k]], "all": [r.tolist() for r in returns[k]]}
                 for k in ROWS if returns[k]},
        "differences": {name: paired(returns[a], returns[b]) for name, (a, b) in DIFFERENCES.items()
                        if returns[a] and returns[b]},
        # C's error to the teacher on the teacher's own driving (iteration 0), mean over the seeds: how well
        # the inputs predict the teacher's action where the teacher drives
        "teacher_fit_error": {ROWS[k]: float(np.mean([h[0]["error_after_fit"] for h in curves[k]])) for k in args.rows},
        "dagger_curves": {ROWS[k]: v for k, v in curves.items()},
        "wall_s": wall, "total_s": time.perf_counter() - start,
    }
    write_json(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    print(f"teacher {result['teacher']['mean']:.1f}")
    print("| C's inputs | 100-track mean | per seed |\n|---|---:|---|")
    for name, row in result["rows"].items():
        print(f"| {name} | {row['mean']:.1f} | {', '.join(f'{x:.1f}' for x in row['per_seed'])} |")
    for name, e in result["teacher_fit_error"].items():
        print(f"fit error on the teacher's driving, {name}: {e:.3f}")
    for name, d in result["differences"].items():
        print(f"{name}: {d['mean']:+.1f} (SE {d['se']:.1f}; {d['ahead']} ahead, {d['behind']} behind; "
              f"ahead on {d['seeds_ahead']} of {len(d['per_seed'])} seeds"
              + (f", SE over the seeds {d['se_over_seeds']:.1f})" if d["se_over_seeds"] is not None else ")"))
    print(f"wrote {args.out}")
    return 0


def train_blind_m(args, model, wall: dict) -> object:
    """An M of the trained one's shape, fitted to the same data and V but not fed the actions
    (``action_input=False``), in RUN_DIR/model_blind; reused when already there."""
    from gailkit.worldmodels.iterative import refit_memory
    from gailkit.worldmodels.model import WorldModel

    out = args.run_dir / "model_blind"
    if not (out / "M.done").exists():
        t = time.perf_counter()
        refit_memory(args.run_dir / "model", [args.run_dir / "data"], out, epochs=args.m_epochs,
                     hidden=model.mdn_config.hidden, n_mixtures=model.mdn_config.n_mixtures, action_input=False)
        wall["M without the actions"] = time.perf_counter() - t
        (out / "M.done").touch()
    return WorldModel.load(out)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gailkit.files import atomic_write

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k_row, (name, runs) in enumerate(result["dagger_curves"].items()):
        color = f"C{k_row}"
        for k, history in enumerate(runs):
            ax.plot([h["iteration"] for h in history], [h["return_as_driven"] for h in history], color=color,
                    alpha=0.8, label=name if k == 0 else None, marker="o", ms=3)
    ax.axhline(result["teacher"]["mean"], color="k", ls="--", lw=1, label="teacher (100 tracks)")
    ax.set_xlabel("DAgger iteration (0: the teacher drives)")
    ax.set_ylabel("mean return as driven (8 tracks)")
    ax.set_title(f"C fitted to a privileged driver, by its inputs ({result['env'].split('/')[-1]})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
