"""What V's z and M's h hold on CarRacing: linear read-outs of the car's speed, its yaw rate and the last action.

Run:  python scripts/probe_worldmodel_readout.py      # both run folders below; --run-dirs DIR ... for others
      (each needs V and M from python scripts/bench_worldmodel.py --preset fast-2h-m32[-noindicators])

The DAgger probe (``probe_worldmodel_memory.py``) found that a C fitted to a privileged driver over
``[z, h]`` drives worse than one over ``z``, and read that as a copycat: M is fed every action, so h holds
the last one. This script measures that reading directly, and asks what else h holds. The privileged
driver (``gailkit.envs.car_racing.TrackFollower``) drives; at each step we keep z (V's noise drawn as C's),
h from the trained M, h from an untrained M of the same shape, the action before, and what the simulator
says: the car's speed and yaw rate. Ridge read-outs are fitted on some tracks and scored (R^2) on others:
- speed is what a frame without the gauge does not show; a memory that helps a controller should hold it;
- the action before is what a copycat reads;
- h from an M trained without the actions (``action_input=False``), where the run folder holds one
  (``model_blind``, trained by ``probe_worldmodel_memory.py --rows zh_blind``): a memory that can hold the
  last action only through what it did to the frames;
- ``h, the action before regressed out`` is h minus its best linear fit from the action before (fitted on
  the training tracks): what h holds apart from the action. (Not beside z: h minus a linear map of the
  action is a new mix of h and the action, and with z it reads the action again.)

Writes scripts/results/worldmodel_readout_probe.json.
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
BENCH = Path.home() / ".cache/gailkit/bench/worldmodel"
TARGETS = ("speed", "yaw rate", "steer before", "gas before", "brake before", "teacher's steer", "teacher's gas",
           "teacher's brake")
FIRST_TRACK = 2_000_000  # apart from the evaluation tracks and DAgger's training tracks


def measure(env) -> np.ndarray:
    hull = env.unwrapped.car.hull
    return np.array([np.hypot(*hull.linearVelocity), hull.angularVelocity])


def frame_before(z: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Each row's z at its episode's step before (zeros at the first step); rows interleave episodes in step order."""
    before = np.zeros_like(z)
    for e in np.unique(episode):
        rows = np.flatnonzero(episode == e)
        before[rows[1:]] = z[rows[:-1]]
    return before


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dirs", type=Path, nargs="+",
                        default=[BENCH / "fast-2h-m32", BENCH / "fast-2h-m32-noindicators"],
                        help="bench_worldmodel.py run folders with a trained world model in model/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-tracks", type=int, default=16)
    parser.add_argument("--test-tracks", type=int, default=8)
    parser.add_argument("--ridge", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "worldmodel_readout_probe.json")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        if not (run_dir / "model" / "mdn_rnn.safetensors").exists():
            print(f"error: no trained world model in {run_dir / 'model'}; train one first (python "
                  f"scripts/bench_worldmodel.py --preset fast-2h-m32) or pass --run-dirs", file=sys.stderr)
            return 2
    return run(args)


def run(args) -> int:
    import torch

    from gailkit.envs.car_racing import TrackFollower
    from gailkit.files import write_json
    from gailkit.worldmodels.dagger import linear_probe, teacher_frames
    from gailkit.worldmodels.model import WorldModel

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    teacher = TrackFollower()
    result = {"targets": list(TARGETS), "seeds": args.seeds, "train_tracks": args.train_tracks,
              "test_tracks": args.test_tracks, "ridge": args.ridge, "runs": {}}
    for run_dir in args.run_dirs:
        model = WorldModel.load(run_dir / "model")
        env_id = model.env_id
        per_seed: dict[str, list[np.ndarray]] = {}
        for seed in args.seeds:
            torch.manual_seed(seed)
            untrained = WorldModel(model.action_space, latent_dim=model.latent_dim, hidden=model.mdn_config.hidden,
                                   n_mixtures=model.mdn_config.n_mixtures, env_id=model.env_id)
            untrained.vae = model.vae
            blind_dir = run_dir / "model_blind"  # an M not fed the actions (probe_worldmodel_memory.py --rows zh_blind)
            blind = WorldModel.load(blind_dir) if (blind_dir / "M.done").exists() else None
            first = FIRST_TRACK + 10_000 * seed
            split = {"train": list(range(first, first + args.train_tracks)),
                     "test": list(range(first + args.train_tracks, first + args.train_tracks + args.test_tracks))}
            sets, targets = {}, {}
            for part, tracks in split.items():
                trained = teacher_frames(model, env_id, teacher, measure, tracks, seed=seed)
                other = teacher_frames(untrained, env_id, teacher, measure, tracks, seed=seed)
                assert np.array_equal(trained.z, other.z), "the same teacher and V noise: the same z"
                targets[part] = np.hstack([trained.measures, trained.previous_action, trained.action])
                sets[part] = {
                    "z": trained.z,
                    "[z, z before]": np.hstack([trained.z, frame_before(trained.z, trained.episode)]),
                    "action before": trained.previous_action,
                    "[z, action before]": np.hstack([trained.z, trained.previous_action]),
                    "h, M trained": trained.h,
                    "[z, h], M trained": np.hstack([trained.z, trained.h]),
                    "h, M untrained": other.h,
                    "[z, h], M untrained": np.hstack([trained.z, other.h]),
                }
                if blind is not None:
                    unseeing = teacher_frames(blind, env_id, teacher, measure, tracks, seed=seed)
                    sets[part]["h, M trained without the actions"] = unseeing.h
                    sets[part]["[z, h], M trained without the actions"] = np.hstack([trained.z, unseeing.h])
            # h minus its linear fit from the action before, the fit from the training tracks
            a_train, a_test = (np.hstack([sets[p]["action before"], np.ones((len(targets[p]), 1))])
                               for p in ("train", "test"))
            for key in ("h, M trained", "h, M untrained"):
                fit = np.linalg.lstsq(a_train, sets["train"][key], rcond=None)[0]
                for p, a in (("train", a_train), ("test", a_test)):
                    sets[p][f"{key}, the action before regressed out"] = sets[p][key] - a @ fit
            for key in sets["train"]:
                r2 = linear_probe(sets["train"][key], targets["train"], sets["test"][key], targets["test"],
                                  ridge=args.ridge)
                per_seed.setdefault(key, []).append(r2)
            print(f"{run_dir.name} seed {seed}: {len(targets['train'])} training and {len(targets['test'])} test steps "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        result["runs"][run_dir.name] = {
            "env": env_id,
            "r2": {key: {t: {"mean": float(np.mean([r[j] for r in rs])), "per_seed": [float(r[j]) for r in rs]}
                         for j, t in enumerate(TARGETS)} for key, rs in per_seed.items()},
        }
    result["total_s"] = time.perf_counter() - start
    write_json(args.out, result)
    for name, res in result["runs"].items():
        print(f"\n{name} ({res['env']}): held-out R^2, mean over {len(args.seeds)} seeds")
        print("| inputs | " + " | ".join(TARGETS) + " |\n|---|" + "---:|" * len(TARGETS))
        for key, row in res["r2"].items():
            print(f"| {key} | " + " | ".join(f"{row[t]['mean']:.2f}" for t in TARGETS) + " |")
    print(f"wrote {args.out} ({result['total_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
