"""Benchmark: the image family (DCGAN, VAE, CycleGAN) trained a few minutes each on CPU.

Run:  python scripts/bench_images.py
Smoke run: python scripts/bench_images.py --quick          (writes to /tmp/bench_images_quick)

Prints one table and writes one JSON per run, named by the options that differ from the
defaults (scripts/results/bench_images[_quick][_<datasets>][_e<dcgan>-<vae>-<cyclegan>]_seed<S>.json),
and the sample grids image_<model>.png: in scripts/results/ for the default run, in a folder
named like the JSON (scripts/results/bench_images_seed1/) for any other:
- dcgan and vae on the family's default data (random-policy frames of Acrobot-v1, 32x32;
  1,600 train / 400 test) and on scikit-learn's digits
  upscaled to 32x32 (1,437 / 360; image_<model>_digits.png), with the Frechet distance
  in the fixed random-conv embedding (gailkit.generators.image.features) of as many samples as
  test images, and the nearest-neighbour ratio against the training frames (~1: as near the
  training set as fresh images are; ~0: copies); reference rows: real training images, the mean
  training image (plus faint noise) repeated, and uniform noise;
- cyclegan on the demo pair (photo patches vs posterised prints, 32x32; 800 + 800 train,
  200 + 200 test): a domain judge trained on half of the test images per domain reports its
  accuracy on the other (real) half and the fractions of translations it assigns to the target
  domain, plus the cycle errors |F(G(a)) - a|; reference row: the identity map (no translation).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gailkit.configs import CommandParser
from gailkit.generators import load_family_data
from gailkit.generators.image import DCGAN, CycleGAN, ImageVAE
from gailkit.generators.image.features import DomainJudge, embed, frechet_distance, nn_ratio
from gailkit.nn.checkpoint import write_json

RESULTS = Path(__file__).resolve().parent / "results"

parser = CommandParser(description=__doc__.split("\n")[0])
parser.add_argument("--datasets", default="frames,digits", help="for dcgan and vae: frames and/or digits")
parser.add_argument("--dcgan-epochs", type=int, default=30)
parser.add_argument("--vae-epochs", type=int, default=12)
parser.add_argument("--cyclegan-epochs", type=int, default=12)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--quick", action="store_true", help="smoke run: 1 epoch each on small data")
parser.add_argument("--json", type=Path, default=None, help="result JSON (default: named by the options)")
parser.add_argument("--pictures", type=Path, default=None, help="directory for image_<model>.png")
args = parser.parse_args()
run_start = time.perf_counter()

# one file per run: the options that differ from the defaults are in its name
options = "_quick" if args.quick else ""
if args.datasets != parser.get_default("datasets"):
    options += "_" + args.datasets.replace(",", "-")
epoch_flags = ("dcgan_epochs", "vae_epochs", "cyclegan_epochs")
if any(getattr(args, f) != parser.get_default(f) for f in epoch_flags):
    options += f"_e{args.dcgan_epochs}-{args.vae_epochs}-{args.cyclegan_epochs}"
results = Path("/tmp/bench_images_quick") if args.quick else RESULTS  # smoke runs stay out of results/
name = f"bench_images{options}_seed{args.seed}"
args.json = args.json or results / f"{name}.json"
default_run = options == "" and args.seed == 0  # its grids are the ones the README shows
args.pictures = args.pictures or (results if default_run else results / name)

epochs = {"dcgan": 1, "vae": 1, "cyclegan": 1} if args.quick else {
    "dcgan": args.dcgan_epochs, "vae": args.vae_epochs, "cyclegan": args.cyclegan_epochs}
rows: list[dict] = []
rng = np.random.default_rng(args.seed)


def reference(name: str, images: np.ndarray, train, test, real_f) -> dict:
    return {"model": name, "data": train.name, "frechet": frechet_distance(embed(images), real_f),
            "nn_ratio": nn_ratio(images, np.asarray(test.images), np.asarray(train.images))}


for dataset in args.datasets.split(","):
    spec = {"frames": "frames,n=200" if args.quick else None, "digits": "digits"}[dataset]
    train = load_family_data("image", spec, split="train")
    test = load_family_data("image", spec, split="test")
    if args.quick:
        train, test = train.subset(np.arange(min(len(train), 160))), test.subset(np.arange(min(len(test), 40)))
    # -- reference rows: real images, the mean training image (with faint noise), uniform noise
    real_f = embed(test.images)
    rows.append({"model": "real training images", "data": train.name,
                 "frechet": frechet_distance(embed(train.images[: len(test)]), real_f)})
    mean_image = np.asarray(train.images).mean(0, keepdims=True)
    faint = np.clip(mean_image + 0.01 * rng.standard_normal((len(test), *train.shape)), 0, 1).astype(np.float32)
    rows.append(reference("mean image + faint noise", faint, train, test, real_f))
    noise = rng.random((len(test), *train.shape), dtype=np.float32)
    rows.append(reference("uniform noise", noise, train, test, real_f))
    # -- dcgan and vae
    suffix = "" if dataset == "frames" else f"_{dataset}"
    for cls in (DCGAN, ImageVAE):
        t0 = time.perf_counter()
        model = cls(epochs=epochs[cls.name], seed=args.seed, grid_every=0).fit(train, progress=False)
        wall = time.perf_counter() - t0
        metrics = model.evaluate(test, train=train, seed=args.seed)
        model.save_samples(args.pictures / f"image_{cls.name}{suffix}.png", n=64, seed=args.seed)
        rows.append({"model": cls.name, "data": train.name, **metrics, "epochs": epochs[cls.name], "train_s": wall})
        print(f"{cls.name} on {train.name}: {metrics} in {wall:.0f} s", flush=True)

# -- cyclegan -----------------------------------------------------------------------------------------
pair_spec = "demo-pair,n=80" if args.quick else "demo-pair"
pair_train = load_family_data("image", pair_spec, split="train")
pair_test = load_family_data("image", pair_spec, split="test")
a, b = np.asarray(pair_test.a.images), np.asarray(pair_test.b.images)
ha, hb = len(a) // 2, len(b) // 2
judge = DomainJudge(a.shape[1], seed=args.seed).fit(a[:ha], b[:hb])
rows.append({"model": "identity (no translation)", "data": "demo-pair",
             "judge_real_acc": float(np.concatenate([judge.prob_b(a[ha:]) < 0.5, judge.prob_b(b[hb:]) >= 0.5]).mean()),
             "judge_a2b": float((judge.prob_b(a[ha:]) >= 0.5).mean()),
             "judge_b2a": float((judge.prob_b(b[hb:]) < 0.5).mean()), "cycle_a": 0.0, "cycle_b": 0.0})
t0 = time.perf_counter()
cyclegan = CycleGAN(epochs=epochs["cyclegan"], seed=args.seed, grid_every=0).fit(pair_train, progress=False)
wall = time.perf_counter() - t0
rows.append({"model": "cyclegan", "data": "demo-pair", **cyclegan.evaluate(pair_test, seed=args.seed),
             "epochs": epochs["cyclegan"], "train_s": wall})
cyclegan.save_samples(args.pictures / "image_cyclegan.png", n=8, seed=args.seed)

# -- table ------------------------------------------------------------------------------------------
columns = ["frechet", "nn_ratio", "recon_mse", "kl", "judge_real_acc", "judge_a2b", "judge_b2a", "cycle_a", "cycle_b",
           "epochs", "train_s"]
used = [c for c in columns if any(c in r for r in rows)]
print(f"{'model':<26}{'data':<28}" + "".join(f"{c:>15}" for c in used))
for r in rows:
    cells = "".join(f"{r[c]:>15.4g}" if c in r else f"{'':>15}" for c in used)
    print(f"{r['model']:<26}{r['data'][:27]:<28}{cells}")
write_json(args.json, {"quick": args.quick, "seed": args.seed, "epochs": epochs, "datasets": args.datasets,
                       "rows": rows, "wall_s": time.perf_counter() - run_start})
print(f"wrote {args.json} and image_<model>.png in {args.pictures}")
