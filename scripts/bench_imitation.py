"""Benchmark: BC, GAIL, AIRL, DAC and SQIL from 10 expert episodes, and reward transfer.

Run:  python scripts/bench_imitation.py [--seeds 3] [--envs CartPole-v1 Pendulum-v1] [--algos ...] [--transfer]
      ... --disc-reward logit                       (GAIL, AIRL and DAC with that discriminator reward)
      ... --clip-actions                            (GAIL and AIRL: the discriminator sees the env's actions)
      ... --ent-coef 0.01                           (GAIL and AIRL: PPO's entropy coefficient)
      ... --fixed-std 0.5                           (GAIL and AIRL: PPO's action standard deviation held there)
      ... --normalize-reward                        (GAIL and AIRL: the learned reward standardised for PPO)
      ... --normalize-obs                           (GAIL and AIRL: the observations standardised for PPO;
                                                     GAIL's default on MuJoCo)
      ... --no-normalize-obs                        (GAIL on MuJoCo: the raw observations, its former default)
      ... --sac-ent-coef auto_0.01                  (DAC and SQIL: SAC's entropy coefficient)
      ... --no-clip-target                          (SQIL: the TD target not clipped to its rewards' bound)
      ... --no-lr-decay                             (SQIL: a constant learning rate)
      ... --steps 10000000                          (every algorithm that takes steps: that many, not the env's)
      ... --workers 2                               (2 seeds at once, in local processes)
      ... --backend ray [--ray-address HEAD:6379]   (each seed's run a Ray task; ROOT must be shared)

Experts: ROOT/experts/ENV when there is one (trained with the env's preset when missing and
cheap), else the shipped zoo expert (`gailkit zoo list`: the MuJoCo envs); the 10 expert
episodes are recorded from the former, or are the first 10 of the zoo's demonstrations
(gailkit/HalfCheetahWithPosition-v5's are recorded by the HalfCheetah-v5 zoo expert, which sees
its observation without the position).
ROOT defaults to ~/.cache/gailkit/bench/imitation, outside the repository: every run is a
normal run directory there, and a rerun reuses finished runs and resumes unfinished ones from
their checkpoints, so an interrupted benchmark continues where it stopped; a folder holding a
run of other options (e.g. of a default since changed) is refused with a one-line error.

``--transfer``: for each env and seed, PPO from scratch on the final reward of the AIRL run and
of the GAIL run (``gailkit imitate ppo-on-reward``), evaluated on the env's true reward.

Prints the tables and writes one JSON per invocation, named by its envs, seeds and algorithms
(no run overwrites another's):
scripts/results/bench_imitation_<envs>_seeds<N>[_<algos>][_disc-<reward>][_clip-actions][_ent-coef<X>][_fixed-std<X>]
[_normalize-reward][_normalize-obs][_no-normalize-obs][_sac-ent-coef<X>][_no-clip-target][_no-lr-decay][_steps<N>][_transfer].json
(an env id's slash becomes a dash), with each expert's card, every run's options and, per seed, the first, last,
lowest and highest value of each of the learner's TensorBoard ``train/*`` scalars (SAC's actor
loss is about -Q), and one learning-curve PNG per env (seed 0 of each algorithm). Normalised
return = (R - random) / (expert - random), both measured on the expert card's evaluation episodes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from gailkit.agents.base import TrainingConfig
from gailkit.agents.experts import (
    PRESETS,
    CollectConfig,
    ExpertConfig,
    collect_demos,
    load_expert,
    rollout_episodes,
    train_expert,
)
from gailkit.agents.imitate import imitate_command, imitate_or_resume, plot_runs
from gailkit.agents.offpolicy import sac_ent_coef
from gailkit.agents.onpolicy import PPOOptions
from gailkit.agents.registry import algorithm, algorithm_of
from gailkit.agents.tuned import TUNED, tuned, tuned_parts
from gailkit.configs import CommandParser, check_bounds
from gailkit.data.demos import load_demos, save_demos
from gailkit.discriminators import DiscriminatorConfig
from gailkit.discriminators.config import REWARD_TYPES
from gailkit.envs.make import make_env
from gailkit.errors import UsageError
from gailkit.files import write_json
from gailkit.worldmodels.backends import Backend, make_backend
from gailkit.zoo import zoo_envs, zoo_expert_dir

ADVERSARIAL = ("gail", "airl", "dac")  # the algorithms with a discriminator
ON_POLICY_ADVERSARIAL = ("gail", "airl")  # PPO's Gaussian samples can leave the action space (--clip-actions)
OFF_POLICY = ("dac", "sqil")  # SAC (or DQN) learners
# Per env, the settings each algorithm's runs take: the library's tuned ones (gailkit/agents/tuned.py,
# `gailkit imitate ALGO --preset tuned`). AIRL's reward at 200k steps on Pendulum does not transfer
# (-0.30 / 0.33 / -0.31 on seeds 0-2); the same algorithm stopped at 100k gives one that does on two seeds
# (0.99 / 0.93 / 0.08): both are shown
TRANSFER_AT = {"Pendulum-v1": {"airl": [100_000]}}
# a zoo env with more in its observation: the base env's zoo expert records the demonstrations,
# acting on what it was trained to see (HalfCheetah-v5's observation is this one without the position)
WITH_POSITION = {"gailkit/HalfCheetahWithPosition-v5": "HalfCheetah-v5"}


def slug(env_id: str) -> str:
    """``env_id`` as a file or folder name (``gailkit/X`` -> ``gailkit-X``)."""
    return env_id.replace("/", "-")


def config_for(algo: str, env_id: str, seed: int, out: Path, **given):
    """The config of one benchmark run: the env's settings for ``algo`` on the config's defaults."""
    fields = {**tuned(algo, env_id).fields, **given, "seed": seed, "out": out, "progress": False}
    return algorithm(algo).Config(**fields)


def run_variant(algo: str, env_id: str, disc_reward: str | None = None, clip_actions: bool = False,
                ent_coef: float | None = None, fixed_std: float | None = None,
                normalize_reward: bool = False, steps: int | None = None,
                normalize_obs: bool = False, sac_ent_coef: str | None = None,
                no_clip_target: bool = False, no_lr_decay: bool = False,
                no_normalize_obs: bool = False) -> tuple[str, dict | None, dict]:
    """The name of ``algo``'s runs (their folders' and rows' name), its part options and the config
    fields that differ from the env's settings. A variant has folders of its own: ``<algo>-<reward>``
    with the discriminator's reward replaced (GAIL, AIRL, DAC), ``-clip`` when GAIL's or AIRL's
    discriminator sees the clipped actions, ``-ent<X>`` with PPO's entropy coefficient X, ``-std<X>``
    with its action standard deviation held at X, ``-norm`` with the learned reward standardised
    before PPO sees it and ``-obs`` with the observations standardised where the env's settings do not
    (GAIL, AIRL), ``-noobs`` with them raw where they do (GAIL on MuJoCo); ``-alpha<X>``
    with SAC's entropy coefficient X (``auto_0.01``: learned from 0.01; DAC, SQIL); ``-noclipq`` with
    SQIL's TD target left unclipped and ``-constlr`` with its learning rate held (SQIL);
    ``-steps<N>`` with N env steps instead of the env's budget (every algorithm that takes steps)."""
    name, parts, given = algo, tuned_parts(algo, env_id) or None, {}
    if disc_reward is not None and algo in ADVERSARIAL:
        disc = dataclasses.replace((parts or {}).get("disc", DiscriminatorConfig()), reward=disc_reward)
        name, parts = f"{algo}-{disc_reward}", {**(parts or {}), "disc": disc}
    if clip_actions and algo in ON_POLICY_ADVERSARIAL:
        name, given = f"{name}-clip", {**given, "clip_actions": True}
    if ent_coef is not None and algo in ON_POLICY_ADVERSARIAL:
        name, given = f"{name}-ent{ent_coef:g}", {**given, "ent_coef": ent_coef}
    if fixed_std is not None and algo in ON_POLICY_ADVERSARIAL:
        name, given = f"{name}-std{fixed_std:g}", {**given, "fixed_std": fixed_std}
    if normalize_reward and algo in ON_POLICY_ADVERSARIAL:
        name, given = f"{name}-norm", {**given, "normalize_reward": True}
    obs_default = tuned(algo, env_id).fields.get("normalize_obs", False)
    if normalize_obs and algo in ON_POLICY_ADVERSARIAL and not obs_default:
        name, given = f"{name}-obs", {**given, "normalize_obs": True}
    if no_normalize_obs and obs_default:
        name, given = f"{name}-noobs", {**given, "normalize_obs": False}
    if sac_ent_coef is not None and algo in OFF_POLICY:
        name, given = f"{name}-alpha{sac_ent_coef}", {**given, "ent_coef": sac_ent_coef}
    if no_clip_target and algo == "sqil":
        name, given = f"{name}-noclipq", {**given, "clip_target": False}
    if no_lr_decay and algo == "sqil":
        name, given = f"{name}-constlr", {**given, "lr_decay": False}
    if steps is not None and algo in TUNED[env_id].steps:
        name, given = f"{name}-steps{steps}", {**given, "steps": steps}
    return name, parts, given


def run_once(config, parts: dict | None = None) -> list[dict]:
    return imitate_or_resume(config, **(parts or {}))


def summarise(histories: list[list[dict]], steps: int | None, config, parts: dict | None = None) -> dict:
    finals = [h[-1]["normalised"] for h in histories]
    last5 = [float(np.mean([e["normalised"] for e in h[-5:]])) for h in histories]
    hits = [next((e for e in h if e["normalised"] >= 0.9), None) for h in histories]
    bests = [max(h, key=lambda e: e["normalised"]) for h in histories]  # the first of equal ones
    return dict(final_normalised=finals, mean_last5_normalised=last5,
                best_normalised=[e["normalised"] for e in bests], steps_to_best=[e["steps"] for e in bests],
                steps_to_0_9=[e["steps"] if e else None for e in hits],
                wall_to_0_9=[e.get("wall_s") if e else None for e in hits],
                wall_s=[h[-1].get("wall_s", float("nan")) for h in histories], steps=steps or 0,
                config={k: str(v) for k, v in dataclasses.asdict(config).items()},
                parts=used_parts(config, parts))


def commands(configs: list, parts: dict | None = None) -> list[str]:
    """Each seed's run as a ``gailkit imitate`` command (into ``runs/``, not the benchmark's folder)."""
    return [imitate_command(c, Path("runs") / c.out.parent.name / c.out.name, **(parts or {})) for c in configs]


def learner_scalars(run_dir: Path) -> dict[str, dict[str, float]]:
    """The first, last, lowest and highest value of each of the learner's ``train/*`` scalars (BC's
    ``bc/*``) in the run's TensorBoard log (empty for runs from before the learner was logged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})  # 0: keep every point
    events.Reload()
    summary = {}
    for tag in sorted(t for t in events.Tags()["scalars"] if t.startswith(("train/", "bc/"))):
        points = events.Scalars(tag)
        values = [p.value for p in points]
        summary[tag] = {"first": values[0], "first_step": points[0].step, "last": values[-1],
                        "last_step": points[-1].step, "min": min(values), "max": max(values)}
    return summary


def used_parts(config, parts: dict | None) -> dict:
    """The part configs the runs used, the algorithm's defaults filled in (AIRL's discriminator is
    ``airl=True`` with the run's gamma, whatever the env's settings override)."""
    resolved = algorithm_of(config).resolve_parts(config, dict(parts or {}))
    return {name: dataclasses.asdict(p) for name, p in resolved.items()}


def run_task(task: tuple) -> list[dict]:
    """One seed's run on a backend worker."""
    torch.set_num_threads(1)
    return run_once(*task)


def run_seeds(configs: list, pool: Backend | None, parts: dict | None = None) -> list[list[dict]]:
    """Every seed's history: on the backend's workers, or one after another here when there is none."""
    if pool is None:
        return [run_once(c, parts) for c in configs]
    return pool.map(run_task, [(c, parts) for c in configs])


def record_with_position(env_id: str, path: Path, episodes: int = 10) -> Path:
    """Demonstrations of ``env_id`` (a :data:`WITH_POSITION` id) by its base env's zoo expert, which acts
    on the observation without the position (the first number), as it was trained."""
    base = WITH_POSITION[env_id]
    expert = load_expert(zoo_expert_dir(base))
    trajectories = rollout_episodes(lambda obs: expert.predict(obs[1:], True), env_id, episodes, seed=0)
    env = make_env(env_id)
    try:
        return save_demos(path, trajectories, env_id=env_id, observation_space=env.observation_space,
                          action_space=env.action_space, metadata={"expert": f"zoo:{base}", "expert_card": expert.card,
                                                                   "seed": 0, "deterministic": True})
    finally:
        env.close()


def expert_and_demos(env_id: str, args: argparse.Namespace) -> tuple[Path, Path] | None:
    """The env's expert folder and its 10-episode demonstration file, made when missing (None: skip the env)."""
    expert_dir = args.root / "experts" / slug(env_id)
    demos_path = args.root / "demos" / f"{slug(env_id)}.npz"
    if env_id in WITH_POSITION:
        if not demos_path.exists():
            record_with_position(env_id, demos_path)
        return zoo_expert_dir(WITH_POSITION[env_id]), demos_path
    if not (expert_dir / "card.json").exists() and env_id in zoo_envs():
        expert_dir = zoo_expert_dir(env_id)
        if not demos_path.exists():  # the first 10 of the zoo's 25 episodes
            zoo = load_demos(f"zoo:{env_id}")
            env = make_env(env_id)
            save_demos(demos_path, zoo.trajectories[:10], env_id=env_id, observation_space=env.observation_space,
                       action_space=env.action_space, metadata={**zoo.metadata, "expert": f"zoo:{env_id}"})
            env.close()
    if not (expert_dir / "card.json").exists():
        if PRESETS[env_id].steps > args.max_expert_steps:
            print(f"skipping {env_id}: no expert in {expert_dir}; train one with "
                  f"`gailkit expert train --env {env_id} --out {expert_dir}` ({PRESETS[env_id].steps:,} steps)")
            return None
        train_expert(ExpertConfig(env=env_id, out=expert_dir, progress=False))
    if not demos_path.exists():
        collect_demos(CollectConfig(expert=expert_dir, episodes=10, seed=0, out=demos_path))
    return expert_dir, demos_path


def bench_env(env_id: str, args: argparse.Namespace, pool: Backend | None, algos: str) -> dict | None:
    """One env's rows (every algorithm, then the transfer runs) and its learning-curve PNG."""
    found = expert_and_demos(env_id, args)
    if found is None:
        return None
    expert_dir, demos_path = found
    runs = args.root / slug(env_id)  # the env's run folders
    card = json.loads((expert_dir / "card.json").read_text())
    env_rows = {"expert_return": card["return_mean"], "random_return": card["random_return_mean"],
                "expert_card": card, "algos": {}, "transfer": {}}
    names = []  # the rows' run names, for the learning curves
    for algo in args.algos:
        name, parts, given = run_variant(algo, env_id, args.disc_reward, args.clip_actions, args.ent_coef,
                                          args.fixed_std, args.normalize_reward, args.steps, args.normalize_obs,
                                          sac_ent_coef=args.sac_ent_coef, no_clip_target=args.no_clip_target,
                                          no_lr_decay=args.no_lr_decay, no_normalize_obs=args.no_normalize_obs)
        names.append(name)
        configs = [config_for(algo, env_id, seed, runs / f"{name}_seed{seed}", env=env_id,
                              demos=demos_path, **given) for seed in range(args.seeds)]
        histories = run_seeds(configs, pool, parts)
        env_rows["algos"][name] = summarise(histories, given.get("steps", TUNED[env_id].steps.get(algo)),
                                            configs[-1], parts)
        env_rows["algos"][name]["learner"] = [learner_scalars(c.out) for c in configs]
        env_rows["algos"][name]["commands"] = commands(configs, parts)
        a = env_rows["algos"][name]
        print(f"{env_id} {name}: final normalised {np.round(a['final_normalised'], 3).tolist()}, "
              f"mean of last 5 {np.round(a['mean_last5_normalised'], 3).tolist()}, steps to 0.9 {a['steps_to_0_9']}")
        print(f"  seed 0 from the command line: {a['commands'][0]}")
    if args.transfer:
        # the final reward of each row's runs, and of runs stopped earlier where "transfer_at" asks
        sources = [(a, TUNED[env_id].steps[a]) for a in ("airl", "gail")]
        sources += [(a, n) for a, steps in TRANSFER_AT.get(env_id, {}).items() for n in steps]
        for algo, steps in sources:
            source = algo if steps == TUNED[env_id].steps[algo] else f"{algo}_{steps // 1000}k"
            if steps != TUNED[env_id].steps[algo]:  # the source runs themselves, stopped at `steps`
                run_seeds([config_for(algo, env_id, seed, runs / f"{source}_seed{seed}", env=env_id,
                                      demos=demos_path, steps=steps) for seed in range(args.seeds)],
                          pool, tuned_parts(algo, env_id) or None)
            configs = [config_for("ppo-on-reward", env_id, seed, runs / f"ppo-on-{source}_seed{seed}",
                                  reward_from=runs / f"{source}_seed{seed}")
                       for seed in range(args.seeds)]
            missing = [c.reward_from for c in configs if not (c.reward_from / "policy.safetensors").exists()]
            if missing:
                print(f"skipping transfer of {source} on {env_id}: run --algos {algo} first ({missing[0]} is missing)")
                continue
            env_rows["transfer"][source] = summarise(run_seeds(configs, pool),
                                                     TUNED[env_id].steps["ppo-on-reward"], configs[-1])
            env_rows["transfer"][source]["source_steps"] = steps
            env_rows["transfer"][source]["commands"] = commands(configs)
            t = env_rows["transfer"][source]
            print(f"{env_id} PPO on {source}'s reward: final normalised {np.round(t['final_normalised'], 3).tolist()}")
    plot_runs(args.out / f"bench_imitation_{slug(env_id)}{algos}.png",
              {f"{name} (seed 0)": runs / f"{name}_seed0" for name in names},
              title=f"{env_id}, 10 expert episodes")
    return env_rows


def fmt_median(values):
    hits = [v for v in values if v is not None]
    if len(hits) < len(values):
        return f"{len(hits)}/{len(values)} reached" + (f", median {statistics.median(hits):,.0f}" if hits else "")
    return f"{statistics.median(hits):,.0f}"


def fmt_spread(values):
    f = np.array(values)
    return f"{np.median(f):.3f} ({f.min():.3f}-{f.max():.3f})"


def print_tables(results: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"\n| env | expert | random | method | env steps | final normalised: median (min-max) over "
          f"{args.seeds} seeds | mean of last 5 evaluations: median (min-max) | steps to 0.9 (median) "
          f"| wall s to 0.9 (median) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for env_id, r in results.items():
        for algo, a in r["algos"].items():
            print(f"| {env_id} | {r['expert_return']:.1f} | {r['random_return']:.1f} | {algo} | {a['steps']:,} | "
                  f"{fmt_spread(a['final_normalised'])} | {fmt_spread(a['mean_last5_normalised'])} | "
                  f"{fmt_median(a['steps_to_0_9'])} | {fmt_median(a['wall_to_0_9'])} |")
    if args.transfer:
        print(f"\n| env | reward learned by | PPO steps on it | final normalised (true reward): median (min-max) over "
              f"{args.seeds} seeds | per seed |")
        print("|---|---|---:|---:|---|")
        for env_id, r in results.items():
            for source, t in r["transfer"].items():
                learned_by = f"{source.split('_')[0]}, its final reward after {t['source_steps']:,} steps"
                print(f"| {env_id} | {learned_by} | {t['steps']:,} | {fmt_spread(t['final_normalised'])} | "
                      f"{', '.join(f'{v:.3f}' for v in t['final_normalised'])} |")


def make_parser() -> argparse.ArgumentParser:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"])
    parser.add_argument("--algos", nargs="+", default=["bc", "gail", "airl", "dac", "sqil"])
    parser.add_argument("--transfer", action="store_true", help="also PPO from scratch on AIRL's and GAIL's rewards")
    parser.add_argument("--root", type=Path, default=Path.home() / ".cache" / "gailkit" / "bench" / "imitation")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: seeds one after another here, or in --workers processes; ray: Ray tasks")
    parser.add_argument("--ray-address", help="HOST:PORT of a running Ray cluster (default: Ray on this machine)")
    parser.add_argument("--workers", type=int, help="seeds run at once: local processes (default 1), or the Ray "
                                                     "CPUs to start when there is no --ray-address (default 2)")
    parser.add_argument("--disc-reward", choices=REWARD_TYPES,
                        help="the discriminator's reward for GAIL, AIRL and DAC instead of each env's setting: "
                             "runs named <algo>-<reward>, in folders of their own")
    parser.add_argument("--clip-actions", action="store_true",
                        help="GAIL and AIRL show their discriminator the actions the env ran (clipped to the "
                             "action space): runs named <algo>-clip, in folders of their own")
    parser.add_argument("--ent-coef", type=float,
                        help="PPO's entropy coefficient for GAIL and AIRL instead of each env's setting: runs "
                             "named <algo>-ent<X>, in folders of their own")
    parser.add_argument("--fixed-std", type=float,
                        help="hold GAIL's and AIRL's PPO action standard deviation at this value: runs named "
                             "<algo>-std<X>, in folders of their own")
    parser.add_argument("--normalize-reward", action="store_true",
                        help="GAIL and AIRL standardise the learned reward by its running mean and std before "
                             "PPO sees it: runs named <algo>-norm, in folders of their own")
    obs = parser.add_mutually_exclusive_group()
    obs.add_argument("--normalize-obs", action="store_true",
                     help="GAIL's and AIRL's PPO standardise the observations by their running mean and std "
                          "(GAIL's default on MuJoCo): runs named <algo>-obs where it is not the default, in "
                          "folders of their own")
    obs.add_argument("--no-normalize-obs", action="store_true",
                     help="GAIL's PPO sees the raw observations on MuJoCo, where it standardises them by "
                          "default (its former default): runs named gail-noobs, in folders of their own")
    parser.add_argument("--sac-ent-coef",
                        help="SAC's entropy coefficient for DAC and SQIL (auto, auto_X: learned from X, or X: "
                             "held) instead of the algorithm's default (DAC: auto; SQIL: 0.01): runs named "
                             "<algo>-alpha<X>, in folders of their own")
    parser.add_argument("--no-clip-target", action="store_true",
                        help="SQIL leaves its TD target unclipped instead of clipping it to the largest value its "
                             "rewards in {0, 1} allow (its former default): runs named sqil-noclipq, in folders of "
                             "their own")
    parser.add_argument("--no-lr-decay", action="store_true",
                        help="SQIL keeps its learning rate constant instead of decaying it to 0 over the run: "
                             "runs named sqil-constlr, in folders of their own")
    parser.add_argument("--steps", type=int,
                        help="env steps for every algorithm that takes them, instead of each env's budget: runs "
                             "named <algo>-steps<N>, in folders of their own")
    parser.add_argument("--max-expert-steps", type=int, default=200_000,
                        help="train a missing expert only if its preset needs at most this many steps")
    return parser


def main() -> None:
    parser = make_parser()
    args = parser.parse_args()
    torch.set_num_threads(1)
    workers = args.workers if args.workers is not None else (1 if args.backend == "local" else 2)
    algos = "" if args.algos == parser.get_default("algos") else "_" + "-".join(args.algos)
    variant = (args.disc_reward or args.clip_actions or args.ent_coef is not None or args.fixed_std is not None
               or args.normalize_reward or args.normalize_obs or args.no_normalize_obs
               or args.sac_ent_coef is not None
               or args.no_clip_target or args.no_lr_decay or args.steps is not None)
    if args.transfer and variant:
        parser.error("--transfer uses the rows' own runs; run it without --disc-reward, --clip-actions, --ent-coef, "
                     "--fixed-std, --normalize-reward, --normalize-obs, --no-normalize-obs, --sac-ent-coef, "
                     "--no-clip-target, --no-lr-decay and --steps")
    try:  # the configs' own rules, before any expert or run is made
        check_bounds(args, {**{name: PPOOptions.bounds[name] for name in ("ent_coef", "fixed_std")},
                            "steps": TrainingConfig.bounds["steps"]})
        if args.sac_ent_coef is not None:
            sac_ent_coef(args.sac_ent_coef, "--sac-ent-coef")
    except UsageError as e:
        parser.error(str(e))
    if args.disc_reward:
        algos += f"_disc-{args.disc_reward}"
    if args.clip_actions:
        algos += "_clip-actions"
    if args.ent_coef is not None:
        algos += f"_ent-coef{args.ent_coef:g}"
    if args.fixed_std is not None:
        algos += f"_fixed-std{args.fixed_std:g}"
    if args.normalize_reward:
        algos += "_normalize-reward"
    if args.normalize_obs:
        algos += "_normalize-obs"
    if args.no_normalize_obs:
        algos += "_no-normalize-obs"
    if args.sac_ent_coef is not None:
        algos += f"_sac-ent-coef{args.sac_ent_coef}"
    if args.no_clip_target:
        algos += "_no-clip-target"
    if args.no_lr_decay:
        algos += "_no-lr-decay"
    if args.steps is not None:
        algos += f"_steps{args.steps}"
    if args.ray_address and args.backend != "ray":
        parser.error("--ray-address needs --backend ray")
    if workers < 1:
        parser.error(f"--workers {workers}: must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)  # the learning curves are written into it before the JSON
    pool = None
    if args.backend == "ray" or workers > 1:
        pool = make_backend(args.backend, workers, timeout_s=30 * 24 * 3600, ray_address=args.ray_address)
    results: dict[str, dict] = {}
    try:
        for env_id in args.envs:
            env_rows = bench_env(env_id, args, pool, algos)
            if env_rows is not None:
                results[env_id] = env_rows
    except UsageError as e:  # e.g. ROOT holds a finished run of other options in a row's folder
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    finally:
        if pool is not None:
            pool.close()
    print_tables(results, args)
    suffix = f"_seeds{args.seeds}{algos}{'_transfer' if args.transfer else ''}"
    path = args.out / f"bench_imitation_{'_'.join(map(slug, results))}{suffix}.json"
    write_json(path, results)
    print(f"\nwrote {path} and the learning curves next to it")


if __name__ == "__main__":
    main()
