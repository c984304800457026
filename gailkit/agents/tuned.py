"""Tuned imitation settings per env: ``gailkit imitate ALGO --preset tuned`` and the benchmark's runs.

Each env's settings are those of ``scripts/bench_imitation.py`` (the README's rows): the env steps
of each algorithm, the config fields that differ from the algorithms' defaults and the options of
their parts. :func:`tuned` gives them for one algorithm; :func:`tuned_run` builds a run's configs
from them with the caller's fields on top::

    config, parts = tuned_run("gail", "HalfCheetah-v5", demos="zoo:HalfCheetah-v5", out="runs/gail_hc")
    imitate(config, **parts)
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from gailkit.errors import UsageError

__all__ = ["TUNED", "EnvSettings", "Tuned", "tuned", "tuned_parts", "tuned_run"]


@dataclasses.dataclass(frozen=True)
class EnvSettings:
    """One env's settings. ``steps``: env steps per algorithm (BC takes none; these algorithms and BC
    are the tuned ones); ``common``: fields for every algorithm whose config has them; ``per_algo``:
    fields per algorithm (over ``common``); ``parts``: per algorithm, its parts' fields by part name."""

    steps: dict[str, int]
    common: dict[str, Any] = dataclasses.field(default_factory=dict)
    per_algo: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    parts: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)

    @property
    def algos(self) -> list[str]:
        return ["bc", *self.steps]


class Tuned(NamedTuple):
    """An algorithm's settings on one env: its config's fields and each part's fields."""

    fields: dict[str, Any]
    parts: dict[str, dict[str, Any]]


# RL Zoo's PPO settings for Pendulum (gSDE exploration), used as the GAIL/AIRL generator.
PENDULUM_PPO = dict(n_envs=4, n_steps=1024, gae_lambda=0.95, ent_coef=0.0, learning_rate=1e-3, use_sde=True)
OFF_POLICY_CARTPOLE = dict(eval_every=5000)
OFF_POLICY_PENDULUM = dict(eval_every=2000, gamma=0.99)
MUJOCO_SAC = dict(learning_rate=3e-4, learning_starts=10_000, buffer_size=1_000_000)
# 10 episodes are 10k transitions: BC's default 2,000 steps left HalfCheetah at 0.18-0.28 (seeds 0-2)
MUJOCO_BC = {"bc": {"steps": 20_000}}
# Over 3M steps, an evaluation (10 episodes, up to 10k steps) every 50k rather than every 10k
MUJOCO_PPO = dict(n_envs=4, n_steps=512, batch_size=64, n_epochs=10, learning_rate=3e-4, gae_lambda=0.95,
                  ent_coef=0.0, eval_every=50_000)
# GAIL's PPO sees standardised observations on MuJoCo (as RL Zoo's PPO there). Over 3 seeds it passes 0.9
# of the expert by 344k steps on HalfCheetah (1.62M on seed 0 without) and ends at 1.19 (0.92); on Hopper
# it ends at 1.30 (1.31 on seed 0 without) and holds it better: bench_imitation_<env>_seeds3_gail.json
MUJOCO_GAIL = {**MUJOCO_PPO, "normalize_obs": True}
MUJOCO_STEPS = {"gail": 3_000_000, "airl": 3_000_000, "dac": 300_000, "sqil": 300_000}
# no absorbing states on MuJoCo (see Hopper-v5 below); checkpoints as often as evaluations
MUJOCO_COMMON = dict(gamma=0.99, eval_every=10_000, checkpoint_every=10_000, absorbing=False)
MUJOCO_LEARNERS = {"dac": MUJOCO_SAC, "sqil": MUJOCO_SAC, "gail": MUJOCO_GAIL, "airl": MUJOCO_PPO}

TUNED: dict[str, EnvSettings] = {
    "CartPole-v1": EnvSettings(
        steps={"gail": 100_000, "airl": 300_000, "dac": 50_000, "sqil": 50_000, "ppo-on-reward": 100_000},
        per_algo={"dac": OFF_POLICY_CARTPOLE, "sqil": OFF_POLICY_CARTPOLE}),
    "Pendulum-v1": EnvSettings(
        steps={"gail": 100_000, "airl": 200_000, "dac": 20_000, "sqil": 20_000, "ppo-on-reward": 100_000},
        common=dict(absorbing=False, gamma=0.9),  # never terminates: no absorbing state needed
        per_algo={"gail": PENDULUM_PPO, "airl": PENDULUM_PPO, "ppo-on-reward": PENDULUM_PPO,
                  "dac": OFF_POLICY_PENDULUM, "sqil": OFF_POLICY_PENDULUM},
        # a state-only g(s): the disentangled reward that the benchmark's transfer table tests
        # (with g(s, a) PPO from scratch reached -0.27 / 0.19 / 0.66 here)
        parts={"airl": {"disc": {"inputs": "s"}}}),
    # MuJoCo: SAC at RL Zoo's MuJoCo settings (lr 3e-4, 10k random steps first) for DAC and SQIL;
    # PPO for GAIL (observations standardised) and AIRL (raw observations)
    # The zoo's Hopper expert falls in 9 of the 10 demonstration episodes (mean length 721): with
    # absorbing states 28% of the expert's transitions are absorbing, so D cannot make falling
    # costly. Seed 0 at 100k steps: logit reward + absorbing 0.14, gail reward + absorbing 0.00-0.09
    # (60k), gail reward without absorbing states 0.45; the last is DAC's setting here. GAIL with
    # absorbing states stayed at 0.01-0.14 for 737k steps (seed 0). So no algorithm uses them on
    # Hopper; for SQIL, whose expert rows all earn 1, 9 expert falls would make the absorbing state a goal.
    # Without them AIRL's default reward (its shaped f, -5 to -7 per step on average) taught the policy
    # to fall at once: -0.01 from 196k to 442k steps (seed 0). AIRL takes DAC's positive gail reward here.
    "Hopper-v5": EnvSettings(
        steps=MUJOCO_STEPS, common=MUJOCO_COMMON, per_algo=MUJOCO_LEARNERS,
        parts={"bc": MUJOCO_BC, "dac": {"disc": {"reward": "gail"}}, "airl": {"disc": {"reward": "gail"}}}),
    "HalfCheetah-v5": EnvSettings(steps=MUJOCO_STEPS, common=MUJOCO_COMMON, per_algo=MUJOCO_LEARNERS,
                                  parts={"bc": MUJOCO_BC}),
}
# HalfCheetah-v5 with the position in its observation: HalfCheetah-v5's settings
TUNED["gailkit/HalfCheetahWithPosition-v5"] = TUNED["HalfCheetah-v5"]


def env_settings(env: str) -> EnvSettings:
    """``env``'s settings; UsageError naming the envs that have some."""
    if env not in TUNED:
        raise UsageError(f"--preset tuned: no tuned settings for {env}; envs with them: {', '.join(TUNED)} "
                         "(drop --preset and give the options)")
    return TUNED[env]


def tuned(algo: str, env: str) -> Tuned:
    """``algo``'s settings on ``env``: the fields of its config (``steps`` among them) and of its
    parts; UsageError for an env or algorithm with none."""
    from gailkit.agents.registry import algorithm

    settings, cls = env_settings(env), algorithm(algo)
    if algo not in settings.algos:
        raise UsageError(f"--preset tuned: no tuned settings for {algo} on {env}; algorithms with them: "
                         f"{', '.join(settings.algos)} (drop --preset and give the options)")
    names = {f.name for f in dataclasses.fields(cls.Config)}
    fields = {k: v for k, v in {**settings.common, **settings.per_algo.get(algo, {})}.items() if k in names}
    if "steps" in names and algo in settings.steps:
        fields["steps"] = settings.steps[algo]
    return Tuned(fields, {part: dict(f) for part, f in settings.parts.get(algo, {}).items()})


def tuned_run(algo: str, env: str, **fields: Any) -> tuple[Any, dict[str, Any]]:
    """The config of ``algo`` on ``env`` (``env`` set) with its tuned settings under ``fields``, and
    its parts' configs: what ``gailkit imitate ALGO --env ENV --preset tuned`` plus the flags of
    ``fields`` trains (``imitate(config, **parts)``)."""
    from gailkit.agents.registry import algorithm

    config = algorithm(algo).Config(**{**tuned(algo, env).fields, "env": env, **fields})
    return config, tuned_parts(algo, env)


def tuned_parts(algo: str, env: str) -> dict[str, Any]:
    """The configs of ``algo``'s parts that its settings on ``env`` change, by part name (the run
    seeds each with its own seed)."""
    from gailkit.agents.registry import algorithm

    cls = algorithm(algo)
    return {part: cls.parts[part](**fields) for part, fields in tuned(algo, env).parts.items()}
