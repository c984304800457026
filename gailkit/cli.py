"""The ``gailkit`` command line: parses flags into configs and calls library functions."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gailkit.agents.tuned import TUNED
from gailkit.configs import (
    CommandParser,
    add_config_args,
    check_bounds,
    config_from_args,
    float_above_zero,
    given_fields,
    int_in,
)
from gailkit.errors import GailkitError, RunInterrupted, UsageError
from gailkit.evaluation import EVAL_SEED


@dataclasses.dataclass
class ExpertEvalConfig:
    """What ``gailkit expert eval`` takes."""

    expert: Path = dataclasses.field(metadata={"help": "expert directory"})
    episodes: int = dataclasses.field(default=20, metadata={"help": "evaluation episodes"})
    seed: int = dataclasses.field(default=EVAL_SEED, metadata={"help": "episode i is reset with seed + i (default: the "
                                                                       "library's evaluation seeds)"})
    env: str | None = dataclasses.field(default=None, metadata={"help": "evaluate in another env (same spaces)"})

    bounds: ClassVar[dict[str, str]] = {"episodes": "[1, inf)", "seed": "[0, 2**32)"}

    def __post_init__(self) -> None:
        check_bounds(self, self.bounds)


@dataclasses.dataclass
class DemosInfoConfig:
    """What ``gailkit demos info`` takes."""

    file: Path = dataclasses.field(metadata={"help": "demonstration .npz file"})
    env: str | None = dataclasses.field(default=None, metadata={"help": "also check the file fits this env"})


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def cmd_envs(args: argparse.Namespace) -> None:
    from gailkit.envs import REGISTRY, registered_ids

    for env_id in registered_ids():
        print(f"{env_id:<34} {REGISTRY.get(env_id, ('', 0, {}, ''))[3]}")


def cmd_expert_presets(args: argparse.Namespace) -> None:
    from gailkit.agents.experts import PRESETS

    print(f"{'env':<16} {'algo':<5} {'steps':>9} {'envs':>4}  hyperparameters")
    for env_id, p in PRESETS.items():
        hp = ", ".join(f"{k}={v}" for k, v in p.hyperparams.items())
        arch = f", net_arch={p.net_arch}" if p.net_arch else ""
        extra = "".join(f", {k}={v}" for k, v in p.policy.items()) + (", normalize" if p.normalize else "")
        print(f"{env_id:<16} {p.algo:<5} {p.steps:>9,} {p.n_envs:>4}  {hp}{arch}{extra}")


def cmd_expert_train(args: argparse.Namespace) -> None:
    from gailkit.agents.experts import ExpertConfig, train_expert

    expert, out = train_expert(config_from_args(ExpertConfig, args))
    c = expert.card
    _print_table([
        ("env", c["env_id"]), ("algorithm", f"{c['algo']} ({c['steps']:,} steps, seed {c['seed']})"),
        ("return", f"{c['return_mean']:.1f} +/- {c['return_std']:.1f} over {c['eval_episodes']} episodes"),
        ("random policy", f"{c['random_return_mean']:.1f} +/- {c['random_return_std']:.1f}"),
        ("wall time", f"{c['wall_time_s']:.1f} s"),
    ])
    print(f"wrote expert to {out}/ (config.json, policy.safetensors, card.json, tb/)")


def cmd_expert_eval(args: argparse.Namespace) -> None:
    from gailkit.agents.experts import evaluate_policy, load_expert, random_returns

    cfg = config_from_args(ExpertEvalConfig, args)
    expert = load_expert(cfg.expert)
    env_id = cfg.env or expert.env_id
    returns = evaluate_policy(lambda o: expert.predict(o), env_id, cfg.episodes, seed=cfg.seed)
    rand = random_returns(env_id, cfg.episodes, seed=cfg.seed)
    _print_table([
        ("env", env_id),
        ("expert return", f"{returns.mean():.1f} +/- {returns.std():.1f} (min {returns.min():.1f}, "
                          f"max {returns.max():.1f}) over {cfg.episodes} episodes"),
        ("random return", f"{rand.mean():.1f} +/- {rand.std():.1f}"),
    ])


def cmd_demos_collect(args: argparse.Namespace) -> None:
    from gailkit.agents.experts import CollectConfig, collect_demos

    path, demos = collect_demos(config_from_args(CollectConfig, args))
    _print_summary(demos.summary())
    print(f"wrote {len(demos)} episodes to {path}")


def _print_summary(s: dict) -> None:
    ret = ("n/a (no rewards)" if s["return_mean"] is None else
           f"{s['return_mean']:.2f} +/- {s['return_std']:.2f} (min {s['return_min']:.2f}, max {s['return_max']:.2f})")
    _print_table([
        ("env", s["env_id"]), ("episodes", f"{s['episodes']} ({s['terminated_episodes']} terminated)"),
        ("steps", f"{s['steps']:,}"), ("return", ret),
        ("observation space", s["observation_space"]), ("action space", s["action_space"]),
    ])


@dataclasses.dataclass
class ZooDemosConfig:
    """What ``gailkit zoo demos`` takes."""

    env: str = dataclasses.field(metadata={"help": "env id of a zoo expert (`gailkit zoo list`)"})
    episodes: int = dataclasses.field(default=10, metadata={"help": "episodes to record"})
    out: Path = dataclasses.field(default=Path("demos.npz"), metadata={"help": "output .npz file"})
    seed: int = dataclasses.field(default=1000, metadata={"help": "episode i is reset with seed + i (the shipped "
                                                                  "demos.npz used seeds 0-24)"})
    stochastic: bool = dataclasses.field(default=False, metadata={"help": "sample actions instead of the mode"})

    bounds: ClassVar[dict[str, str]] = {"episodes": "[1, inf)", "seed": "[0, 2**32)"}

    def __post_init__(self) -> None:
        check_bounds(self, self.bounds)


def cmd_zoo_list(args: argparse.Namespace) -> None:
    from gailkit.zoo import REFERENCE_SOURCE, zoo_cards

    cards = zoo_cards()
    if args.json:
        print(json.dumps(cards, indent=2))
        return
    print(f"{'env':<16} {'algo':<4} {'steps':>9}  {'return (50 episodes)':>20}  {'random':>8}  "
          f"{'reference':>16}  {'train':>6}")
    for c in cards:
        ref = c.get("reference", {})
        print(f"{c['env_id']:<16} {c['algo']:<4} {c['steps']:>9,}  {c['return_mean']:>10.1f} "
              f"+/- {c['return_std']:<6.1f}  "
              f"{c['random_return_mean']:>8.1f}  {ref.get('return_mean', float('nan')):>8.1f} ({ref.get('algo', '?')}) "
              f" {c['wall_time_s'] / 60:>4.0f} min")
    print(f"reference: {REFERENCE_SOURCE}; demonstrations: --demos zoo:ENV, or `gailkit zoo demos ENV`")


def cmd_zoo_demos(args: argparse.Namespace) -> None:
    from gailkit.agents.experts import CollectConfig, collect_demos
    from gailkit.zoo import zoo_expert_dir

    cfg = config_from_args(ZooDemosConfig, args)
    path, demos = collect_demos(CollectConfig(expert=zoo_expert_dir(cfg.env), episodes=cfg.episodes, out=cfg.out,
                                              seed=cfg.seed, stochastic=cfg.stochastic))
    _print_summary(demos.summary())
    print(f"wrote {len(demos)} episodes to {path}")


def cmd_demos_info(args: argparse.Namespace) -> None:
    from gailkit.data.demos import load_demos

    cfg = config_from_args(DemosInfoConfig, args)
    demos = load_demos(cfg.file, env=cfg.env)
    _print_summary(demos.summary())
    if cfg.env:
        print(f"compatible with {cfg.env}")
    if args.json:
        print(json.dumps(demos.summary(), indent=2))


_IMITATE_USAGE = "gailkit imitate ALGO --env ENV --demos FILE --out DIR [options] (gailkit imitate ALGO --help)"


def _algorithm_parser(name: str, cls: type) -> argparse.ArgumentParser:
    """Every flag ``gailkit imitate NAME`` takes, generated from the algorithm's config and its parts'."""
    parser = CommandParser(prog=f"gailkit imitate {name}", add_help=False,
                           description=(cls.__doc__ or "").strip().split("\n")[0])
    add_config_args(parser.add_argument_group(f"{name} options"), cls.Config)
    for part, part_cls in cls.parts.items():
        add_config_args(parser, part_cls, prefix=part, skip=cls.fixed.get(part, ()))
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--preset", choices=["tuned"], help=(
        "tuned: the imitation benchmark's settings for --env (steps, learner and part options; "
        "gailkit/agents/tuned.py) for every option not given; prints the run's whole command. Envs: "
        f"{', '.join(TUNED)}"))
    return parser


def _refuse_foreign_flags(name: str, leftover: list[str], found: dict[str, type]) -> None:
    """UsageError for the first flag ``name`` does not take, naming the algorithms that do."""
    flags = [a.split("=", 1)[0] for a in leftover if a.startswith("--")]
    for flag in flags:
        owners = [other for other, cls in found.items() if other != name and flag in
                  _algorithm_parser(other, cls)._option_string_actions]
        if owners:
            raise UsageError(f"{flag} is an option of {', '.join(owners)}, not of {name}; drop it "
                             f"(gailkit imitate {name} --help lists {name}'s options)")
    raise UsageError(f"gailkit imitate {name}: unrecognized arguments: {' '.join(leftover)} "
                     f"(gailkit imitate {name} --help lists the options)")


def _named_algorithm(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The algorithm ``gailkit imitate`` names (its positional or ``--algo``) and the flags left for it."""
    rest = list(args.algo_options)
    positional = rest.pop(0) if rest and not rest[0].startswith("-") else None
    if positional and args.algo and positional != args.algo:
        raise UsageError(f"imitate {positional} --algo {args.algo}: two algorithms; give one")
    return positional or args.algo, rest


def cmd_imitate(args: argparse.Namespace) -> None:
    from gailkit.agents.imitate import imitate
    from gailkit.agents.registry import algorithms

    name, rest = _named_algorithm(args)
    found = algorithms()
    if name is None:
        if args.help:
            args.imitate_parser.print_help()
            print("\nalgorithms (gailkit imitate ALGO --help shows each one's options):")
            for other, cls in found.items():
                summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "")
                print(f"  {other:<14} {summary}")
            return
        raise UsageError(f"give an algorithm: gailkit imitate ALGO ... with ALGO one of {', '.join(found)}")
    if name not in found:
        raise UsageError(f"unknown imitation algorithm {name!r}; choose one of {', '.join(found)}")
    cls = found[name]
    parser = _algorithm_parser(name, cls)
    if args.help:
        parser.print_help()
        return
    options, leftover = parser.parse_known_args(rest)
    if leftover:
        _refuse_foreign_flags(name, leftover, found)
    config, parts, given, preset = _imitate_configs(cls, options, args.argv)
    np.random.seed(config.seed)  # global seeding happens at the entry point only
    result = imitate(config, resume=options.resume, given=given | preset, preset=preset, **parts)
    _print_result(result)
    names = sorted(p.name for p in Path(config.out).iterdir() if not p.name.startswith("."))
    print(f"wrote run to {config.out}/: {', '.join(names)}")


def _imitate_configs(cls: type, options: argparse.Namespace,
                     argv: Sequence[str]) -> tuple[Any, dict[str, Any], set[str], set[str]]:
    """The run's config, its parts' configs, the options the user set (config fields, and part
    fields as ``PART_FIELD``) and those the preset set, from ``gailkit imitate``'s parsed flags:
    ``--preset tuned`` fills every option not in ``argv`` with the env's tuned setting."""
    config = config_from_args(cls.Config, options)
    parts = {part: config_from_args(part_cls, options, prefix=part, seed=config.seed)
             for part, part_cls in cls.parts.items()}
    given = given_fields(cls.Config, argv) | {
        f"{part}_{field}" for part, part_cls in cls.parts.items()
        for field in given_fields(part_cls, argv, prefix=part)}
    if options.preset == "tuned":
        from gailkit.agents.base import saved_run
        from gailkit.agents.imitate import imitate_command
        from gailkit.agents.tuned import tuned

        env = config.env or saved_run(config.reward_from)["config"]["env"]  # ppo-on-reward: its reward run's
        settings = tuned(cls.name, env)
        fields = {k: v for k, v in settings.fields.items() if k not in given}
        config = dataclasses.replace(config, **fields)
        preset = set(fields)
        for part, part_fields in settings.parts.items():
            mine = {k: v for k, v in part_fields.items() if f"{part}_{k}" not in given}
            parts[part] = dataclasses.replace(parts[part], **mine)
            preset |= {f"{part}_{k}" for k in mine}
        print(f"--preset tuned on {env}: {imitate_command(config, **parts)}")
        return config, parts, given, preset
    return config, parts, given, set()


def _print_result(r: dict) -> None:
    rows = [("return", f"{r['return_mean']:.1f} +/- {r['return_std']:.1f}")]
    if r.get("normalised") is not None:
        rows.append(("normalised", f"{r['normalised']:.3f}  ((R - random) / (expert - random))"))
    if r.get("expert_return") is not None:
        rows.append(("expert / random", f"{r['expert_return']:.1f} / {r['random_return']:.1f}"))
    if "wall_time_s" in r:
        rows.append(("wall time", f"{r['wall_time_s']:.1f} s"))
    _print_table(rows)


def cmd_eval(args: argparse.Namespace) -> None:
    from gailkit.agents.imitate import evaluate_run

    result = evaluate_run(args.run, args.episodes)
    print(f"{result['algo']} run {args.run}, {result['episodes']} episodes:")
    _print_result(result)


def cmd_report(args: argparse.Namespace) -> None:
    from gailkit.agents.imitate import plot_runs, summarise_runs

    runs = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        runs[name if sep else Path(item).name] = Path(path if sep else item)
    rows = summarise_runs(runs)
    print("| method | return | normalised | env steps |\n|---|---:|---:|---:|")
    for r in rows:
        ret = f"{r['return_mean']:.1f}" + ("" if r["return_std"] is None else f" +/- {r['return_std']:.1f}")
        norm = "-" if r["normalised"] is None else f"{r['normalised']:.3f}"
        steps = "-" if r["steps"] is None else f"{r['steps']:,}"
        print(f"| {r['name']} | {ret} | {norm} | {steps} |")
    if args.plot:
        print(f"wrote learning curves to {plot_runs(args.plot, runs, title=args.title)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"wrote {args.json}")


def cmd_worldmodel(args: argparse.Namespace) -> None:
    import dataclasses as dc

    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import (
        DreamTrainingConfig,
        load_config,
        load_solution,
        train_controller_in_dream,
        train_controller_in_real,
    )
    from gailkit.worldmodels.data import collect_chunks
    from gailkit.worldmodels.pictures import dream_strip, reconstruction_grid
    from gailkit.worldmodels.presets import WM_PRESETS
    from gailkit.worldmodels.real import evaluate_controller
    from gailkit.worldmodels.train import start_latents, train_mdn, train_vae, warm_starts

    if args.action == "status":
        from gailkit.worldmodels.status import run_status

        rows = run_status(args.dir)
        print(f"{args.dir}:")
        _print_table(rows)
        return
    if args.epochs is not None and args.action not in ("train-vae", "train-mdn", "iterate"):
        raise UsageError(f"--epochs sets V's (train-vae) or M's (train-mdn, iterate) epochs, not {args.action}'s: "
                         "drop it")
    p = WM_PRESETS[args.preset]
    epochs = "vae_epochs" if args.action == "train-vae" else "mdn_epochs"
    p = dc.replace(p, **{k: v for k, v in (("env", args.env), ("episodes", args.episodes), (epochs, args.epochs),
                                           ("generations", args.generations), ("popsize", args.popsize),
                                           ("rollouts", args.rollouts), ("frame_skip", args.frame_skip),
                                           ("controller_solution", args.solution),
                                           ("m_fresh_samples", args.m_fresh_samples),
                                           ("mdn_seq_len", args.m_seq_len), ("m_ensemble", args.m_ensemble),
                                           ("controller_latent_noise", args.latent_noise))
                                 if v is not None})
    root = Path(args.dir)
    data, model_dir = root / "data", root / "model"
    where = args.where or p.controller_where
    ctrl = root / f"controller_{where}{'_vonly' if args.v_only else ''}"
    action = args.action
    if args.iteration is not None:  # eval or demos of an iteration of `iterate`: its own M and C
        from gailkit.worldmodels.iterative import kept_iteration

        if action not in ("eval", "demos"):
            raise UsageError(f"--iteration picks an iterate round for eval and demos, not {action}: drop it")
        kept = kept_iteration(root / "iterations", args.iteration)
        model_dir, ctrl = kept["model_dir"], kept["controller_dir"]
        print(f"iteration {kept['iteration']} of {root / 'iterations'} ({args.iteration}; "
              f"{kept['select_return']:.1f} on the selection tracks)" if "select_return" in kept else
              f"iteration {kept['iteration']} of {root / 'iterations'}")
    if action == "collect":
        paths = collect_chunks(p.env, data, p.episodes, seed=args.seed, policy=p.collect_policy)
        print(f"wrote {len(paths)} chunks to {data}/")
    elif action == "train-vae":
        train_vae(data, model_dir, **p.vae_options(), seed=args.seed, resume=args.resume)
        frames = np.load(sorted(data.glob("chunk_*.npz"))[0])["frames"][:8]
        grid = reconstruction_grid(WorldModel.load(model_dir), frames, root / "reconstructions.png")
        print(f"wrote V to {model_dir}/ (losses: v_curve.png, tb/), and {grid}")
    elif action == "train-mdn":
        train_mdn(data, model_dir, **p.mdn_options(), seed=args.seed, resume=args.resume)
        print(f"wrote M to {model_dir}/ (losses: m_curve.png, tb/)")
    elif action == "train-controller":
        if p.warm_start_generations or p.dagger_iterations:
            start = "a V-only controller" if p.warm_start_generations else "C fitted by DAgger to a privileged driver"
            raise UsageError(f"preset {args.preset} starts V+M+C's search from {start}, which this command does "
                             f"not do: run `python scripts/bench_worldmodel.py --preset {args.preset}`")
        cfg = DreamTrainingConfig(**p.controller_options(), seed=args.seed, memory=not args.v_only,
                                  dream_start=args.dream_start, ensemble_draw=args.ensemble_draw)
        if args.halt_quantile is not None and where != "dream":
            raise UsageError("--halt-quantile halts dreams; in the real env nothing halts: drop it, or train with "
                             "--where dream")
        if where == "dream":
            model = WorldModel.load(model_dir)
            if args.halt_quantile is not None:  # where the M's disagree more than on the data's steps
                from gailkit.worldmodels.train import ensemble_disagreements

                found = ensemble_disagreements(model, data, seed=args.seed, latent_noise=cfg.latent_noise)
                cfg = dc.replace(cfg, halt_above=float(np.quantile(found, args.halt_quantile)))
                print(f"dreams halt where the M's disagree by more than {cfg.halt_above:.4f} (the data's "
                      f"{args.halt_quantile:g} quantile)")
            if cfg.dream_start:
                z0, s0 = warm_starts(model, data, cfg.dream_start, latent_noise=cfg.latent_noise)
            else:
                z0, s0 = start_latents(model, data, latent_noise=cfg.latent_noise), None
            _, history = train_controller_in_dream(model, cfg, ctrl, start_z=z0, start_state=s0,
                                                   resume=args.resume)
        else:
            if cfg.dream_start:
                raise UsageError("--dream-start starts dreams inside the data's episodes; in the real env the "
                                 "controller drives whole episodes: drop it, or train with --where dream")
            _, history = train_controller_in_real(model_dir, p.env, cfg, ctrl, workers=args.workers,
                                                  timeout_s=args.timeout, resume=args.resume, backend=args.backend,
                                                  ray_address=args.ray_address)
        print(f"generation {history[-1]['generation']}: mean {history[-1]['mean']:.1f}, best "
              f"{history[-1]['best']:.1f} ({where} return); wrote {ctrl}/")
    elif action == "iterate":
        from gailkit.worldmodels.iterative import IterativeConfig, kept_iteration, train_iteratively

        cfg = DreamTrainingConfig(**p.controller_options(), seed=args.seed, dream_start=args.dream_start,
                                  ensemble_draw=args.ensemble_draw)
        it = IterativeConfig(iterations=args.iterations, where=where, mdn_epochs=p.mdn_epochs, seed=args.seed,
                             noise=args.explore_noise, halt_quantile=args.halt_quantile,
                             select_episodes=args.select_tracks)
        records = train_iteratively(model_dir, data, p.env, it, cfg, root / "iterations",
                                    mdn_options={k: v for k, v in p.mdn_options().items() if k != "epochs"},
                                    workers=args.workers,
                                    backend=args.backend, ray_address=args.ray_address)
        print("| iteration | episodes | dream return | real return | gap | on the selection tracks |\n"
              "|---:|---:|---:|---:|---:|---:|")
        for r in records:
            print(f"| {r['iteration']} | {r['episodes']} | {r['dream_return']:.1f} | {r['real_return']:.1f} | "
                  f"{r['gap']:+.1f} | {r['select_return']:.1f} |")
        kept = kept_iteration(root / "iterations", "best", iterations=args.iterations)
        print(f"wrote {root / 'iterations'}/; the best on the selection tracks is iteration {kept['iteration']}: "
              f"gailkit worldmodel eval --dir {root} --iteration best")
    elif action == "eval":
        model = WorldModel.load(model_dir)
        best = load_solution(ctrl, args.solution)
        noise = load_config(ctrl).latent_noise  # C is fed z as it was trained: V's draws or its mean
        ret, rand = (evaluate_controller(model, x, p.env, args.eval_episodes, frame_skip=p.frame_skip,
                                         latent_noise=noise) for x in (best, None))
        _print_table([("controller", f"{ret.mean():.1f} +/- {ret.std():.1f}"),
                      ("random", f"{rand.mean():.1f} +/- {rand.std():.1f}"),
                      ("episodes", str(args.eval_episodes))])
    elif action == "demos":
        from gailkit.worldmodels.real import record_controller_demos

        if args.out is None:
            raise UsageError("worldmodel demos needs --out FILE.npz (where to write the demonstrations)")
        model = WorldModel.load(model_dir)
        path = record_controller_demos(model, load_solution(ctrl, args.solution), p.env, args.episodes or 10,
                                       args.out, seed=args.seed, latent_noise=load_config(ctrl).latent_noise)
        print(f"wrote {path}: {args.episodes or 10} episodes of {p.env} frames by the controller in {ctrl}/")
    elif action == "dream-video":
        model = WorldModel.load(model_dir)
        strip = dream_strip(model, p.env, root / "dream.png", seed=args.seed)
        each = f", one per M of the {len(model.mdns)}" if len(model.mdns) > 1 else ""
        print(f"wrote {strip} and {strip.with_suffix('.gif')} (top/left: real, below/right: the dream{each})")


_positive_float = float_above_zero()
_non_negative_float = float_above_zero(or_equal=True)


def _quantile(text: str) -> float:
    """``--halt-quantile``: a number in (0, 1]."""
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{value}: a quantile is at most 1")
    return value


def _iteration(text: str) -> str | int:
    """``--iteration``: best, last or an iteration's number."""
    if text in ("best", "last"):
        return text
    try:
        return int_in(0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: use best, last or an iteration's number (0, 1, ...)") from None


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; imports configs and presets only (no torch), so ``--help`` is fast."""
    parser = CommandParser(prog="gailkit", description="Imitation learning and world models with generative parts.")
    from gailkit import __version__

    parser.add_argument("--version", action="version", version=f"gailkit {__version__}")
    parser.add_argument("--threads", type=int_in(1), default=1,
                        help="torch CPU threads (default: 1, fastest for the small networks of RL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list the registered gailkit/ environment ids")
    p.set_defaults(func=cmd_envs)

    expert = sub.add_parser("expert", help="train, evaluate and list expert policies")
    esub = expert.add_subparsers(dest="expert_command", required=True, metavar="ACTION")
    from gailkit.agents.configs import CollectConfig, ExpertConfig

    p = esub.add_parser("train", help="train an SB3 expert with the env's preset")
    add_config_args(p, ExpertConfig)
    p.set_defaults(func=cmd_expert_train)
    p = esub.add_parser("eval", help="evaluate a saved expert")
    add_config_args(p, ExpertEvalConfig)
    p.set_defaults(func=cmd_expert_eval)
    p = esub.add_parser("presets", help="print the preset table")
    p.set_defaults(func=cmd_expert_presets)

    demos = sub.add_parser("demos", help="record and inspect demonstration files")
    dsub = demos.add_subparsers(dest="demos_command", required=True, metavar="ACTION")
    p = dsub.add_parser("collect", help="record expert episodes to a .npz file")
    add_config_args(p, CollectConfig)
    p.set_defaults(func=cmd_demos_collect)
    p = dsub.add_parser("info", help="summarise (and validate) a demonstration file")
    add_config_args(p, DemosInfoConfig, positional=("file",))
    p.add_argument("--json", action="store_true", help="also print the summary as JSON")
    p.set_defaults(func=cmd_demos_info)
    zoo = sub.add_parser("zoo", help="the experts shipped with gailkit and their demonstrations")
    zsub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    p = zsub.add_parser("list", help="table of the zoo's experts with their returns")
    p.add_argument("--json", action="store_true", help="print the cards as JSON")
    p.set_defaults(func=cmd_zoo_list)
    p = zsub.add_parser("demos", help="record fresh episodes of a zoo expert to a .npz file")
    add_config_args(p, ZooDemosConfig, positional=("env",))
    p.set_defaults(func=cmd_zoo_demos)

    # ALGO's flags are generated from its config once ALGO is known (importing the algorithms
    # needs torch, which `gailkit --help` should not wait for)
    p = sub.add_parser("imitate", add_help=False, usage=_IMITATE_USAGE,
                       help="train an imitation algorithm (bc, gail, airl, dac, sqil, ...) from demonstrations",
                       description="Train an imitation algorithm from demonstrations in a run directory.")
    # ALGO is read from the arguments argparse leaves over (cmd_imitate): as a positional here it
    # would take the value of the first generated flag it does not know (--env CartPole-v1)
    p.add_argument("--algo", help="the algorithm, the same as the positional ALGO")
    p.add_argument("-h", "--help", action="store_true", help="show the options (with ALGO: that algorithm's)")
    p.set_defaults(func=cmd_imitate, accepts_extra="algo_options", imitate_parser=p)

    p = sub.add_parser("report", help="table (and learning-curve PNG) of finished imitation runs")
    p.add_argument("--runs", nargs="+", required=True, metavar="NAME=DIR", help="runs to compare")
    p.add_argument("--plot", type=Path, help="write the learning curves to this PNG")
    p.add_argument("--json", type=Path, help="write the table as JSON")
    p.add_argument("--title", default="imitation", help="plot title")
    p.set_defaults(func=cmd_report)

    from gailkit.worldmodels.presets import WM_PRESETS

    p = sub.add_parser("worldmodel", help="world-model pipeline: collect, train V / M / C, evaluate, dream")
    p.add_argument("action", choices=["collect", "train-vae", "train-mdn", "train-controller", "iterate", "eval",
                                      "demos", "dream-video", "status"],
                   help="status: where the run in --dir stands, stage by stage, and how each goes on")
    p.add_argument("--out", type=Path, help="demos: the pixel demonstration file to write")
    p.add_argument("--preset", choices=sorted(WM_PRESETS), default="quick", metavar="NAME", help=(
        "budget preset (default: quick): quick (pixel CartPole, minutes), cpu-hour (Gymnasium's CarRacing-v3 in "
        "about an hour), fast-2h (FastCarRacing, C in the real env, about 2 hours on 2 cores), paper (the World "
        "Models paper's budget), and fast-2h-* (CarRacing variants, each in docs/carracing.md)"))
    p.add_argument("--dir", type=Path, default=Path("runs/worldmodel"), help="run directory")
    p.add_argument("--env", help="pixel env id (default: the preset's)")
    p.add_argument("--episodes", type=int_in(1),
                   help="episodes to collect (default: the preset's), or to record with demos (default: 10)")
    p.add_argument("--epochs", type=int_in(1),
                   help="train-vae: V's epochs; train-mdn, iterate: M's (default: the preset's; with --resume, a "
                        "training that stopped goes on to this many)")
    p.add_argument("--generations", type=int_in(1), help="CMA-ES generations (default: the preset's)")
    p.add_argument("--popsize", type=int_in(1), help="CMA-ES candidates per generation (default: the preset's)")
    p.add_argument("--rollouts", type=int_in(1), help="episodes (or dreams) per candidate (default: the preset's)")
    p.add_argument("--where", choices=["dream", "real"], help="train the controller where (default: the preset's)")
    p.add_argument("--iterations", type=int_in(1), default=3,
                   help="iterate: rounds of collect with C -> refit M on all data -> continue C")
    p.add_argument("--explore-noise", type=_non_negative_float, default=0.1,
                   help="iterate: std of the Gaussian added to C's actions while it records episodes (on CarRacing "
                        "0.1 brakes the car on about half the steps, clipped at 0: 0 records its own driving)")
    p.add_argument("--select-tracks", type=int_in(1), default=8, metavar="N",
                   help="iterate: real episodes, in full, on the selection tracks (apart from the evaluation tracks) "
                        "that rank the rounds for --iteration best (default: 8)")
    p.add_argument("--workers", type=int_in(1), default=2, help="worker processes for --where real")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="where --where real evaluates candidates: local processes, or Ray (extra ray)")
    p.add_argument("--ray-address", help="HOST:PORT of a running Ray cluster (default: start Ray on this machine)")
    p.add_argument("--frame-skip", type=int_in(1), help="hold each action this many env steps (default: the preset's)")
    p.add_argument("--m-fresh-samples", action="store_true", default=None,
                   help="train-mdn, iterate: draw M's latents from V's posterior again before each epoch, as the World "
                        "Models code does (default: the preset's; every preset draws once per frame)")
    p.add_argument("--m-seq-len", type=int_in(1),
                   help="train-mdn, iterate: M's training windows in steps, each from a zero state (default: the "
                        "preset's; 1000 trains on whole CarRacing episodes, as the World Models code does)")
    p.add_argument("--m-ensemble", type=int_in(1), metavar="K",
                   help="train-mdn, iterate: fit K M's on the same data, each from its own seed; dreams draw from "
                        "them (--ensemble-draw), to keep C from profiting from one M's mistakes (default: the "
                        "preset's, 1)")
    p.add_argument("--ensemble-draw", choices=("dream", "step"), default="dream",
                   help="train-controller, iterate: with an ensemble of M's, each dream step comes from the one member "
                        "a dream draws for its whole length (default, PETS'), or from a member drawn every step "
                        "(MBPO's; on CarRacing a dream drawn per step paid more than any member's own, and per dream "
                        "gave the best dream-trained controller: docs/carracing.md)")
    p.add_argument("--halt-quantile", type=_quantile, metavar="Q",
                   help="train-controller, iterate: with an ensemble of M's (--m-ensemble), a dream halts, paying "
                        "-100, where the M's forecasts part by more than at this quantile of the real steps' (the "
                        "data's; iterate: the newest episodes'), e.g. 0.999")
    p.add_argument("--latent-noise", type=_non_negative_float,
                   help="train-controller, iterate: the scale of the sampling noise in the z that C and M are fed: "
                        "1 draws from V's posterior (in the dream, from M's mixture) as the paper did, 0 feeds its "
                        "mean (default: the preset's); eval and demos feed C as its run was trained")
    p.add_argument("--dream-start", type=int_in(0), default=0, metavar="W",
                   help="train-controller, iterate: dreams start W steps into the recorded episodes (iterate: the "
                        "newest), M's memory run over the real steps before; 0 (default): at their first frames. "
                        "On CarRacing, 50 starts past the opening zoom")
    p.add_argument("--timeout", type=_positive_float, default=600.0,
                   help="seconds per generation before workers restart")
    p.add_argument("--eval-episodes", type=int_in(1), default=10, help="episodes for eval")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--v-only", action="store_true",
                   help="controller over z alone, without M's h (the paper's V-only baseline; use --where real)")
    p.add_argument("--resume", action="store_true",
                   help="train-vae, train-mdn: continue V's or M's training that stopped (checkpointed every epoch); "
                        "train-controller: continue the controller's CMA-ES")
    p.add_argument("--iteration", type=_iteration, metavar="best|last|K",
                   help="eval, demos: the controller (and M) of an iteration of `iterate` instead of the run's: "
                        "best (on the selection tracks, apart from the evaluation tracks), last, or its number")
    p.add_argument("--solution", choices=["best", "mean"],
                   help="the controller: the best candidate seen, or the CMA-ES mean (the paper's); train-controller "
                        "default: the preset's; eval and demos default: the one the run was trained for")
    p.set_defaults(func=cmd_worldmodel)

    p = sub.add_parser("eval", help="evaluate the policy of an imitation run")
    p.add_argument("--run", type=Path, required=True, help="run directory (from `gailkit imitate`)")
    p.add_argument("--episodes", type=int_in(1), default=20, help="evaluation episodes (default: 20)")
    p.set_defaults(func=cmd_eval)

    from gailkit.cli_generate import add_generate_parser

    add_generate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gailkit`` command line; returns the exit status.

    0: done; 2: a user error (one line on stderr naming the problem and the fix; argparse's
    usage errors too); 130: interrupted (the message says what was saved). Any other exception
    is a bug and propagates with its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    if extra:  # only commands that generate flags late (generate train) accept unknown flags
        if not getattr(args, "accepts_extra", None):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(args, args.accepts_extra, extra)
    elif getattr(args, "accepts_extra", None):
        setattr(args, args.accepts_extra, [])
    import torch

    torch.set_num_threads(args.threads)
    try:
        if getattr(args, "seed", None) is not None:
            if not 0 <= args.seed < 2**32:
                raise UsageError(f"--seed {args.seed}: must lie in [0, 2**32)")
            np.random.seed(args.seed)  # global seeding happens here only, at the entry point
        args.func(args)
    except RunInterrupted as e:
        print(f"gailkit: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("gailkit: interrupted", file=sys.stderr)
        return 130
    except GailkitError as e:
        print(f"gailkit: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
