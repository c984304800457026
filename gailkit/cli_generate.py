"""``gailkit generate``: train, sample and evaluate any registered generator.

Model options are generated from the model's config dataclass once FAMILY and MODEL are
known, so ``gailkit generate train digits rbm --help`` lists the RBM's own flags beside the
flags every run takes. Building these parsers imports no torch, transformers or music21:
a model's module is imported only when its flags are needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gailkit.configs import CommandParser, add_config_args, config_from_args, int_in
from gailkit.errors import UsageError

__all__ = ["add_generate_parser"]

_FAMILIES = "digits, image, text or music"  # gailkit.generators.FAMILIES, without importing it (torch)
_TRAIN_USAGE = ("gailkit generate train {family} {model} --out DIR [--data SPEC] [--resume] [--eval] [--no-progress] "
                "[model flags]")
_TUNE_USAGE = ("gailkit generate tune DIR --out OUT [--iterations N] [--checkpoint-every N] [--resume] "
               "[--no-progress] [PPO flags]")


def _add_train_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup, data_help: str | None = None) -> None:
    """The flags of ``generate train`` other than FAMILY, MODEL and the model's own."""
    p.add_argument("--out", type=Path, metavar="DIR", help="run directory (required): checkpoints, samples, the model")
    p.add_argument("--data", metavar="SPEC", help="dataset spec; default: the family's offline dataset"
                   + (f". Forms: {data_help}" if data_help else ""))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--eval", action="store_true", help="evaluate on the held-out split when done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is drawn in a log anyway)")
    p.add_argument("-h", "--help", action="store_true", help="show the flags (with FAMILY MODEL: the model's too)")


def _train_parser(family: str, model: str, cls: type) -> argparse.ArgumentParser:
    """Every flag ``generate train FAMILY MODEL`` takes: the run's and the model's (for --help
    and for parsing the model's flags)."""
    import importlib

    from gailkit.generators import FAMILIES

    data_help = getattr(importlib.import_module(FAMILIES[family]), "DATA_HELP", None)
    parser = CommandParser(prog=f"gailkit generate train {family} {model}", add_help=False,
                           usage=_TRAIN_USAGE.format(family=family, model=model),
                           description=(cls.__doc__ or "").strip().split("\n")[0])
    _add_train_flags(parser.add_argument_group("run options"), data_help)
    add_config_args(parser.add_argument_group(f"{family}/{model} options"), cls.Config)
    return parser


def cmd_list(args: argparse.Namespace) -> None:
    from gailkit.generators import FAMILIES, available

    found = available()
    for family in FAMILIES:
        names = found.get(family)
        print(f"{family:<8} {', '.join(names) if names else '(not available on this install)'}")


def cmd_train(args: argparse.Namespace) -> None:
    if args.family is None or args.model is None:
        if args.help:  # no model yet: the run's flags, and where the models are listed
            args.train_parser.print_help()
            return
        raise UsageError("give FAMILY and MODEL: gailkit generate train FAMILY MODEL --out DIR "
                         "(gailkit generate list shows them)")
    from gailkit.generators import get_generator, load_family_data

    cls = get_generator(args.family, args.model)
    parser = _train_parser(args.family, args.model, cls)
    if args.help:
        parser.print_help()
        return
    config = config_from_args(cls.Config, parser.parse_args(args.model_options))  # bad options: refused here
    if args.out is None:
        raise UsageError("--out DIR is required: the run directory for checkpoints, samples and the model")
    spec = args.data or getattr(cls, "default_data", None)  # a model may need other data than its family's default
    data = load_family_data(args.family, spec, split="train")
    model = cls(config).fit(data, out=args.out, resume=args.resume, progress=not args.no_progress)
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(args.out).iterdir()
                     if not p.name.startswith("."))
    print(f"wrote {args.family}/{args.model} to {args.out}/ ({', '.join(written)})")
    if args.eval:
        _print_metrics(model.evaluate(load_family_data(args.family, spec, split="test")))


def _file_target(flag: str, path: Path, example: str) -> None:
    """Refuse an output path that is a folder before anything is computed."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name, e.g. {path / example}")


def cmd_sample(args: argparse.Namespace) -> None:
    _file_target("--out", args.out, "samples.png")
    from gailkit.generators import load_generator

    model = load_generator(args.dir)
    path = model.save_samples(args.out, n=args.n, seed=args.seed)
    if path is None:
        raise UsageError(f"{model.family}/{model.name} cannot write samples to a file")
    print(f"wrote {args.n} samples of {model.family}/{model.name} to {path}")


def cmd_eval(args: argparse.Namespace) -> None:
    if args.json:
        _file_target("--json", args.json, "metrics.json")
    from gailkit.generators import load_family_data, load_generator
    from gailkit.nn.checkpoint import write_json

    model = load_generator(args.dir)
    spec = args.data or getattr(model, "default_data", None)
    metrics = model.evaluate(load_family_data(model.family, spec, split="test"))
    _print_metrics(metrics)
    if args.json:
        write_json(args.json, metrics)


def cmd_tune(args: argparse.Namespace) -> None:
    from gailkit.generators.music.composer import ComposerConfig
    from gailkit.generators.music.tune import tune_transformer

    options = CommandParser(
        prog="gailkit generate tune", usage=_TUNE_USAGE, add_help=False,
        description="Fine-tune a music transformer by PPO in gailkit/ChoraleComposer-v0 (critic reward, GAIL-style, "
                    "plus music-theory terms).")
    options.add_argument("dir", nargs="?", metavar="DIR", help="a music/transformer directory "
                                                              "(gailkit generate train music transformer)")
    _add_tune_flags(options.add_argument_group("run options"))
    add_config_args(options.add_argument_group("PPO, KL, critic and reward options"), ComposerConfig)
    if args.help:
        options.print_help()
        return
    if args.dir is None or args.out is None:
        raise UsageError("give the transformer's directory and --out DIR: gailkit generate tune DIR --out OUT")
    config = config_from_args(ComposerConfig, options.parse_args(args.tune_options))
    _, trainer = tune_transformer(args.dir, args.out, iterations=args.iterations, config=config, resume=args.resume,
                                  checkpoint_every=args.checkpoint_every, progress=not args.no_progress)
    first, last = trainer.history[0], trainer.history[-1]
    print(f"tuned {args.dir} for {trainer.iteration} PPO iterations in gailkit/ChoraleComposer-v0: theory score per "
          f"piece (its training reward) {first['theory_return']:.3f} -> {last['theory_return']:.3f}; "
          "mean D of the in-loop critic "
          f"{first.get('mean_d', float('nan')):.3f} -> {last.get('mean_d', float('nan')):.3f} (it learns alongside, "
          f"so D can fall while the pieces improve: compare models with gailkit generate eval)")
    print(f"wrote {args.out}/ (config.json + weights.safetensors: the tuned music/transformer; rl/: the resumable "
          f"checkpoint; curve.png, tb/)")


def _add_tune_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags of ``generate tune`` other than DIR and the PPO options."""
    p.add_argument("--out", type=Path, help="run directory: the tuned generator and its checkpoint")
    p.add_argument("--iterations", type=int_in(1), default=80, help="PPO iterations (rollouts) in all (default: 80)")
    p.add_argument("--checkpoint-every", type=int_in(1), default=10,
                   help="iterations between checkpoints (default: 10)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is drawn in a log anyway)")
    p.add_argument("-h", "--help", action="store_true", help="show every flag, the PPO options too, and exit")


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

    # FAMILY and MODEL are optional to argparse so that `generate train --help` shows help
    # instead of "arguments are required"; cmd_train asks for them otherwise.
    p = gsub.add_parser("train", add_help=False, help="train FAMILY MODEL; model flags follow (see --help)",
                        usage=_TRAIN_USAGE.format(family="FAMILY", model="MODEL"),
                        description="Train a generator. The model's own flags: gailkit generate train FAMILY MODEL "
                                    "--help; the models: gailkit generate list.")
    p.add_argument("family", nargs="?", metavar="FAMILY", help=_FAMILIES)
    p.add_argument("model", nargs="?", metavar="MODEL", help="model name (gailkit generate list)")
    _add_train_flags(p)
    p.set_defaults(func=cmd_train, accepts_extra="model_options", train_parser=p)

    p = gsub.add_parser("sample", help="write samples of a trained generator (PNG grid, text, MIDI)")
    p.add_argument("dir", type=Path, help="generator directory (the --out of generate train)")
    p.add_argument("-n", type=int_in(1), default=64, help="number of samples, >= 1 (default: 64)")
    p.add_argument("--out", type=Path, required=True, help="output file (e.g. grid.png)")
    p.add_argument("--seed", type=int_in(0, 2**32), default=0, help="sampling seed, in [0, 2**32) (default: 0)")
    p.set_defaults(func=cmd_sample)

    p = gsub.add_parser("eval", help="metrics of a trained generator on held-out data")
    p.add_argument("dir", type=Path, help="generator directory")
    p.add_argument("--data", help="dataset spec; default: the family's offline dataset")
    p.add_argument("--json", type=Path, help="also write the metrics as JSON")
    p.set_defaults(func=cmd_eval)

    p = gsub.add_parser("tune", add_help=False, usage=_TUNE_USAGE,
                        help="fine-tune a music transformer by PPO in gailkit/ChoraleComposer-v0 "
                             "(critic reward, GAIL-style, plus music-theory terms)")
    p.add_argument("dir", type=Path, nargs="?", help="a music/transformer directory "
                                                     "(gailkit generate train music transformer)")
    _add_tune_flags(p)
    p.set_defaults(func=cmd_tune, accepts_extra="tune_options")
