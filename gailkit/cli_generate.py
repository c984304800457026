"""``gailkit generate``: train, sample and evaluate any registered generator.

Model options are generated from the model's config dataclass once FAMILY and MODEL are
known, so ``gailkit generate train digits rbm --help`` lists the RBM's own flags.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gailkit.configs import add_config_args, config_from_args

__all__ = ["add_generate_parser"]


def cmd_list(args: argparse.Namespace) -> None:
    from gailkit.generators import FAMILIES, available

    found = available()
    for family in FAMILIES:
        names = found.get(family)
        print(f"{family:<8} {', '.join(names) if names else '(not available on this install)'}")


def cmd_train(args: argparse.Namespace) -> None:
    from gailkit.generators import get_generator, load_family_data

    cls = get_generator(args.family, args.model)
    model_parser = argparse.ArgumentParser(prog=f"gailkit generate train {args.family} {args.model}",
                                           description=(cls.__doc__ or "").strip().split("\n")[0])
    add_config_args(model_parser, cls.Config)
    if args.help:
        model_parser.print_help()
        return
    if args.out is None:
        raise ValueError("--out DIR is required: the run directory for checkpoints, samples and the model")
    config = config_from_args(cls.Config, model_parser.parse_args(args.model_options))
    spec = args.data or getattr(cls, "default_data", None)  # a model may need other data than its family's default
    data = load_family_data(args.family, spec, split="train")
    model = cls(config).fit(data, out=args.out, resume=args.resume, progress=not args.no_progress)
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(args.out).iterdir() if not p.name.startswith("."))
    print(f"wrote {args.family}/{args.model} to {args.out}/ ({', '.join(written)})")
    if args.eval:
        _print_metrics(model.evaluate(load_family_data(args.family, spec, split="test")))


def cmd_sample(args: argparse.Namespace) -> None:
    from gailkit.generators import load_generator

    model = load_generator(args.dir)
    path = model.save_samples(args.out, n=args.n, seed=args.seed)
    if path is None:
        raise ValueError(f"{model.family}/{model.name} cannot write samples to a file")
    print(f"wrote {args.n} samples of {model.family}/{model.name} to {path}")


def cmd_eval(args: argparse.Namespace) -> None:
    from gailkit.generators import load_family_data, load_generator

    model = load_generator(args.dir)
    spec = args.data or getattr(model, "default_data", None)
    metrics = model.evaluate(load_family_data(model.family, spec, split="test"))
    _print_metrics(metrics)
    if args.json:
        args.json.write_text(json.dumps(metrics, indent=2) + "\n")


def cmd_tune(args: argparse.Namespace) -> None:
    from gailkit.generators.music.composer import ComposerConfig
    from gailkit.generators.music.tune import tune_transformer

    options = argparse.ArgumentParser(prog=f"gailkit generate tune DIR --out OUT",
                                      description="PPO, KL, critic and reward options of the fine-tuning")
    add_config_args(options, ComposerConfig)
    if args.help:
        options.print_help()
        return
    if args.dir is None or args.out is None:
        raise ValueError("give the transformer's directory and --out DIR: gailkit generate tune DIR --out OUT")
    config = config_from_args(ComposerConfig, options.parse_args(args.tune_options))
    _, trainer = tune_transformer(args.dir, args.out, iterations=args.iterations, config=config, resume=args.resume,
                                  checkpoint_every=args.checkpoint_every, progress=not args.no_progress)
    first, last = trainer.history[0], trainer.history[-1]
    print(f"tuned {args.dir} for {trainer.iteration} PPO iterations in gailkit/ChoraleComposer-v0: theory return per "
          f"piece {first['theory_return']:.3f} -> {last['theory_return']:.3f}; mean D of the in-loop critic "
          f"{first.get('mean_d', float('nan')):.3f} -> {last.get('mean_d', float('nan')):.3f} (it learns alongside, "
          f"so D can fall while the pieces improve: compare models with gailkit generate eval)")
    print(f"wrote {args.out}/ (config.json + weights.safetensors: the tuned music/transformer; rl/: the resumable "
          f"checkpoint; curve.png, tb/)")


def _print_metrics(metrics: dict[str, float]) -> None:
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        print(f"  {key:<{width}}  {value:.4g}")


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``generate {list,train,sample,eval,tune}`` to the top-level subparsers."""
    gen = sub.add_parser("generate", help="train, sample and evaluate generators (digits, image, text, music)")
    gsub = gen.add_subparsers(dest="generate_command", required=True, metavar="ACTION")

    p = gsub.add_parser("list", help="list the generator families and models")
    p.set_defaults(func=cmd_list)

    p = gsub.add_parser("train", add_help=False, help="train FAMILY MODEL; model flags follow (see --help)",
                        usage="gailkit generate train FAMILY MODEL [--data SPEC] --out DIR [--resume] [model flags]")
    p.add_argument("family", help="digits, image, text or music")
    p.add_argument("model", help="model name (gailkit generate list)")
    p.add_argument("--data", help="dataset spec; default: the family's offline dataset")
    p.add_argument("--out", type=Path, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--eval", action="store_true", help="evaluate on the held-out split when done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-h", "--help", action="store_true", help="show the model's flags and exit")
    p.set_defaults(func=cmd_train, accepts_extra="model_options")

    p = gsub.add_parser("sample", help="write samples of a trained generator (PNG grid, text, MIDI)")
    p.add_argument("dir", type=Path, help="generator directory (the --out of generate train)")
    p.add_argument("-n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument("--out", type=Path, required=True, help="output file (e.g. grid.png)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.set_defaults(func=cmd_sample)

    p = gsub.add_parser("eval", help="metrics of a trained generator on held-out data")
    p.add_argument("dir", type=Path, help="generator directory")
    p.add_argument("--data", help="dataset spec; default: the family's offline dataset")
    p.add_argument("--json", type=Path, help="also write the metrics as JSON")
    p.set_defaults(func=cmd_eval)

    p = gsub.add_parser("tune", add_help=False, usage="gailkit generate tune DIR --out OUT [--iterations N] [--resume] "
                                                      "[PPO options (see --help)]",
                        help="fine-tune a music transformer by PPO in gailkit/ChoraleComposer-v0 "
                             "(critic reward, GAIL-style, plus music-theory terms)")
    p.add_argument("dir", type=Path, nargs="?", help="a music/transformer directory "
                                                     "(gailkit generate train music transformer)")
    p.add_argument("--out", type=Path, help="run directory: the tuned generator and its checkpoint")
    p.add_argument("--iterations", type=int, default=80, help="PPO iterations (rollouts) in all (default: 80)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="iterations between checkpoints (default: 10)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-h", "--help", action="store_true", help="show the PPO options and exit")
    p.set_defaults(func=cmd_tune, accepts_extra="tune_options")
