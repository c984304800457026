"""Adversarial imitation: the run loop shared by all learners, and GAIL / AIRL on PPO.

``ImitationRun`` owns what every adversarial learner shares (demonstrations, absorbing-state
expert data, evaluation, checkpoints, the round loop); ``AdversarialImitation`` (here) and
``DAC`` (``gailkit.agents.dac``) define a round. GAIL / AIRL round: PPO collects ``n_envs x n_steps`` transitions; the discriminator takes
``disc_updates`` steps on expert vs. those policy samples; the whole rollout is relabelled by
one batched ``Discriminator.reward`` call; GAE runs on the new rewards; PPO updates.

Resuming is exact. Every ``checkpoint_every`` steps the run saves its complete state and then
resets all training envs from seeds derived from (seed, checkpoint index); a resumed run
restores the state and performs the same reset, so it produces the same numbers as a run that
was never stopped. A checkpoint is one folder, swapped in whole and verified against its
manifest on load, so a run killed while saving resumes from the previous checkpoint. Ctrl-C
stops at the end of the current round, saves and raises :class:`~gailkit.errors.RunInterrupted`;
resuming from that checkpoint is valid but, having reset the envs at an unusual point, not
bitwise identical.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from torch.utils.tensorboard import SummaryWriter

import gailkit
from gailkit.agents.configs import ImitationConfig
from gailkit.agents.experts import rollout_episodes
from gailkit.agents.rollouts import ImitationRolloutBuffer, RelabelingPPO
from gailkit.agents.run import DEMOS_COPY, capture_rng, restore_rng, save_learning_curve
from gailkit.configs import config_from_dict, json_fields
from gailkit.data.demos import Demonstrations, load_demos
from gailkit.data.types import Transitions, flatten_trajectories
from gailkit.discriminators import DiscBatch, Discriminator, DiscriminatorConfig
from gailkit.envs.make import make_env
from gailkit.envs.wrappers import AbsorbingStateWrapper, absorbing_transitions
from gailkit.errors import RunInterrupted, UsageError
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
    verify_dir,
    write_json,
    write_verified_dir,
)
from gailkit.progress import progress_bar

__all__ = ["AdversarialImitation", "ImitationConfig", "normalised_return", "resolve_disc_config", "saved_configs"]


def normalised_return(value: float, expert: float | None, random_return: float | None) -> float | None:
    """``(R - random) / (expert - random)``, or None when either reference is unknown."""
    if expert is None or random_return is None or expert == random_return:
        return None
    return (value - random_return) / (expert - random_return)


class _Progress(BaseCallback):
    def __init__(self, bar: Any, trainer: ImitationRun):
        super().__init__()
        self.bar, self.trainer = bar, trainer

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        info = self.model.ep_info_buffer
        post = {"return": f"{np.mean([e['r'] for e in info]):.1f}" if info else "-"}
        if self.trainer.disc_stats:
            post["D acc"] = f"{self.trainer.disc_stats['accuracy']:.2f}"
        self.bar.set_postfix(post)


def resolve_disc_config(config: ImitationConfig, disc_config: DiscriminatorConfig | None) -> DiscriminatorConfig:
    """The discriminator config a run of ``config`` uses: defaults filled in for its algorithm."""
    disc_config = disc_config or DiscriminatorConfig(seed=config.seed)
    if config.algo == "airl" and not disc_config.airl:
        disc_config = dataclasses.replace(disc_config, airl=True)
    if disc_config.airl and disc_config.gamma != config.gamma:
        # the shaping term gamma * h(s') - h(s) leaves the optimal policy unchanged only
        # when it is discounted like the policy's return
        disc_config = dataclasses.replace(disc_config, gamma=config.gamma)
    if config.algo == "dac" and disc_config.reward is None:
        disc_config = dataclasses.replace(disc_config, reward="logit")  # stable with a Q-learner (tested)
    return disc_config


class ImitationRun:
    """What every adversarial learner shares: demonstrations, environments, the discriminator's
    expert data, evaluation and the run directory's records. Subclasses own ``self.model``."""

    def __init__(self, config: ImitationConfig, disc_config: DiscriminatorConfig | None = None,
                 *, demos: Demonstrations | None = None):
        self.config = config
        self.disc_config = resolve_disc_config(config, disc_config)
        self.out = Path(config.out)
        raw_env = make_env(config.env)
        self.demos = demos if demos is not None else load_demos(config.demos, env=raw_env)
        self.horizon = raw_env.spec.max_episode_steps if raw_env.spec else None
        raw_env.close()
        self.expert_data = self._expert_transitions()
        n_needed = self.disc_config.batch_size
        if len(self.expert_data) < n_needed:
            raise UsageError(f"{config.demos}: {len(self.expert_data)} expert transitions are too few for a "
                             f"discriminator batch of {n_needed}; record more episodes or pass a smaller "
                             f"--disc-batch-size")
        self.rng = np.random.default_rng(config.seed)
        self.disc_stats: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.writer: SummaryWriter | None = None
        self.checkpoint_index = 0
        card = self.demos.metadata.get("expert_card") or {}
        self.expert_return = card.get("return_mean")
        self.random_return = card.get("random_return_mean")
        self._stop = False

    # ----- environment and data ----------------------------------------------------------------
    def _make_env(self) -> gym.Env:
        env = make_env(self.config.env)
        return AbsorbingStateWrapper(env) if self.config.absorbing else env

    def _expert_transitions(self) -> Transitions:
        if self.config.absorbing:
            if self.horizon is None:
                raise UsageError(f"{self.config.env} has no max_episode_steps; --absorbing needs a horizon "
                                 "(pass --no-absorbing)")
            return absorbing_transitions(self.demos.trajectories, self.horizon)
        return flatten_trajectories(self.demos.trajectories)

    def _expert_batch(self, n: int) -> DiscBatch:
        i = self.rng.integers(0, len(self.expert_data), size=n)
        d = self.expert_data
        return DiscBatch.from_numpy(d.obs[i], d.acts[i], d.next_obs[i], d.dones[i], self._log_probs(d.obs[i], d.acts[i]))

    def _log_probs(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray | None:
        """``log pi(a|s)`` of the current policy where the discriminator needs it (AIRL)."""
        return None

    def _log_disc(self, rewards: np.ndarray, env_rewards: np.ndarray | None = None) -> None:
        if self.writer is None:
            return
        step = self.model.num_timesteps
        for key, value in self.disc_stats.items():
            self.writer.add_scalar(f"discriminator/{key}", value, step)
        self.writer.add_scalar("reward/learned_mean", float(rewards.mean()), step)
        if env_rewards is not None:
            self.writer.add_scalar("reward/env_mean", float(env_rewards.mean()), step)

    # ----- evaluation ---------------------------------------------------------------------------
    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        """Deterministic policy in the (wrapped) env on fixed evaluation seeds."""
        env = self._make_env()
        returns = np.array([t.episode_return for t in rollout_episodes(
            lambda o: self.model.predict(o, deterministic=True)[0], env,
            episodes or self.config.eval_episodes, seed=10_000_000, with_obs=False)])
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
            "imitation": {**json_fields(self.config), "demos": str(source)},
            "discriminator": dataclasses.asdict(self.disc_config),
            "demos": {"path": str(source), "copy": DEMOS_COPY, **self.demos.summary()},
            "expert_return": self.expert_return, "random_return": self.random_return,
            "versions": {"gailkit": gailkit.__version__, "stable_baselines3": stable_baselines3.__version__,
                         "torch": torch.__version__, "gymnasium": gym.__version__,
                         "python": platform.python_version()},
        })

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True

    def _record(self, result: dict[str, float]) -> None:
        """Append an evaluation (stamped with training wall time) and refresh eval.json and curve.png."""
        previous = self.history[-1].get("wall_s", 0.0) if self.history else 0.0
        now = time.perf_counter()
        result["wall_s"] = round(previous + now - self._clock, 2)
        self._clock = now
        self.history.append(result)
        if self.writer is not None:
            for key, value in result.items():
                if key not in ("steps", "wall_s"):
                    self.writer.add_scalar(f"eval/{key}", value, result["steps"])
        write_json(self.out / "eval.json", {"history": self.history, "expert_return": self.expert_return,
                                            "random_return": self.random_return})
        save_learning_curve(self.out / "curve.png", {self.config.algo.upper(): self.history},
                            title=f"{self.config.algo.upper()} on {self.config.env}",
                            expert=self.expert_return, random_return=self.random_return)

    def save_policy(self) -> Path:
        """The final policy alone, loadable with :func:`gailkit.agents.imitation.load_policy`."""
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

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Subclass state beyond weights, optimisers, RNGs and counters (tensors, JSON)."""
        return {}, {}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        pass

    def save_checkpoint(self) -> Path:
        """Everything a resumed run needs, as one folder swapped in whole and sealed by a manifest
        (a crash mid-save leaves the previous checkpoint, never a mix of old and new files)."""
        rng_tensors, rng_meta = capture_rng()
        extra_tensors, extra_state = self._extra_state()

        def write(ckpt: Path) -> None:
            save_tensors(ckpt / "policy.safetensors", self.model.policy.state_dict())
            for name, opt in self._optimizers().items():
                save_tensors(ckpt / f"{name}_optim.safetensors", optimizer_tensors(opt))
            self.disc.save(ckpt)
            save_tensors(ckpt / "rng.safetensors", rng_tensors)
            if extra_tensors:
                save_tensors(ckpt / "extra.safetensors", extra_tensors)
            write_json(ckpt / "state.json", {
                "num_timesteps": self.model.num_timesteps, "n_updates": self.model._n_updates,
                "checkpoint_index": self.checkpoint_index, "history": self.history, "rng": rng_meta,
                "trainer_rng": self.rng.bit_generator.state,
                "action_space_rng": self.model.action_space.np_random.bit_generator.state,
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
        self.disc = Discriminator.load(ckpt)
        restore_rng(load_tensors(ckpt / "rng.safetensors", what="run"), state["rng"])
        self.rng.bit_generator.state = state["trainer_rng"]
        self.model.action_space.np_random.bit_generator.state = state["action_space_rng"]
        self.model.num_timesteps = state["num_timesteps"]
        self.model._n_updates = state["n_updates"]
        self.checkpoint_index = state["checkpoint_index"]
        self.history = state["history"]
        extra = ckpt / "extra.safetensors"
        self._load_extra_state(load_tensors(extra, what="run") if extra.exists() else {}, state)

    def _checkpoint_boundary(self) -> None:
        """Save, then reset the envs: a resumed run starts from exactly this state."""
        self.checkpoint_index += 1
        self.save_checkpoint()
        self._reset_envs()

    def _reset_envs(self) -> None:
        """Reset every training env from a seed of (seed, checkpoint index): see module docstring."""
        self.venv.seed(self.config.seed + 7919 * (self.checkpoint_index + 1))
        self.model._last_obs = self.venv.reset()
        self.model._last_episode_starts = np.ones(self.venv.num_envs, dtype=bool)

    # ----- the loop -----------------------------------------------------------------------------
    round_size: int  # environment steps per round, set by subclasses

    def _round(self, callback: BaseCallback) -> None:
        """Collect one round of experience and update the generator (and the discriminator)."""
        raise NotImplementedError

    def _before_first_round(self) -> None:
        pass

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
        # logger and episode buffers; the schedules (e.g. DQN's exploration) run to config.steps
        self.model._setup_learn(max(0, cfg.steps - self.model.num_timesteps), callback=None,
                                reset_num_timesteps=False)
        self.writer = SummaryWriter(str(self.out / "tb"))

        def per(n: int) -> int:
            return max(1, round(n / self.round_size)) * self.round_size

        eval_every, ckpt_every = per(cfg.eval_every), per(cfg.checkpoint_every)
        bar = progress_bar(total=cfg.steps, initial=self.model.num_timesteps, unit="step", desc=cfg.algo.upper(),
                           enabled=cfg.progress, dynamic_ncols=True)
        callback = _Progress(bar, self)
        callback.init_callback(self.model)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        saved_at = self.model.num_timesteps if resume else None  # steps of the newest checkpoint
        try:
            if not self.history:
                self._record(self.evaluate())
            while self.model.num_timesteps < cfg.steps and not self._stop:
                self._round(callback)
                t = self.model.num_timesteps
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


class AdversarialImitation(ImitationRun):
    """GAIL / AIRL with a PPO generator, owning a run directory (see the module docstring)."""

    def __init__(self, config: ImitationConfig, disc_config: DiscriminatorConfig | None = None,
                 *, demos: Demonstrations | None = None):
        super().__init__(config, disc_config, demos=demos)
        self.venv = make_vec_env(self._make_env, n_envs=config.n_envs, seed=config.seed)
        self.model = RelabelingPPO(
            "MlpPolicy", self.venv, n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
            learning_rate=config.learning_rate, gamma=config.gamma, gae_lambda=config.gae_lambda,
            ent_coef=config.ent_coef, seed=config.seed, device="cpu", relabel=self._relabel,
            use_sde=config.use_sde, sde_sample_freq=4 if config.use_sde else -1,
        )
        self.disc = Discriminator(self.venv.observation_space, self.venv.action_space, self.disc_config)
        self.disc_updates = config.disc_updates
        self.round_size = config.n_envs * config.n_steps

    def _log_probs(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray | None:
        if not self.disc_config.airl:
            return None
        with torch.no_grad():
            obs_t, _ = self.model.policy.obs_to_tensor(obs)
            _, log_prob, _ = self.model.policy.evaluate_actions(obs_t, torch.as_tensor(acts))
        return log_prob.numpy()

    # ----- one round ------------------------------------------------------------------------------
    def _relabel(self, buffer: ImitationRolloutBuffer) -> None:
        flat = buffer.flat()
        n, bs = len(flat["obs"]), self.disc_config.batch_size
        for _ in range(self.disc_updates):
            j = self.rng.integers(0, n, size=bs)
            policy = DiscBatch.from_numpy(flat["obs"][j], flat["acts"][j], flat["next_obs"][j], flat["dones"][j],
                                          flat["log_probs"][j] if self.disc_config.airl else None)
            self.disc_stats = self.disc.train_step(self._expert_batch(bs), policy)
        if self.config.balance and self.disc_stats:
            acc = self.disc_stats["accuracy"]
            if acc > self.config.balance_high:
                self.disc_updates = max(1, self.disc_updates - 1)
            elif acc < self.config.balance_low:
                self.disc_updates = min(4 * self.config.disc_updates, self.disc_updates + 1)
        rewards = self.disc.reward(flat["obs"], flat["acts"], flat["next_obs"], flat["dones"],
                                   flat["log_probs"] if self.disc_config.airl else None)
        buffer.rewards[:] = rewards.reshape(buffer.rewards.shape)
        self._log_disc(rewards, flat["env_rewards"])
        if self.writer is not None:
            self.writer.add_scalar("discriminator/updates_per_round", self.disc_updates, self.model.num_timesteps)

    def _round(self, callback: BaseCallback) -> None:
        self.model.collect_rollouts(self.venv, callback, self.model.rollout_buffer, self.config.n_steps)
        self.model._update_current_progress_remaining(self.model.num_timesteps, self.config.steps)
        self.model.train()

    def _before_first_round(self) -> None:
        if self.config.bc_steps > 0:  # BC warm start of the actor
            from gailkit.agents.bc import BCConfig, pretrain_policy

            pretrain_policy(self.model.policy, self.expert_data,
                            BCConfig(steps=self.config.bc_steps, seed=self.config.seed), progress=False)

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"disc_updates": self.disc_updates}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.disc_updates = state["disc_updates"]


def saved_configs(directory: str | Path, **overrides: Any) -> tuple[ImitationConfig, DiscriminatorConfig]:
    """The configs a run directory was started with (``overrides`` replace imitation fields).

    ``demos`` points at the run's own copy when it has one, so the run does not depend on the
    directory it was started from.
    """
    directory = Path(directory)
    meta = read_json(directory / "config.json", what="run")
    fields = dict(meta["imitation"], **overrides)
    fields["out"] = directory
    if (directory / DEMOS_COPY).is_file():
        fields["demos"] = directory / DEMOS_COPY
    return (config_from_dict(ImitationConfig, fields, source=f"{directory / 'config.json'} (imitation)"),
            config_from_dict(DiscriminatorConfig, meta.get("discriminator", {}),
                             source=f"{directory / 'config.json'} (discriminator)"))
