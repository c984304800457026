"""Benchmark: a supervised chorale LM alone vs the same LM tuned by PPO in gailkit/ChoraleComposer-v0.

Run:  python scripts/bench_composer.py                       (about 10-20 min on 2 busy CPU cores)
Smoke run: python scripts/bench_composer.py --pretrain-steps 20 --iterations 2 --samples 64 \
          --eval-disc-steps 20 --out /tmp/bench_composer_smoke.json
Judging again without training: pass --supervised-cache DIR and --rl-cache DIR (outside the
repository, e.g. ~/.cache/gailkit/bench/composer_sup and .../composer_rl); a first run saves the
two models there, a later run with the same options reads them and only judges.

1. The supervised model: a GPT-2 (``--size``) trained by teacher forcing on random ``--n-bars``
   excerpts of the training chorales, in the env's format (``--init DIR`` starts from a saved
   music transformer of ``gailkit generate train music transformer`` instead).
2. RL: :class:`ComposerTrainer` (PPO + KL to the supervised model + a critic trained on Bach vs
   the pieces just written, GAIL-style) for ``--iterations`` rollouts.
3. Judging, on samples written by each model with the same seed (tokens masked to valid ones)
   and on held-out Bach excerpts of the same length. Each judge is trained per row on
   training-set Bach vs half of that row's samples and tested on held-out Bach vs the other
   half: its balanced accuracy (0.5 = it cannot tell them from Bach; lower is better for the
   generator) and mean P(Bach) on the samples.
   - ``stats_judge_*``: a judge of another architecture than the critic RL was trained to fool,
     a small MLP on music statistics (:class:`gailkit.generators.music.stats_judge.StatsJudge`);
   - ``fresh_disc_*``: a fresh critic of the *same* architecture as the in-loop one (the policy
     was trained against that architecture, so this judge is not independent of training);
   - the music metrics of :mod:`gailkit.generators.music.metrics` (in-scale rate, parallel
     fifths / octaves per 100 voice-pair transitions, voice crossing, qualified-note rate,
     empty-bar rate, ...);
   - ``training_reward_theory``: the env's theory reward per piece, i.e. part of the reward
     the RL agent optimised (a training signal, not a judge).
Prints a table (and beside it the critic-only ablation's JSON, if given) and writes one JSON
per run: scripts/results/bench_composer[_critic_only]_seed<S>.json, refusing to overwrite one.
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

from gailkit.configs import CommandParser
from gailkit.data.chorales import load_chorales, split_chorales
from gailkit.envs.composer import ComposerState
from gailkit.generators.music.composer import ComposerConfig, ComposerTrainer, pretrain_lm, sample_pieces
from gailkit.generators.music.composer_disc import ChoraleDiscriminator, DiscConfig, bach_excerpts
from gailkit.generators.music.metrics import music_metrics
from gailkit.generators.music.stats_judge import StatsJudge
from gailkit.generators.music.theory import TheoryRules
from gailkit.nn.checkpoint import atomic_dir, load_weights, read_json, save_tensors, write_json

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = ["stats_judge_acc", "stats_judge_mean_p", "fresh_disc_acc", "fresh_mean_d", "in_scale_rate",
         "parallel_fifths", "parallel_octaves", "voice_crossing_rate", "qualified_note_rate", "empty_bar_rate",
         "pitch_class_overlap", "training_reward_theory"]
LOWER_IS_BETTER = {"stats_judge_acc", "fresh_disc_acc", "parallel_fifths", "parallel_octaves", "voice_crossing_rate",
                   "empty_bar_rate"}
LABELS = {  # what each key is, for the printed table: judges first, the training signal last
    "stats_judge_acc": "stats judge acc (other arch.)", "stats_judge_mean_p": "stats judge mean P(Bach)",
    "fresh_disc_acc": "critic acc (same arch.)", "fresh_mean_d": "critic mean D (same arch.)",
    "training_reward_theory": "theory (RL TRAINING reward)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = CommandParser(description=__doc__.split("\n")[0])
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
    p.add_argument("--judge-steps", type=int, default=500, help="Adam steps of each statistics judge")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--supervised-cache", type=Path, default=None,
                   help="reuse the supervised LM saved here by an earlier run with the same flags (or save it)")
    p.add_argument("--rl-cache", "--save-dir", type=Path, default=None, dest="rl_cache",
                   help="reuse the RL checkpoint saved here by an earlier run with the same options (or save it)")
    p.add_argument("--critic-only-json", type=Path, default=RESULTS / "bench_composer_critic_only.json",
                   help="an earlier run with --theory-scale 0, printed beside this one ('' for none)")
    p.add_argument("--sample-dir", type=Path, default=None,
                   help="where <out stem>_{supervised,rl}.{mid,png} go (default: beside --out)")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default scripts/results/bench_composer[_critic_only]_seed<S>.json); "
                        "an existing file is never overwritten")
    args = p.parse_args(argv)
    name = "bench_composer" + ("_critic_only" if args.theory_scale == 0 else "") + f"_seed{args.seed}"
    args.out = args.out or RESULTS / f"{name}.json"
    if args.out.exists():
        p.error(f"{args.out} exists and holds an earlier run (one JSON per run); pass --out NEW.json")
    args.sample_dir = args.sample_dir or args.out.parent
    return args


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


def write_samples(directory: Path, stem: str, name: str, voices: np.ndarray) -> list[str]:
    """The first four pieces, one after another, as ``<stem>_<name>.mid`` and a piano-roll PNG."""
    from gailkit.generators.music.output import concatenate, plot_pianoroll, write_midi

    directory.mkdir(parents=True, exist_ok=True)
    midi = write_midi(concatenate(list(voices[:4])), directory / f"{stem}_{name}.mid")
    png = plot_pianoroll(list(voices[:4]), directory / f"{stem}_{name}.png",
                         titles=[f"{name} sample {i}" for i in range(len(voices[:4]))])
    return [str(midi), str(png)]


def fresh_critic(train_real: np.ndarray, fake: np.ndarray, test_real: np.ndarray, *, steps: int, seed: int
                 ) -> dict[str, float]:
    """Train a new critic of the in-loop critic's architecture on ``train_real`` vs the first half
    of ``fake``; judge on the rest (not independent of training: RL learned to fool this kind)."""
    rng = np.random.default_rng(seed)
    half = len(fake) // 2
    disc = ChoraleDiscriminator(DiscConfig(seed=seed))
    for _ in range(steps):
        disc.train_step(train_real[rng.integers(len(train_real), size=64)], fake[:half][rng.integers(half, size=64)])
    return {"fresh_disc_acc": disc.accuracy(test_real, fake[half:]),
            "fresh_mean_d": float(disc.prob(fake[half:]).mean())}


def stats_judge(train_real: np.ndarray, fake: np.ndarray, test_real: np.ndarray, *, steps: int, seed: int
                ) -> dict[str, float]:
    """Train a :class:`StatsJudge` (another architecture) on features of ``train_real`` vs the first
    half of ``fake``; its balanced accuracy and mean P(Bach) on held-out ``test_real`` vs the rest.

    ``train_real`` / ``test_real`` are feature arrays (computed once for every row); ``fake`` is voices.
    """
    features = StatsJudge.features(fake)
    half = len(features) // 2
    judge = StatsJudge(steps=steps, seed=seed).fit(train_real, features[:half])
    return {"stats_judge_acc": judge.accuracy(test_real, features[half:]),
            "stats_judge_mean_p": float(judge.prob(features[half:]).mean())}


def training_reward_theory(voices: np.ndarray, n_bars: int) -> float:
    """Mean theory reward per piece of the env (default weights, estimated key): the part of the
    reward that RL optimised, so a training signal and not a judge."""
    state = ComposerState(len(voices), n_bars=n_bars, rules=TheoryRules())
    total = np.zeros(len(voices))
    for tokens in voices.transpose(0, 2, 1).reshape(len(voices), -1).T:
        total += state.step(tokens)[0]
    return float(total.mean())


def judge(name: str, voices: np.ndarray, *, bach_train: np.ndarray, bach_test: np.ndarray,
          features: tuple[np.ndarray, np.ndarray], args: argparse.Namespace) -> dict[str, float]:
    """Every judge and statistic of one row; ``features``: the stats judge's of ``bach_train``, ``bach_test``."""
    row = stats_judge(features[0], voices, features[1], steps=args.judge_steps, seed=args.seed + 1)
    row |= fresh_critic(bach_train, voices, bach_test, steps=args.eval_disc_steps, seed=args.seed + 1)
    row |= music_metrics(list(voices), reference=list(bach_train[:512]))
    row["training_reward_theory"] = training_reward_theory(voices, args.n_bars)
    print(f"  judged {name}: stats judge acc {row['stats_judge_acc']:.3f}, same-arch critic acc "
          f"{row['fresh_disc_acc']:.3f}, in-scale {row['in_scale_rate']:.3f}", flush=True)
    return row


# the options that decide the two models: a cached RL checkpoint is reused only when they match
MODEL_ARGS = ("n_bars", "size", "pretrain_steps", "pretrain_batch", "init", "iterations", "rollout_pieces", "lr",
              "kl_coef", "disc_weight", "disc_steps", "theory_scale", "gae_lambda", "seed")


def model_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(getattr(args, k)) if isinstance(getattr(args, k), Path) else getattr(args, k)) for k in MODEL_ARGS}


def cached_trainer(args: argparse.Namespace, train: list) -> ComposerTrainer | None:
    """The RL checkpoint in ``--rl-cache`` if one was saved there by a run with the same options."""
    if args.rl_cache is None or not (args.rl_cache / "config.json").is_file():
        return None
    saved = read_json(args.rl_cache / "bench_args.json", what="bench_composer RL cache")
    if saved != model_args(args):
        diff = next(k for k in MODEL_ARGS if saved.get(k) != model_args(args)[k])
        raise SystemExit(f"{args.rl_cache} holds RL from other options ({diff} {saved.get(diff)!r} there, "
                         f"{model_args(args)[diff]!r} here); pass those options or another --rl-cache")
    return ComposerTrainer.load(args.rl_cache, chorales=train)


def supervised_lm(args: argparse.Namespace, train: list) -> torch.nn.Module:
    if args.init is not None:
        return lm_from_music_transformer(args.init)
    if args.supervised_cache is not None and (args.supervised_cache / "config.json").is_file():
        print(f"  supervised LM read from {args.supervised_cache}", flush=True)
        return load_lm(args.supervised_cache)
    lm = pretrain_lm(train, n_bars=args.n_bars, size=args.size, steps=args.pretrain_steps, batch=args.pretrain_batch,
                     seed=args.seed, log=lambda r: r["step"] % 100 == 0 and print(
                         f"  pretrain {r['step']}: loss {r['loss']:.3f}", flush=True))
    if args.supervised_cache is not None:
        save_lm(lm, args.supervised_cache)
    return lm


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    wall: dict[str, float] = {}
    chorales = load_chorales()
    train, test = split_chorales(chorales, "train"), split_chorales(chorales, "test")
    steps = 16 * args.n_bars
    print(f"{len(train)} training / {len(test)} held-out chorales; pieces of {args.n_bars} bars", flush=True)

    base = ComposerConfig()
    theory = {k: getattr(base, k) * args.theory_scale
              for k in ("in_scale", "parallel", "crossing", "out_of_range", "rest")}
    config = ComposerConfig(n_bars=args.n_bars, rollout_pieces=args.rollout_pieces, lr=args.lr,
                            kl_coef=args.kl_coef, disc_weight=args.disc_weight, disc_steps=args.disc_steps,
                            gae_lambda=args.gae_lambda, seed=args.seed, **theory)
    trainer = cached_trainer(args, train)
    if trainer is not None:  # judging only: the reference inside the checkpoint is the supervised LM
        print(f"  supervised LM and RL ({trainer.iteration} iterations) read from {args.rl_cache}", flush=True)
        supervised, wall["supervised_s"], wall["rl_s"] = trainer.reference, 0.0, 0.0
    else:
        t = time.perf_counter()
        supervised = supervised_lm(args, train)
        wall["supervised_s"] = time.perf_counter() - t
        t = time.perf_counter()
        trainer = ComposerTrainer(supervised, chorales=train, config=config)
        keys = ("return", "theory_return", "mean_d", "kl_to_reference", "disc_acc")  # training-time numbers
        trainer.train(args.iterations, log=lambda r: print(
            "  rl " + ", ".join(f"{k} {r[k]:.3f}" for k in ("iteration", *keys) if k in r), flush=True))
        wall["rl_s"] = time.perf_counter() - t
        if args.rl_cache is not None:
            atomic_dir(args.rl_cache, lambda d: (trainer.save(d), write_json(d / "bench_args.json", model_args(args))))

    t = time.perf_counter()
    rng = np.random.default_rng(args.seed + 2)
    bach_train = bach_excerpts(train, steps, 4 * args.samples, rng=rng)
    bach_test = bach_excerpts(test, steps, args.samples, rng=rng)
    features = (StatsJudge.features(bach_train), StatsJudge.features(bach_test))  # once for every row
    files: list[str] = []
    rows = {"held-out Bach": judge("held-out Bach", bach_excerpts(test, steps, args.samples, rng=rng),
                                   bach_train=bach_train, bach_test=bach_test, features=features, args=args)}
    for name, lm in (("supervised", supervised), ("RL-tuned", trainer.lm)):
        voices = sample_pieces(lm, args.samples, n_bars=args.n_bars, seed=args.seed + 3)
        rows[name] = judge(name, voices, bach_train=bach_train, bach_test=bach_test, features=features, args=args)
        files += write_samples(args.sample_dir, args.out.stem, name.split("-")[0].lower(), voices)
    wall["judging_s"] = time.perf_counter() - t
    wall["total_s"] = time.perf_counter() - start
    sup, rl = rows["supervised"], rows["RL-tuned"]
    improved = {k: (rl[k] < sup[k]) if k in LOWER_IS_BETTER else (rl[k] > sup[k]) for k in SHOWN if k in rl}
    return {"rows": rows, "improved_by_rl": improved, "wall_s": wall, "files": files, "history": trainer.history,
            "notes": {"training_reward_theory": "part of the reward RL optimised: a training signal, not a judge",
                      "fresh_disc_*": "a fresh critic of the architecture RL was trained to fool",
                      "stats_judge_*": "a judge of another architecture (MLP on music statistics)",
                      "history": "training-time numbers: return and theory_return are training reward"},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "composer_config": dataclasses.asdict(config), "machine": platform.machine(),
            "threads": torch.get_num_threads()}


def print_table(result: dict[str, Any], ablation: dict[str, Any] | None = None) -> None:
    """The rows side by side; with ``ablation`` (a critic-only run's JSON) its RL-tuned row beside them."""
    rows = dict(result["rows"])
    if ablation is not None:
        row = dict(ablation["rows"]["RL-tuned"])
        if "theory_return" in row:  # the key's name before it was labelled a training reward
            row["training_reward_theory"] = row.pop("theory_return")
        rows["RL critic-only"] = row
    names = list(rows)
    print(f"\n{'score':<30}" + "".join(f"{n:>15}" for n in names) + "   RL better?")
    for k in SHOWN:
        if k not in rows["RL-tuned"]:
            continue
        flag = {True: "yes", False: "no"}.get(result["improved_by_rl"].get(k), "")
        cells = "".join(f"{rows[n][k]:>15.3f}" if k in rows[n] else f"{'-':>15}" for n in names)
        print(f"{LABELS.get(k, k):<30}" + cells + f"   {flag}")
    wall = result["wall_s"]
    print(f"\nwall: supervised {wall['supervised_s']:.0f} s, RL {wall['rl_s']:.0f} s, "
          f"judging {wall['judging_s']:.0f} s, total {wall['total_s']:.0f} s\n"
          "judges (trained per row on training Bach vs half the pieces, tested on held-out Bach vs the other half;\n"
          "  acc 0.5 = indistinguishable from Bach, lower is better): stats judge = MLP on music statistics, another\n"
          "  architecture than the critic RL was trained to fool; critic (same arch.) = a fresh one of that kind.\n"
          "theory (RL TRAINING reward): the env's theory terms per piece, part of the reward RL optimised, so for\n"
          "  RL-tuned a training signal and not a judge (for the other columns, a statistic).")
    if ablation is not None:
        print(f"RL critic-only: the RL-tuned row of {result['args']['critic_only_json']} (--theory-scale 0, "
              f"kl_coef {ablation['args']['kl_coef']}; an earlier run: '-' where it has no such judge). Its reward\n"
              f"  had no theory terms, so for that column the theory score is a judge, not its training reward.")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    critic_only = args.critic_only_json
    ablation = None
    if critic_only and str(critic_only) and critic_only.is_file() and critic_only.resolve() != args.out.resolve():
        ablation = json.loads(critic_only.read_text())
        result["critic_only_ablation"] = {"file": str(critic_only), "rl_tuned": ablation["rows"]["RL-tuned"],
                                          "args": ablation["args"]}
    print_table(result, ablation)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
