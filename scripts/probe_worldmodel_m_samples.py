"""Probe: does M learn dynamics or V's noise? A preset's M trained on one sample of V's posterior
per frame for every epoch (``train_mdn``'s default, every preset's so far) against a fresh sample
each epoch (``fresh_samples``, as the World Models code trains its RNN), on the same data, V and seed.

Run:  python scripts/probe_worldmodel_m_samples.py                        (quick: about 6 minutes on 2 cores)
      python scripts/probe_worldmodel_m_samples.py --preset fast-2h-m32   (CarRacing: about 20 minutes)

Collects the preset's episodes (seed 0: those of scripts/bench_worldmodel.py and
scripts/bench_worldmodel_quick.py) and 4 held-out ones, trains V as the preset does, then M twice
from the same initial weights and batch order. At epochs 30, 100 and 300 (those the preset runs) and
at the last it reports ``next_latent_errors``: the squared error of M's mixture mean for V's
posterior mean of the next frame, against copying the current one, on the training and the
held-out episodes. Writes scripts/results/probe_worldmodel_m_samples_<preset>.json.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from gailkit.configs import CommandParser
from gailkit.nn.checkpoint import write_json
from gailkit.worldmodels.data import collect_chunks
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS, WorldModelPreset
from gailkit.worldmodels.train import next_latent_errors, train_mdn, train_vae

RESULTS = Path(__file__).resolve().parent / "results"


def fit_m(p: WorldModelPreset, model_dir: Path, data: Path, held: Path, *, fresh: bool, epochs: int,
          report_at: set[int], seed: int) -> list[dict]:
    """``train_mdn`` with ``fresh_samples=fresh``, M's forecast measured after the epochs of ``report_at``."""
    rows, start = [], time.perf_counter()

    def measure(epoch: int, model) -> None:
        if epoch in report_at:
            (m_train, copy_train), (m_held, copy_held) = (next_latent_errors(model, d) for d in (data, held))
            rows.append({"epoch": epoch, "train": {"m": m_train, "copy": copy_train},
                         "held_out": {"m": m_held, "copy": copy_held}, "wall_s": time.perf_counter() - start})
            print(f"{'fresh sample per epoch' if fresh else 'one sample per frame  '}, epoch {epoch:>3}: "
                  f"held-out M {m_held:.3f} against copying {copy_held:.3f}; training M {m_train:.3f} "
                  f"against {copy_train:.3f}", flush=True)

    train_mdn(data, model_dir, **{**p.mdn_options(), "epochs": epochs, "fresh_samples": fresh}, seed=seed,
              progress=False, after_epoch=measure)
    return rows


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(WM_PRESETS), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="M's epochs (default: the preset's)")
    parser.add_argument("--out", type=Path, help="default: scripts/results/probe_worldmodel_m_samples_<preset>.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    p = WM_PRESETS[args.preset]
    epochs = args.epochs or p.mdn_epochs
    report_at = {e for e in (30, 100, 300) if e <= epochs} | {epochs}
    with tempfile.TemporaryDirectory(prefix="probe_m_samples_") as tmp:
        data, held, model_dir = Path(tmp) / "data", Path(tmp) / "held_out", Path(tmp) / "model"
        collect_chunks(p.env, data, p.episodes, policy=p.collect_policy, seed=1000 * args.seed, progress=False)
        collect_chunks(p.env, held, 4, policy=p.collect_policy, seed=1000 * args.seed + 500, progress=False)
        train_vae(data, model_dir, **p.vae_options(), seed=args.seed, progress=False)
        rows = {name: fit_m(p, model_dir, data, held, fresh=fresh, epochs=epochs, report_at=report_at,
                            seed=args.seed)
                for name, fresh in (("one_sample_per_frame", False), ("fresh_sample_per_epoch", True))}
        frames = WorldModel.load(model_dir).data_steps
    out = args.out or RESULTS / f"probe_worldmodel_m_samples_{args.preset}.json"
    write_json(out, {"preset": args.preset, "env": p.env, "seed": args.seed, "epochs": epochs,
                     "data_steps": frames, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
