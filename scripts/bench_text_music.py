"""Issue 6's benchmark: text and music generators, and the RL bridge, in one run and one report.

Run:  python scripts/bench_text_music.py            (about 40 min on 2 CPU cores)
Smoke run (a few minutes): python scripts/bench_text_music.py --quick
Stages alone: ``--stages rl,judge --work-dir DIR`` tunes and judges again the models that an
earlier run with ``--work-dir DIR`` trained (keep DIR outside the repository, e.g.
~/.cache/gailkit/bench/text_music); ``--stages judge`` judges its tuned model again.

Reads top to bottom:
1. Text (``bench_text.run``): a GPT-2 with a locally trained BPE against a Kneser-Ney
   character n-gram (order chosen on validation) on the held-out documents of the embedded
   corpus: perplexity and bits/char; one prompt continued by every decoding method.
2. Music (``bench_music.run``): the chorale transformer and the MuseGAN-style GAN, each trained
   for a wall-clock budget; their run directories are kept.
3. RL (``gailkit.generators.music.tune.tune_transformer``): that same transformer tuned by PPO
   in ``gailkit/ChoraleComposer-v0``, its reward the log D of a critic trained on Bach against
   the policy's pieces (GAIL) plus music-theory terms, with a KL penalty to the supervised model.
4. Judging, with the same seeds: the music metrics of every model beside held-out Bach, each
   with its distance to Bach, and the judges of ``bench_composer``, each trained per row on
   training-set Bach vs half of the row's pieces and tested on held-out Bach vs the other half
   (balanced accuracy; 0.5 = it cannot tell them from Bach): a judge of *another* architecture
   than the critic RL was trained to fool (an MLP on music statistics), and a fresh critic of
   the *same* architecture (not independent of the training). The env's theory reward per
   piece is reported too, labelled as what it is for the RL row: its training reward.

Targets (issue 6): the transformer's bits/char >= 20% below the n-gram's; generated chorales
within 0.10 of Bach on in-scale, qualified-note and empty-bar rates; RL better than the
supervised transformer on the judges. Prints the tables and writes one folder per run,
scripts/results/bench_text_music[_<stages>]_seed<S>/ (bench_text_music.json, the parts' JSON
and samples), refusing to write into one that holds a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_composer  # noqa: E402  (scripts/ is not a package)
import bench_music  # noqa: E402
import bench_text  # noqa: E402

from gailkit.configs import CommandParser
from gailkit.data.chorales import load_chorales, split_chorales  # noqa: E402
from gailkit.generators import load_generator  # noqa: E402
from gailkit.generators.music.composer import ComposerConfig  # noqa: E402
from gailkit.generators.music.composer_disc import bach_excerpts  # noqa: E402
from gailkit.generators.music.stats_judge import StatsJudge  # noqa: E402
from gailkit.generators.music.tune import tune_transformer  # noqa: E402
from gailkit.nn.checkpoint import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("text", "music", "rl", "judge")
JUDGED = ("stats_judge_acc", "stats_judge_mean_p", "fresh_disc_acc", "fresh_mean_d", "training_reward_theory")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = CommandParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small data, tiny models, short budgets")
    p.add_argument("--text", default="", help="extra flags for the text part, e.g. '--size small --epochs 20'")
    p.add_argument("--music", default="", help="extra flags for the music part, e.g. '--minutes 12'")
    p.add_argument("--iterations", type=int, default=200, help="PPO iterations of the RL tuning")
    p.add_argument("--rollout-pieces", type=int, default=64, help="pieces per PPO iteration")
    p.add_argument("--kl-coef", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-4, help="policy learning rate of the RL tuning")
    p.add_argument("--judge-samples", type=int, default=512, help="pieces per model for the fresh critics")
    p.add_argument("--eval-disc-steps", type=int, default=300, help="updates of each fresh critic")
    p.add_argument("--judge-steps", type=int, default=500, help="Adam steps of each statistics judge")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"which of {','.join(STAGES)} to run; skipped music / rl stages are read from --work-dir")
    p.add_argument("--work-dir", type=Path, default=None, help="run directories (default: a temp folder; "
                   "give one outside the repository to run stages again later)")
    p.add_argument("--out-dir", type=Path, default=None, help="results (default: a folder per run in "
                   "scripts/results; /tmp/bench_text_music_quick with --quick)")
    args = p.parse_args(argv)
    args.stages = [x for x in args.stages.split(",") if x]
    if not args.stages or set(args.stages) - set(STAGES):
        p.error(f"--stages takes a comma-separated subset of {','.join(STAGES)}, got {','.join(args.stages)!r}")
    partial = "" if set(args.stages) == set(STAGES) else "_" + "-".join(s for s in STAGES if s in args.stages)
    if args.quick:
        args.iterations, args.rollout_pieces, args.judge_samples, args.eval_disc_steps = 3, 16, 64, 30
        args.judge_steps = 100
        args.out_dir = args.out_dir or Path(f"/tmp/bench_text_music_quick{partial}")
    args.out_dir = args.out_dir or RESULTS / f"bench_text_music{partial}_seed{args.seed}"
    if not args.quick and (args.out_dir / "bench_text_music.json").exists():  # smoke runs in /tmp may be redone
        p.error(f"{args.out_dir} holds an earlier run (one result folder per run); pass another --out-dir")
    if args.work_dir is None and set(args.stages) != set(STAGES):
        p.error("running some stages alone needs the --work-dir of the run that made the models")
    args.work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_text_music_"))
    return args


def text_part(args: argparse.Namespace) -> dict[str, Any]:
    flags = ["--seed", str(args.seed), "--samples", str(args.out_dir / "text_samples.md"),
             "--json", str(args.out_dir / "bench_text.json"), *args.text.split()]
    text_args = bench_text.parse_args(flags + (["--quick"] if args.quick else []))
    t0 = time.perf_counter()
    result = bench_text.run(text_args)
    result["wall_s"] = time.perf_counter() - t0
    bench_text.write_samples_md(text_args.samples, result)
    write_json(text_args.json, result)
    return result


def music_part(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score the music models in ``work_dir/music``; their result is kept there for later stages."""
    flags = ["--seed", str(args.seed), "--out-dir", str(args.out_dir), "--work-dir", str(args.work_dir / "music"),
             *args.music.split()]
    music_args = bench_music.parse_args(flags + (["--quick"] if args.quick else []))
    result = bench_music.run(music_args)
    write_json(args.out_dir / "bench_music.json", result)
    write_json(args.work_dir / "music_result.json", result)
    return result


def saved_part(args: argparse.Namespace, name: str, stage: str) -> dict[str, Any]:
    """The result of ``stage`` that an earlier run left in ``--work-dir`` (a skipped stage's input)."""
    path = args.work_dir / f"{name}_result.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run the {stage} stage with this --work-dir first "
                         f"(--stages {stage},... --work-dir {args.work_dir})")
    print(f"{stage}: read from {path}", flush=True)
    return json.loads(path.read_text())


def rl_part(args: argparse.Namespace, music: dict[str, Any], train: list, test: list) -> tuple[dict[str, Any], Path]:
    """Tune the benchmark's own music transformer; score the tuned model like the others."""
    init, out = args.work_dir / "music" / "transformer", args.work_dir / "rl"
    if (out / "rl" / "config.json").exists():
        raise SystemExit(f"{out} holds a model tuned by an earlier run: judge it with --stages judge, or remove "
                         f"{out} to tune again")
    config = ComposerConfig(n_bars=music["steps"] // 16, rollout_pieces=args.rollout_pieces, lr=args.lr,
                            kl_coef=args.kl_coef, seed=args.seed)
    t0 = time.perf_counter()
    tuned, trainer = tune_transformer(init, out, iterations=args.iterations, config=config, progress=False,
                                      chorales=train)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = tuned.evaluate(test, n=music["samples"], seed=args.seed)
    tuned.save_samples(args.out_dir / "music_rl_tuned.mid", n=4, seed=args.seed, title="RL-tuned")
    row = {"epochs": trainer.iteration, "train_s": train_s, "eval_s": time.perf_counter() - t0,
           "sampling": {}, "metrics": metrics,
           "targets_met": {m: metrics[f"dist_{m}"] <= tol for m, tol in bench_music.TARGETS.items()},
           "history": trainer.history, "config": dataclasses.asdict(config),
           "history_note": "return and theory_return are the training reward (what PPO maximised)"}
    write_json(args.work_dir / "rl_result.json", row)
    return row, out


def judge_part(args: argparse.Namespace, music: dict[str, Any], rl_dir: Path, train: list, test: list
               ) -> dict[str, dict[str, float]]:
    """Both judges and the env's theory reward for each model and held-out Bach (see the module doc)."""
    steps, n = music["steps"], args.judge_samples
    rng = np.random.default_rng(args.seed + 2)
    bach_train, bach_test = bach_excerpts(train, steps, 4 * n, rng=rng), bach_excerpts(test, steps, n, rng=rng)
    train_features, test_features = StatsJudge.features(bach_train), StatsJudge.features(bach_test)
    models = {"transformer": load_generator(args.work_dir / "music" / "transformer"),
              "musegan": load_generator(args.work_dir / "music" / "musegan"),
              "rl_tuned": load_generator(rl_dir)}
    pieces = {"held-out Bach": bach_excerpts(test, steps, n, rng=rng)}
    pieces |= {name: np.stack(model.sample(n, seed=args.seed + 3)) for name, model in models.items()}
    rows = {}
    for name, voices in pieces.items():
        rows[name] = bench_composer.stats_judge(train_features, voices, test_features, steps=args.judge_steps,
                                                seed=args.seed + 1)
        rows[name] |= bench_composer.fresh_critic(bach_train, voices, bach_test, steps=args.eval_disc_steps,
                                                  seed=args.seed + 1)
        rows[name]["training_reward_theory"] = bench_composer.training_reward_theory(voices, steps // 16)
        print(f"  judged {name}: stats judge acc {rows[name]['stats_judge_acc']:.3f}, same-arch critic acc "
              f"{rows[name]['fresh_disc_acc']:.3f}", flush=True)
    return rows


def print_tables(result: dict[str, Any]) -> None:
    if "text" in result:
        print("\n## Text: held-out bits/char\n")
        bench_text.print_table(result["text"])
    print("\n## Music: metrics beside held-out Bach (dist: distance to Bach)\n")
    bench_music.print_table(result["music"])
    if "judged" in result:
        print("\n## The RL bridge: judges, and the training reward\n")
        rows = result["judged"]
        names = list(rows)
        print(f"{'score':<30}" + "".join(f"{n:>16}" for n in names) + "   RL better than transformer?")
        for key in JUDGED:
            better = (rows["rl_tuned"][key] < rows["transformer"][key]) if key in bench_composer.LOWER_IS_BETTER \
                else (rows["rl_tuned"][key] > rows["transformer"][key])
            label = bench_composer.LABELS.get(key, key).replace(" (other arch.)", "").replace(" (same arch.)", "")
            print(f"{label:<30}" + "".join(f"{rows[n][key]:>16.3f}" for n in names) + f"   {'yes' if better else 'no'}")
        print("stats judge: an MLP on music statistics, another architecture than the critic RL was trained to fool;\n"
              "critic: a fresh one of the same architecture as that critic; both trained per row on training Bach vs\n"
              "half the row's pieces, tested on held-out Bach vs the other half (acc 0.5: indistinguishable).\n"
              "theory (RL TRAINING reward): the env's theory terms per piece, part of the reward RL optimised, so for\n"
              "rl_tuned a training signal and not a judge (for the other columns, a statistic).")
    print("\n## Wall times (s)\n")
    for part, seconds in result["wall_s"].items():
        print(f"{part:<22}{seconds:>10.1f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    wall: dict[str, float] = {}
    start = time.perf_counter()
    result: dict[str, Any] = {"stages": args.stages}
    if "text" in args.stages:
        result["text"] = text_part(args)
        wall["text"] = result["text"]["wall_s"]
    t0 = time.perf_counter()
    if "music" in args.stages:
        result["music"] = music_part(args)
        wall["music (2 models)"] = time.perf_counter() - t0
    else:
        result["music"] = saved_part(args, "music", "music")
    chorales = load_chorales(limit=result["music"]["data"]["limit"])  # the music part's chorales, from their cache
    train, test = split_chorales(chorales, "train"), split_chorales(chorales, "test")
    t0 = time.perf_counter()
    rl_dir = args.work_dir / "rl"
    if "rl" in args.stages:
        result["music"]["models"]["rl_tuned"], rl_dir = rl_part(args, result["music"], train, test)
        wall["RL tuning + eval"] = time.perf_counter() - t0
    elif "judge" in args.stages or "rl_tuned" not in result["music"]["models"]:
        result["music"]["models"]["rl_tuned"] = saved_part(args, "rl", "rl")
    if "judge" in args.stages:
        t0 = time.perf_counter()
        result["judged"] = judge_part(args, result["music"], rl_dir, train, test)
        wall["judges"] = time.perf_counter() - t0
    wall["total"] = time.perf_counter() - start
    result["wall_s"] = wall
    result["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print_tables(result)
    path = write_json(args.out_dir / "bench_text_music.json", result)
    print(f"\nwrote {path} and, beside it, the parts' JSON and samples of the stages that ran")
    return result


if __name__ == "__main__":
    main()
