"""Probe: does M learn dynamics or V's noise? A preset's M trained on one sample of V's posterior
per frame for every epoch (``train_mdn``'s default, every preset's so far) against a fresh sample
each epoch (``fresh_samples``, as the World Models code trains its RNN), on the same data, V and seed.

Run:  python scripts/probe_worldmodel_m_samples.py                        (quick: about 6 minutes on 2 cores)
      python scripts/probe_worldmodel_m_samples.py --preset fast-2h-m32   (CarRacing: about 20 minutes)
      python scripts/probe_worldmodel_m_samples.py --preset fast-2h-m32 --epochs 30 \
          --work ~/.cache/gailkit/bench/probe_m   (a second run with the same --work reuses the episodes and V)

Collects the preset's episodes (seed 0: those of scripts/bench_worldmodel.py and
scripts/bench_worldmodel_quick.py) and 4 held-out ones, trains V as the preset does, then one M per
row from the same initial weights and batch order. At epochs 10, 30, 100 and 300 (those the preset
runs) and at the last it reports ``next_latent_errors``: the squared error of M's mixture mean for V's
posterior mean of the next frame, against copying the current one, on the training and the held-out
episodes, M fed V's posterior means; and on the held-out episodes M fed draws of V's posterior (as it
is trained, and as it runs beside C), against copying the draw. It also gives how wide V's posterior is
on the held-out frames. Writes scripts/results/probe_worldmodel_m_samples_<preset>.json.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import torch

from gailkit.configs import CommandParser
from gailkit.nn.checkpoint import write_json
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS, WorldModelPreset
from gailkit.worldmodels.train import next_latent_errors, train_mdn, train_vae

RESULTS = Path(__file__).resolve().parent / "results"
# train_mdn's options of each row, over the preset's
ROWS = {"one_sample_per_frame": {"fresh_samples": False}, "fresh_sample_per_epoch": {"fresh_samples": True}}


def fit_m(p: WorldModelPreset, model_dir: Path, data: Path, held: Path, *, row: str, epochs: int,
          report_at: set[int], seed: int, hidden: int | None) -> list[dict]:
    """``train_mdn`` with the options of ``ROWS[row]``, M's forecast measured after the epochs of ``report_at``."""
    rows, start = [], time.perf_counter()

    def measure(epoch: int, model) -> None:
        if epoch in report_at:
            (m_train, copy_train), (m_held, copy_held) = (next_latent_errors(model, d) for d in (data, held))
            m_drawn, copy_drawn = next_latent_errors(model, held, sampled=True, seed=seed)
            rows.append({"epoch": epoch, "train": {"m": m_train, "copy": copy_train},
                         "held_out": {"m": m_held, "copy": copy_held},
                         "held_out_sampled": {"m": m_drawn, "copy": copy_drawn}, "wall_s": time.perf_counter() - start})
            print(f"{row:<22}, epoch {epoch:>3}: held-out M {m_held:.3f} against copying {copy_held:.3f} "
                  f"(from draws: {m_drawn:.3f} against {copy_drawn:.3f}); training M {m_train:.3f} "
                  f"against {copy_train:.3f}", flush=True)

    options = {**p.mdn_options(), **ROWS[row], "epochs": epochs} | ({"hidden": hidden} if hidden else {})
    train_mdn(data, model_dir, **options, seed=seed, progress=False, after_epoch=measure)
    return rows


def v_posterior(model: WorldModel, held: Path) -> dict:
    """How wide V's posterior is on the held-out frames: its variance per dimension (the noise in a draw, which M
    and C are fed) against the variance of its mean over the frames (what the frames vary), and their sums."""
    mu, logvar = zip(*(model.posterior(load_chunk(path)["frames"]) for path in chunk_paths(held)))
    noise, signal = torch.cat(logvar).exp().mean(0), torch.cat(mu).var(0)
    return {"noise_variance_sum": noise.sum().item(), "signal_variance_sum": signal.sum().item(),
            "dimensions_at_the_prior": int((noise > 0.5).sum()), "noise_variance": noise.tolist(),
            "signal_variance": signal.tolist()}


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(WM_PRESETS), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="M's epochs (default: the preset's)")
    parser.add_argument("--hidden", type=int, help="M's LSTM units in every row (default: the preset's)")
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=["one_sample_per_frame",
                                                                            "fresh_sample_per_epoch"])
    parser.add_argument("--work", type=Path, help="keep the episodes and V here and reuse them when present "
                                                  "(default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="default: scripts/results/probe_worldmodel_m_samples_<preset>.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    p = WM_PRESETS[args.preset]
    epochs = args.epochs or p.mdn_epochs
    report_at = {e for e in (10, 30, 100, 300) if e <= epochs} | {epochs}
    with (contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="probe_m_")) as tmp:
        work = Path(tmp) / f"{args.preset}_seed{args.seed}"
        data, held, model_dir = work / "data", work / "held_out", work / "model"
        # collection resumes: chunks already in --work are kept
        collect_chunks(p.env, data, p.episodes, policy=p.collect_policy, seed=1000 * args.seed, progress=False)
        collect_chunks(p.env, held, 4, policy=p.collect_policy, seed=1000 * args.seed + 500, progress=False)
        if not (model_dir / "vae.safetensors").exists():
            train_vae(data, model_dir, **p.vae_options(), seed=args.seed, progress=False)
        rows = {row: fit_m(p, model_dir, data, held, row=row, epochs=epochs, report_at=report_at, seed=args.seed,
                           hidden=args.hidden) for row in args.rows}
        model = WorldModel.load(model_dir)
        posterior = v_posterior(model, held)
        print(f"V's posterior on the held-out frames: noise variance {posterior['noise_variance_sum']:.2f} in all "
              f"({posterior['dimensions_at_the_prior']} of {model.latent_dim} dimensions at the prior), the mean's "
              f"variance over the frames {posterior['signal_variance_sum']:.2f}")
    out = args.out or RESULTS / f"probe_worldmodel_m_samples_{args.preset}.json"
    write_json(out, {"preset": args.preset, "env": p.env, "seed": args.seed, "epochs": epochs,
                     "hidden": args.hidden or p.hidden, "data_steps": model.data_steps, "v_posterior": posterior,
                     "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
