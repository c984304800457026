"""A training run in a directory, for any imitation algorithm: no discriminator here.

:class:`Run` owns what every learner with environment steps shares: the demonstrations and the
expert transitions made from them, the training envs, evaluation on the library's evaluation
seeds, the records (``eval.json``, ``curve.png``, TensorBoard), checkpoints, exact resume and
Ctrl-C. A subclass builds ``self.model`` (an SB3 algorithm on ``self.venv``) and defines a
round (``_round``); :mod:`gailkit.agents.adversarial` adds a discriminator.

Resuming is exact. Every ``checkpoint_every`` steps the run saves its complete state and then
resets all training envs from seeds derived from (seed, checkpoint index); a resumed run
restores the state and performs the same reset, so it produces the same numbers as a run that
was never stopped. A checkpoint is one folder, swapped in whole and verified against its
manifest on load, so a run killed while saving resumes from the previous checkpoint. Ctrl-C
stops at the end of the current round, saves and raises :class:`~gailkit.errors.RunInterrupted`;
resuming from that checkpoint is valid but, having reset the envs at an unusual point, not
bitwise identical. So is extending a finished run whose ``steps`` is not a multiple of
``checkpoint_every``: its final save reset the envs too.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv, VecTransposeImage
from torch.utils.tensorboard import SummaryWriter

from gailkit.agents.experts import rollout_episodes
from gailkit.agents.perception import Perception, VecPerception
from gailkit.agents.perception_training import Episode, PerceptionTrainer
from gailkit.agents.run import DEMOS_COPY, capture_rng, restore_rng, save_learning_curve
from gailkit.agents.sb3_adapter import (
    counters,
    deterministic_policy,
    replace_observations,
    restart_episodes,
    restore_counters,
    start_learning,
)
from gailkit.configs import check_bounds, check_types, config_from_dict, doc, json_fields
from gailkit.data.demos import Demonstrations, load_demos
from gailkit.data.types import Transitions, flatten_trajectories
from gailkit.envs.make import make_env
from gailkit.envs.wrappers import AbsorbingStateWrapper, absorbing_transitions
from gailkit.errors import RunInterrupted, UsageError
from gailkit.evaluation import EVAL_SEED, normalised_return
from gailkit.nn.checkpoint import (
    CheckpointError,
    atomic_write,
    load_optimizer_tensors,
    load_tensors,
    load_weights,
    optimizer_tensors,
    read_json,
    recover_dir,
    save_tensors,
    tensors_under,
    verify_dir,
    write_json,
    write_verified_dir,
)
from gailkit.progress import progress_bar
from gailkit.versions import versions
from gailkit.zoo import resolve_demos

__all__ = ["Run", "RunConfig", "TrainingConfig", "references", "saved_run"]

TRAINED_PERCEPTION = "world_model"  # a run's trained world model (--perception-train), beside its policy
LEARNER_LOG_EVERY = 1000  # env steps between TensorBoard points of the learner's train/* scalars (or a longer round)

field = dataclasses.field


@dataclasses.dataclass(kw_only=True)
class RunConfig:
    """What every imitation algorithm takes."""

    env: str = field(metadata=doc("Gymnasium env id to imitate in"))
    demos: Path = field(metadata=doc("demonstration .npz file, or zoo:ENV for the zoo's (`gailkit zoo list`)"))
    out: Path = field(default=Path("runs/imitate"), metadata=doc("run directory"))
    seed: int = field(default=0, metadata=doc("random seed"))
    eval_episodes: int = field(default=10, metadata=doc("episodes per evaluation"))
    progress: bool = field(default=True, metadata=doc("show a progress bar"))
    perception: Path | None = field(default=None, metadata=doc(
        "a world model (from `gailkit worldmodel`) trained on this pixel env: the policy and the discriminator "
        "see its [z, h] instead of frames"))
    perception_memory: bool = field(default=True, metadata=doc(
        "with --perception: M's memory h beside V's z (--no-perception-memory: z alone)"))

    bounds: ClassVar[dict[str, str]] = {"seed": "[0, 2**32)", "eval_episodes": "[1, inf)"}

    def __post_init__(self) -> None:
        check_types(self)
        self.out = Path(self.out)
        if self.demos is not None:
            self.demos = resolve_demos(self.demos)
        if self.perception is not None:  # absolute: the run directory can be evaluated from anywhere
            self.perception = Path(self.perception).resolve()
        check_bounds(self, self.bounds)


@dataclasses.dataclass(kw_only=True)
class TrainingConfig(RunConfig):
    """What every algorithm that takes environment steps adds."""

    steps: int = field(default=100_000, metadata=doc("environment steps"))
    absorbing: bool = field(default=True, metadata=doc(
        "wrap the env in an absorbing state so termination cannot leak reward (use --no-absorbing "
        "for fixed-horizon ids such as gailkit/CartPoleFixedHorizon-v1)"))
    gamma: float = field(default=0.98, metadata=doc("discount, in (0, 1]"))
    eval_every: int = field(default=10_000, metadata=doc("steps between evaluations"))
    checkpoint_every: int = field(default=20_000, metadata=doc("steps between checkpoints"))

    bounds: ClassVar[dict[str, str]] = {**RunConfig.bounds, "steps": "[1, inf)", "gamma": "(0, 1]",
                                        "eval_every": "[1, inf)", "checkpoint_every": "[1, inf)"}


def references(demos: Demonstrations) -> tuple[float | None, float | None]:
    """The expert's and the random policy's mean returns from the demonstrations' expert card."""
    card = demos.metadata.get("expert_card") or {}
    return card.get("return_mean"), card.get("random_return_mean")


def saved_run(directory: str | Path) -> dict[str, Any]:
    """``config.json`` of an imitation run; UsageError naming what the folder is otherwise."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"run directory {directory} does not exist; train one with `gailkit imitate`")
    meta = read_json(directory / "config.json", what="run")
    if "algo" not in meta or "config" not in meta:
        kind = ("an expert directory: evaluate it with `gailkit expert eval --expert DIR`" if "preset" in meta
                else "not an imitation run (its config.json has no 'algo' entry)")
        raise UsageError(f"{directory} is {kind}")
    return meta


class _Progress(BaseCallback):
    def __init__(self, bar: Any, run: Run):
        super().__init__()
        self.bar, self.run = bar, run

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        info = self.model.ep_info_buffer
        post = {"return": f"{np.mean([e['r'] for e in info]):.1f}" if info else "-"}
        if "accuracy" in self.run.stats:
            post["D acc"] = f"{self.run.stats['accuracy']:.2f}"
        self.bar.set_postfix(post)


class Run:
    """A run of one imitation algorithm in ``config.out`` (see the module docstring).

    Subclasses set ``Config`` (their options), ``parts`` (option groups of their parts, each a
    keyword of ``__init__`` and a ``--PART-*`` flag group; ``fixed`` names the part fields the
    algorithm sets itself, which get no flag), ``self.model``, ``self.venv`` and
    ``round_size``, and define ``_round``. ``former_defaults`` keeps runs saved before a default
    changed on the values they ran with. Registered with :func:`gailkit.agents.registry.register`.
    """

    Config: ClassVar[type] = TrainingConfig
    parts: ClassVar[dict[str, type]] = {}
    fixed: ClassVar[dict[str, tuple[str, ...]]] = {}  # part fields the algorithm sets itself (no flags)
    name: ClassVar[str] = "run"
    resumable: ClassVar[bool] = True
    # options whose default changed: a saved run without them ran with these values, not today's defaults
    former_defaults: ClassVar[dict[str, Any]] = {}
    model: BaseAlgorithm
    venv: VecEnv
    round_size: int  # environment steps per round

    @classmethod
    def same_option(cls, name: str, asked: Any, saved: Any, meta: dict[str, Any]) -> bool:
        """Whether option ``name`` set to ``asked`` is what the run saved with ``saved`` (None: the
        default of then) and metadata ``meta`` (its ``config.json``) ran with. Here: the same text;
        a run whose options have several spellings of one value, or none that matters, says so."""
        return str(asked) == str(saved)

    def __init__(self, config: TrainingConfig, *, demos: Demonstrations | None = None):
        self.config = config
        self.out = Path(config.out)
        raw_env = make_env(config.env)
        self.perception, self.trainer = None, None
        if getattr(config, "perception", None) is not None:
            self.perception = Perception(config.perception, memory=config.perception_memory)
            self.perception.check(config.env, raw_env.observation_space)
            if getattr(config, "perception_train", "none") != "none":
                self.trainer = PerceptionTrainer(self.perception.model, config, config.seed)
        self.demos = demos if demos is not None else load_demos(config.demos, env=raw_env)
        if self.perception is not None and self.demos.observation_space.shape == (64, 64, 3):
            self.demos = self._encode_demos(self.demos)
        self.horizon = raw_env.spec.max_episode_steps if raw_env.spec else None
        raw_env.close()
        self.expert_data = self._expert_transitions()
        self.rng = np.random.default_rng(config.seed)
        self.stats: dict[str, float] = {}  # the latest training statistics (progress bar, logs)
        self.history: list[dict[str, float]] = []
        self.writer: SummaryWriter | None = None
        self.checkpoint_index = 0
        self.expert_return, self.random_return = references(self.demos)
        self._stop = False

    @classmethod
    def resolve_parts(cls, config: Any, parts: dict[str, Any]) -> dict[str, Any]:
        """The part configs a run of ``config`` uses given the caller's ``parts`` (by part name;
        absent ones mean defaults): the algorithm's defaults filled in."""
        return parts

    def part_configs(self) -> dict[str, Any]:
        """The configs of this run's parts, by part name, as it uses them (defaults resolved)."""
        return {}

    # ----- environment and data ----------------------------------------------------------------
    def _encode_demos(self, demos: Demonstrations) -> Demonstrations:
        """Pixel demonstrations as the perception's ``[z, h]`` (V's posterior means)."""
        if self.trainer is not None:  # the world model trains on the expert's frames too
            if any(t.rews is None for t in demos.trajectories):
                raise UsageError(f"{self.config.demos}: --perception-train trains M, whose loss needs the expert's "
                                 "rewards; record the demonstrations with rewards (gailkit demos collect does)")
            self.pixel_demos = demos
        return self.perception.encode_demos(demos)

    def _make_env(self) -> gym.Env:
        env = make_env(self.config.env)
        if self.perception is not None:
            env = self.perception.wrap(env)
        return AbsorbingStateWrapper(env) if getattr(self.config, "absorbing", False) else env

    def _vec_env(self, n_envs: int) -> VecEnv:
        """``n_envs`` training envs, seeded by the run's seed. Through a perception they are one
        vector whose frames V encodes together (unless an absorbing state wraps each env)."""
        if self.perception is not None and not getattr(self.config, "absorbing", False):
            frames = make_vec_env(lambda: make_env(self.config.env), n_envs=n_envs, seed=self.config.seed)
            return VecPerception(frames, self.perception,
                                 on_episode=None if self.trainer is None else self.trainer.add_episode)
        venv = make_vec_env(self._make_env, n_envs=n_envs, seed=self.config.seed)
        # frames channels-first, as SB3's CNN policies take them
        return VecTransposeImage(venv) if is_image_space(venv.observation_space) else venv

    def _expert_transitions(self) -> Transitions:
        if getattr(self.config, "absorbing", False):
            if self.horizon is None:
                raise UsageError(f"{self.config.env} has no max_episode_steps; --absorbing needs a horizon "
                                 "(pass --no-absorbing)")
            return absorbing_transitions(self.demos.trajectories, self.horizon)
        return flatten_trajectories(self.demos.trajectories)

    def _train_perception(self) -> None:
        """One update of the perception's world model (:mod:`gailkit.agents.perception_training`),
        then every latent the run holds recomputed with it."""
        expert = [Episode(t.obs, t.acts, t.rews, t.terminal) for t in self.pixel_demos.trajectories]
        stats = self.trainer.update(expert)
        if stats:
            self._log("perception", stats)
            self._follow_perception()
            self._relatent_experience()
            replace_observations(self.model, self.venv.refresh())

    def _relatent_experience(self) -> None:
        """Stored experience in latents (a replay buffer's) encoded again after a perception update."""

    def _follow_perception(self) -> None:
        """The expert's latents from the perception's current V and M."""
        self.demos = self.perception.encode_demos(self.pixel_demos)
        self.expert_data = self._expert_transitions()

    # ----- evaluation and records ---------------------------------------------------------------
    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        """Deterministic policy in the (wrapped) env on the evaluation seeds
        (:data:`gailkit.evaluation.EVAL_SEED`)."""
        env = self._make_env()
        returns = np.array([t.episode_return for t in rollout_episodes(
            deterministic_policy(self.model.policy), env,
            episodes or self.config.eval_episodes, seed=EVAL_SEED, with_obs=False)])
        env.close()
        result = {"steps": int(self.model.num_timesteps), "return_mean": float(returns.mean()),
                  "return_std": float(returns.std())}
        norm = normalised_return(result["return_mean"], self.expert_return, self.random_return)
        if norm is not None:
            result["normalised"] = norm
        return result

    def _write_config(self) -> None:
        """``config.json`` and the run's own copy of the demonstrations (``demos.npz``): a run
        directory can be moved, evaluated and resumed from anywhere."""
        source = Path(self.config.demos).resolve()
        atomic_write(self.out / DEMOS_COPY, lambda tmp: shutil.copyfile(source, tmp))
        write_json(self.out / "config.json", {
            "algo": self.name,
            "config": {**json_fields(self.config), "demos": str(source)},
            **{part: dataclasses.asdict(cfg) for part, cfg in self.part_configs().items()},
            "demos": {"path": str(source), "copy": DEMOS_COPY, **self.demos.summary()},
            "expert_return": self.expert_return, "random_return": self.random_return,
            "versions": versions(),
        })

    def _log(self, prefix: str, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, self.model.num_timesteps)

    def _log_learner(self) -> None:
        """The learner's own training scalars (SB3's ``train/*``: PPO's losses, KL and std; SAC's
        losses and entropy coefficient; DQN's loss), as its last update left them."""
        values = self.model.logger.name_to_value
        self._log("train", {k.removeprefix("train/"): float(v) for k, v in values.items() if k.startswith("train/")})
        values.clear()
        self._learner_logged_at = self.model.num_timesteps

    def _record(self, result: dict[str, float]) -> None:
        """Append an evaluation (stamped with training wall time) and refresh eval.json and curve.png."""
        previous = self.history[-1].get("wall_s", 0.0) if self.history else 0.0
        now = time.perf_counter()
        result["wall_s"] = round(previous + now - self._clock, 2)
        self._clock = now
        self.history.append(result)
        self._log("eval", {k: v for k, v in result.items() if k not in ("steps", "wall_s")})
        write_json(self.out / "eval.json", {"history": self.history, "expert_return": self.expert_return,
                                            "random_return": self.random_return})
        label = self.name.upper()
        save_learning_curve(self.out / "curve.png", {label: self.history}, title=f"{label} on {self.config.env}",
                            expert=self.expert_return, random_return=self.random_return)

    def save_policy(self) -> Path:
        """The final policy alone (``policy.safetensors``), loaded by :meth:`load`; with
        ``--perception-train``, the trained world model beside it (``world_model/``)."""
        if self.trainer is not None:
            self.perception.model.save(self.out / TRAINED_PERCEPTION)
        save_tensors(self.out / "policy.safetensors", self.model.policy.state_dict())
        return self.out / "policy.safetensors"

    # ----- checkpoints ------------------------------------------------------------------------
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser of the generator, by name."""
        found = {"policy": getattr(self.model.policy, "optimizer", None),
                 "actor": getattr(getattr(self.model, "actor", None), "optimizer", None),
                 "critic": getattr(getattr(self.model, "critic", None), "optimizer", None),
                 "ent_coef": getattr(self.model, "ent_coef_optimizer", None)}
        return {name: opt for name, opt in found.items() if opt is not None}

    def _save_parts(self, directory: Path) -> None:
        """Write the state of the run's parts (e.g. a discriminator) into a checkpoint folder."""

    def _load_parts(self, directory: Path) -> None:
        """Inverse of :meth:`_save_parts`."""

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Subclass state beyond weights, optimisers, parts, RNGs and counters (tensors, JSON)."""
        return {}, {}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Inverse of :meth:`_extra_state`."""

    def save_checkpoint(self) -> Path:
        """Everything a resumed run needs, as one folder swapped in whole and sealed by a manifest
        (a crash mid-save leaves the previous checkpoint, never a mix of old and new files)."""
        rng_tensors, rng_meta = capture_rng()
        extra_tensors, extra_state = self._extra_state()
        perception_tensors, perception_state = self.trainer.state() if self.trainer is not None else ({}, None)

        def write(ckpt: Path) -> None:
            save_tensors(ckpt / "policy.safetensors", self.model.policy.state_dict())
            for name, opt in self._optimizers().items():
                save_tensors(ckpt / f"{name}_optim.safetensors", optimizer_tensors(opt))
            self._save_parts(ckpt)
            save_tensors(ckpt / "rng.safetensors", rng_tensors)
            if extra_tensors:
                save_tensors(ckpt / "extra.safetensors", extra_tensors)
            if perception_tensors:
                save_tensors(ckpt / "perception.safetensors", perception_tensors)
            write_json(ckpt / "state.json", {
                "num_timesteps": self.model.num_timesteps, "counters": counters(self.model),
                "checkpoint_index": self.checkpoint_index, "history": self.history, "rng": rng_meta,
                "trainer_rng": self.rng.bit_generator.state,
                "action_space_rng": self.model.action_space.np_random.bit_generator.state,
                **({} if perception_state is None else {"perception_training": perception_state}),
                **extra_state,
            })

        return write_verified_dir(self.out / "checkpoint", write)

    def load_checkpoint(self) -> None:
        ckpt = recover_dir(self.out / "checkpoint")  # this process owns the run folder (claim_run_dir)
        if not ckpt.is_dir():
            raise CheckpointError(f"--resume: {self.out} holds a run that stopped before its first checkpoint; "
                                  "nothing to resume: delete the folder and start the run again")
        verify_dir(ckpt, what="run")
        state = read_json(ckpt / "state.json", what="run")
        load_weights(self.model.policy, ckpt / "policy.safetensors", what="run")
        for name, opt in self._optimizers().items():
            load_optimizer_tensors(opt, load_tensors(ckpt / f"{name}_optim.safetensors", what="run"))
        self._load_parts(ckpt)
        restore_rng(load_tensors(ckpt / "rng.safetensors", what="run"), state["rng"])
        self.rng.bit_generator.state = state["trainer_rng"]
        self.model.action_space.np_random.bit_generator.state = state["action_space_rng"]
        self.model.num_timesteps = state["num_timesteps"]
        restore_counters(self.model, state["counters"])
        self.checkpoint_index = state["checkpoint_index"]
        self.history = state["history"]
        extra = ckpt / "extra.safetensors"
        self._load_extra_state(load_tensors(extra, what="run") if extra.exists() else {}, state)
        if self.trainer is not None:
            self.trainer.load_state(load_tensors(ckpt / "perception.safetensors", what="run"),
                                    state["perception_training"])
            self._follow_perception()

    def _checkpoint_boundary(self) -> None:
        """Save, then reset the envs: a resumed run starts from exactly this state."""
        self.checkpoint_index += 1
        self.save_checkpoint()
        self._reset_envs()

    def _reset_envs(self) -> None:
        """Reset every training env from a seed of (seed, checkpoint index): see module docstring."""
        self.venv.seed(self.config.seed + 7919 * (self.checkpoint_index + 1))
        restart_episodes(self.model, self.venv.reset())

    # ----- the loop -----------------------------------------------------------------------------
    def _round(self, callback: BaseCallback) -> None:
        """Collect one round of experience and update the learner (and its parts)."""
        raise NotImplementedError

    def _before_first_round(self) -> None:
        """Work a new run does once, before its first evaluation (e.g. a BC warm start)."""

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True

    def train(self, *, resume: bool = False) -> list[dict[str, float]]:
        """Run to ``config.steps``; returns the evaluation history.

        The caller owns the run directory (:func:`gailkit.agents.run.claim_run_dir`).

        Raises:
            RunInterrupted: Ctrl-C (SIGINT). The first one finishes the current round and writes
                a checkpoint; a second one stops at once, keeping the previous checkpoint. The
                message says which checkpoint a ``--resume`` continues from.
        """
        cfg = self.config
        self._clock = time.perf_counter()
        if resume:
            self.load_checkpoint()
        else:
            self._write_config()
            self._before_first_round()
        self._reset_envs()
        start_learning(self.model, cfg.steps)  # logger and episode buffers; schedules run to cfg.steps
        self.writer = SummaryWriter(str(self.out / "tb"))

        def per(n: int) -> int:
            return max(1, round(n / self.round_size)) * self.round_size

        eval_every, ckpt_every = per(cfg.eval_every), per(cfg.checkpoint_every)
        perception_every = per(getattr(cfg, "perception_every", 1))
        bar = progress_bar(total=cfg.steps, initial=self.model.num_timesteps, unit="step", desc=self.name.upper(),
                           enabled=cfg.progress, dynamic_ncols=True)
        callback = _Progress(bar, self)
        callback.init_callback(self.model)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        saved_at = self.model.num_timesteps if resume else None  # steps of the newest checkpoint
        try:
            if not self.history:
                self._record(self.evaluate())
            self._learner_logged_at = self.model.num_timesteps
            while self.model.num_timesteps < cfg.steps and not self._stop:
                self._round(callback)
                t = self.model.num_timesteps
                if t - self._learner_logged_at >= LEARNER_LOG_EVERY or t >= cfg.steps:
                    self._log_learner()
                if self.trainer is not None and t % perception_every == 0:
                    self._train_perception()
                if t % eval_every == 0 or t >= cfg.steps:
                    self._record(self.evaluate())
                if t % ckpt_every == 0 or t >= cfg.steps or self._stop:
                    self._checkpoint_boundary()
                    saved_at = t
            if self._stop and saved_at != self.model.num_timesteps:  # stopped before the first round
                self._checkpoint_boundary()
                saved_at = self.model.num_timesteps
        except KeyboardInterrupt:  # the second Ctrl-C: no time to save
            raise RunInterrupted(self._interrupted(saved_at, self.model.num_timesteps)) from None
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
            self.writer.close()
        if self._stop and self.model.num_timesteps < cfg.steps:
            raise RunInterrupted(self._interrupted(saved_at, self.model.num_timesteps))
        self.save_policy()
        return self.history

    def _interrupted(self, saved_at: int | None, now: int) -> str:
        if saved_at is None:
            return (f"interrupted at {now:,} steps, before the first checkpoint: nothing to resume; delete "
                    f"{self.out} and start the run again")
        return (f"interrupted at {now:,} steps; the checkpoint in {self.out / 'checkpoint'} holds step "
                f"{saved_at:,}: continue with the same command and --resume")

    # ----- a saved run ------------------------------------------------------------------------
    @classmethod
    def saved_configs(cls, directory: str | Path, **overrides: Any) -> tuple[Any, dict[str, Any]]:
        """The config and part configs a run directory was started with (``overrides`` replace
        config fields). ``demos`` points at the run's own copy when it has one, so the run does
        not depend on the directory it was started from."""
        directory = Path(directory)
        meta = read_json(directory / "config.json", what="run")
        source = directory / "config.json"
        fields = {**cls.former_defaults, **meta["config"], **overrides}
        fields["out"] = directory
        if (directory / DEMOS_COPY).is_file():
            fields["demos"] = directory / DEMOS_COPY
        config = config_from_dict(cls.Config, fields, source=f"{source} (config)")
        parts = {part: config_from_dict(part_cls, meta.get(part, {}), source=f"{source} ({part})")
                 for part, part_cls in cls.parts.items()}
        return config, parts

    @classmethod
    def load(cls, directory: str | Path) -> Run:
        """Rebuild a run from its directory with its final (or latest checkpoint's) policy."""
        directory = Path(directory)
        config, parts = cls.saved_configs(directory, progress=False)
        run = cls(config, **parts)
        path = directory / "policy.safetensors"
        if not path.exists():  # an unfinished run: its last checkpoint
            path = verify_dir(directory / "checkpoint", what="run") / "policy.safetensors"
        load_weights(run.model.policy, path, what="run")
        if run.trainer is not None:  # the world model as the run trained it
            model, trained = run.perception.model, directory / TRAINED_PERCEPTION
            if trained.is_dir():
                load_weights(model.vae, trained / "vae.safetensors", what="run")
                load_weights(model.mdn, trained / "mdn_rnn.safetensors", what="run")
            else:
                tensors = load_tensors(path.parent / "perception.safetensors", what="run")
                model.vae.load_state_dict(tensors_under(tensors, "vae."))
                model.mdn.load_state_dict(tensors_under(tensors, "mdn."))
        return run
