"""Benchmark: a supervised chorale LM alone vs the same LM tuned by PPO in gailkit/ChoraleComposer-v0.

Run:  python scripts/bench_composer.py                       (about 15-20 min on 2 busy CPU cores)
Smoke run: python scripts/bench_composer.py --pretrain-steps 20 --iterations 2 --samples 64 \
          --eval-disc-steps 20 --out /tmp/bench_composer_smoke.json

1. The supervised model: a GPT-2 (``--size``) trained by teacher forcing on random ``--n-bars``
   excerpts of the training chorales, in the env's format (``--init DIR`` starts from a saved
   music transformer of ``gailkit generate train music transformer`` instead).
2. RL: :class:`ComposerTrainer` (PPO + KL to the supervised model + a critic trained on Bach vs
   the pieces just written, GAIL-style) for ``--iterations`` rollouts.
3. Judging, on samples written by each model with the same seed (tokens masked to valid ones)
   and on held-out Bach excerpts of the same length:
   - a *fresh* critic per row, trained in this run on training-set Bach vs half of that row's
     samples and tested on held-out Bach vs the other half: its balanced accuracy (0.5 = it cannot
     tell them from Bach; lower is better for the generator) and mean D on the samples;
   - the music metrics of :mod:`gailkit.generators.music.metrics` (in-scale rate, parallel
     fifths / octaves per 100 voice-pair transitions, voice crossing, qualified-note rate,
     empty-bar rate, ...) and the env's own theory return per piece.
Prints a table and writes scripts/results/bench_composer.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gailkit.data.chorales import load_chorales, split_chorales
from gailkit.envs.composer import ComposerState
from gailkit.generators.music.composer import ComposerConfig, ComposerTrainer, pretrain_lm, sample_pieces
from gailkit.generators.music.composer_disc import ChoraleDiscriminator, DiscConfig, bach_excerpts
from gailkit.generators.music.metrics import music_metrics
from gailkit.nn.checkpoint import load_weights, read_json, save_tensors, write_json

SHOWN = ["fresh_disc_acc", "fresh_mean_d", "theory_return", "in_scale_rate", "parallel_fifths", "parallel_octaves",
         "voice_crossing_rate", "qualified_note_rate", "empty_bar_rate", "pitch_class_overlap"]
LOWER_IS_BETTER = {"fresh_disc_acc", "parallel_fifths", "parallel_octaves", "voice_crossing_rate", "empty_bar_rate"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-bars", type=int, default=2)
    p.add_argument("--size", default="tiny", help="GPT-2 size preset of the supervised model")
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--pretrain-batch", type=int, default=32)
    p.add_argument("--init", type=Path, default=None, help="a saved music transformer to start from instead")
    p.add_argument("--iterations", type=int, default=80, help="PPO iterations (rollouts)")
    p.add_argument("--rollout-pieces", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--kl-coef", type=float, default=0.2)
    p.add_argument("--disc-weight", type=float, default=1.0)
    p.add_argument("--disc-steps", type=int, default=1, help="in-loop critic updates per iteration")
    p.add_argument("--theory-scale", type=float, default=1.0, help="multiplies every theory weight (0: critic only)")
    p.add_argument("--gae-lambda", type=float, default=1.0)
    p.add_argument("--samples", type=int, default=512, help="pieces per model for judging")
    p.add_argument("--eval-disc-steps", type=int, default=300, help="updates of each fresh critic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-dir", type=Path, default=None, help="keep the RL checkpoint here")
    p.add_argument("--supervised-cache", type=Path, default=None,
                   help="reuse the supervised LM saved here by an earlier run with the same flags (or save it)")
    p.add_argument("--sample-dir", type=Path, default=Path(__file__).parent / "results",
                   help="where composer_{supervised,rl}.{mid,png} go (four samples of each)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_composer.json")
    return p.parse_args(argv)


def lm_from_music_transformer(directory: Path) -> torch.nn.Module:
    """The HF causal LM inside a saved music generator (whichever attribute holds it)."""
    from gailkit.generators import load_generator

    model = load_generator(directory)
    for value in vars(model).values():
        if isinstance(value, torch.nn.Module) and hasattr(value, "get_output_embeddings"):
            return value.eval()
    raise ValueError(f"{directory} holds a {type(model).__name__} without a causal LM; pass a music transformer")


def save_lm(lm: torch.nn.Module, directory: Path) -> None:
    save_tensors(directory / "weights.safetensors", {k: v.clone() for k, v in lm.state_dict().items()})
    write_json(directory / "config.json", lm.config.to_dict())


def load_lm(directory: Path) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    lm = GPT2LMHeadModel(GPT2Config.from_dict(read_json(directory / "config.json", what="supervised LM")))
    load_weights(lm, directory / "weights.safetensors", what="supervised LM")
    return lm.eval()


def write_samples(directory: Path, name: str, voices: np.ndarray) -> list[str]:
    """The first four pieces, one after another, as MIDI and a piano-roll PNG."""
    from gailkit.generators.music.output import concatenate, plot_pianoroll, write_midi

    directory.mkdir(parents=True, exist_ok=True)
    midi = write_midi(concatenate(list(voices[:4])), directory / f"composer_{name}.mid")
    png = plot_pianoroll(list(voices[:4]), directory / f"composer_{name}.png",
                         titles=[f"{name} sample {i}" for i in range(len(voices[:4]))])
    return [str(midi), str(png)]


def fresh_critic(train_real: np.ndarray, fake: np.ndarray, test_real: np.ndarray, *, steps: int, seed: int
                 ) -> dict[str, float]:
    """Train a new critic on ``train_real`` vs the first half of ``fake``; judge on the rest."""
    rng = np.random.default_rng(seed)
    half = len(fake) // 2
    disc = ChoraleDiscriminator(DiscConfig(seed=seed))
    for _ in range(steps):
        disc.train_step(train_real[rng.integers(len(train_real), size=64)], fake[:half][rng.integers(half, size=64)])
    return {"fresh_disc_acc": disc.accuracy(test_real, fake[half:]), "fresh_mean_d": float(disc.prob(fake[half:]).mean())}


def theory_return(voices: np.ndarray, n_bars: int) -> float:
    """Mean theory reward per piece of the env (default weights, estimated key)."""
    state = ComposerState(len(voices), n_bars=n_bars)
    total = np.zeros(len(voices))
    for tokens in voices.transpose(0, 2, 1).reshape(len(voices), -1).T:
        total += state.step(tokens)[0]
    return float(total.mean())


def judge(name: str, voices: np.ndarray, *, bach_train: np.ndarray, bach_test: np.ndarray,
          args: argparse.Namespace) -> dict[str, float]:
    row = fresh_critic(bach_train, voices, bach_test, steps=args.eval_disc_steps, seed=args.seed + 1)
    row["theory_return"] = theory_return(voices, args.n_bars)
    row |= music_metrics(list(voices), reference=list(bach_train[:512]))
    print(f"  judged {name}: fresh critic acc {row['fresh_disc_acc']:.3f}, in-scale {row['in_scale_rate']:.3f}",
          flush=True)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    wall: dict[str, float] = {}
    chorales = load_chorales()
    train, test = split_chorales(chorales, "train"), split_chorales(chorales, "test")
    steps = 16 * args.n_bars
    print(f"{len(train)} training / {len(test)} held-out chorales; pieces of {args.n_bars} bars", flush=True)

    t = time.perf_counter()
    if args.init is not None:
        supervised = lm_from_music_transformer(args.init)
    elif args.supervised_cache is not None and (args.supervised_cache / "config.json").is_file():
        supervised = load_lm(args.supervised_cache)
        print(f"  supervised LM read from {args.supervised_cache}", flush=True)
    else:
        supervised = pretrain_lm(train, n_bars=args.n_bars, size=args.size, steps=args.pretrain_steps,
                                 batch=args.pretrain_batch, seed=args.seed,
                                 log=lambda r: r["step"] % 100 == 0 and print(f"  pretrain {r['step']}: loss {r['loss']:.3f}", flush=True))
        if args.supervised_cache is not None:
            save_lm(supervised, args.supervised_cache)
    wall["supervised_s"] = time.perf_counter() - t

    t = time.perf_counter()
    base = ComposerConfig()
    theory = {k: getattr(base, k) * args.theory_scale for k in ("in_scale", "parallel", "crossing", "out_of_range", "rest")}
    config = ComposerConfig(n_bars=args.n_bars, rollout_pieces=args.rollout_pieces, lr=args.lr,
                            kl_coef=args.kl_coef, disc_weight=args.disc_weight, disc_steps=args.disc_steps,
                            gae_lambda=args.gae_lambda, seed=args.seed, **theory)
    trainer = ComposerTrainer(supervised, chorales=train, config=config)
    keys = ("return", "theory_return", "mean_d", "kl_to_reference", "disc_acc")
    trainer.train(args.iterations, log=lambda r: print(
        "  rl " + ", ".join(f"{k} {r[k]:.3f}" for k in ("iteration", *keys) if k in r), flush=True))
    wall["rl_s"] = time.perf_counter() - t
    if args.save_dir is not None:
        trainer.save(args.save_dir)

    t = time.perf_counter()
    rng = np.random.default_rng(args.seed + 2)
    bach_train = bach_excerpts(train, steps, 4 * args.samples, rng=rng)
    bach_test = bach_excerpts(test, steps, args.samples, rng=rng)
    files: list[str] = []
    rows = {"held-out Bach": judge("held-out Bach", bach_excerpts(test, steps, args.samples, rng=rng),
                                   bach_train=bach_train, bach_test=bach_test, args=args)}
    for name, lm in (("supervised", supervised), ("RL-tuned", trainer.lm)):
        voices = sample_pieces(lm, args.samples, n_bars=args.n_bars, seed=args.seed + 3)
        rows[name] = judge(name, voices, bach_train=bach_train, bach_test=bach_test, args=args)
        if args.sample_dir is not None:
            files += write_samples(args.sample_dir, name.split("-")[0].lower(), voices)
    wall["judging_s"] = time.perf_counter() - t
    wall["total_s"] = time.perf_counter() - start
    sup, rl = rows["supervised"], rows["RL-tuned"]
    improved = {k: (rl[k] < sup[k]) if k in LOWER_IS_BETTER else (rl[k] > sup[k]) for k in SHOWN if k in rl}
    return {"rows": rows, "improved_by_rl": improved, "wall_s": wall, "files": files, "history": trainer.history,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "composer_config": dataclasses.asdict(config), "machine": platform.machine(),
            "threads": torch.get_num_threads()}


def print_table(result: dict[str, Any]) -> None:
    rows = result["rows"]
    names = list(rows)
    print(f"\n{'metric':<22}" + "".join(f"{n:>15}" for n in names) + "   RL better?")
    for k in SHOWN:
        if k not in rows[names[0]]:
            continue
        flag = {True: "yes", False: "no"}.get(result["improved_by_rl"].get(k), "")
        print(f"{k:<22}" + "".join(f"{rows[n][k]:>15.3f}" for n in names) + f"   {flag}")
    wall = result["wall_s"]
    print(f"\nwall: supervised {wall['supervised_s']:.0f} s, RL {wall['rl_s']:.0f} s, judging {wall['judging_s']:.0f} s, "
          f"total {wall['total_s']:.0f} s  (fresh_disc_acc: 0.5 = indistinguishable from Bach; lower is better)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
