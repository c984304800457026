"""DAC: off-policy adversarial imitation (Kostrikov et al., 2019).

The generator is SB3's SAC (continuous actions) or DQN (discrete) on gailkit's
:class:`~gailkit.buffers.NumbaReplayBuffer`, whose ``reward_fn`` asks the *current*
discriminator for the reward of every minibatch it samples: rewards never go stale in the
replay buffer. Episodes end in absorbing states (``--absorbing``, the default), so
termination neither leaks reward nor cuts bootstrapping. Every ``n_envs * n_steps``
environment steps the discriminator takes ``disc_updates`` steps on expert transitions vs.
uniform replay samples.

Checkpoints hold the policy and the discriminator; unlike GAIL/AIRL runs, DAC runs do not
resume (that would need the replay buffer on disk).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from gailkit.agents.imitation import ImitationConfig, ImitationRun
from gailkit.buffers import NumbaReplayBuffer
from gailkit.discriminators import DiscBatch, Discriminator, DiscriminatorConfig
from gailkit.nn.checkpoint import save_tensors

__all__ = ["DAC", "GENERATORS"]

# Off-policy generators: SB3 hyperparameters (RL Zoo's for SAC and CartPole's DQN).
GENERATORS: dict[str, dict[str, Any]] = {
    "sac": dict(learning_rate=1e-3, buffer_size=300_000, learning_starts=1000, batch_size=256, train_freq=1,
                gradient_steps=1),
    "dqn": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256])),
}


class _DACCallback(BaseCallback):
    def __init__(self, trainer: DAC, bar: tqdm):
        super().__init__()
        self.trainer, self.bar = trainer, bar

    def _on_step(self) -> bool:
        t, cfg = self.num_timesteps, self.trainer.config
        if t % (cfg.n_envs * cfg.n_steps) == 0:
            self.trainer.update_discriminator()
            self.bar.update(t - self.bar.n)
            if self.trainer.disc_stats:
                self.bar.set_postfix({"D acc": f"{self.trainer.disc_stats['accuracy']:.2f}"})
        if t % self.trainer.eval_every == 0:
            self.trainer._record(self.trainer.evaluate())
        return not self.trainer._stop


class DAC(ImitationRun):
    """Discriminator-actor-critic trainer owning a run directory."""

    def __init__(self, config: ImitationConfig, disc_config: DiscriminatorConfig | None = None, **kwargs: Any):
        super().__init__(config, disc_config, **kwargs)
        self.venv = make_vec_env(self._make_env, n_envs=config.n_envs, seed=config.seed)
        discrete = isinstance(self.venv.action_space, spaces.Discrete)
        algo, name = (DQN, "dqn") if discrete else (SAC, "sac")
        self.model = algo(
            "MlpPolicy", self.venv, gamma=config.gamma, seed=config.seed, device="cpu",
            replay_buffer_class=NumbaReplayBuffer,
            replay_buffer_kwargs={"seed": config.seed, "reward_fn": self._reward}, **GENERATORS[name],
        )
        self.disc = Discriminator(self.venv.observation_space, self.venv.action_space, self.disc_config)
        self.eval_every = max(1, config.eval_every // config.n_envs) * config.n_envs

    def _reward(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        rewards = self.disc.reward(obs, acts, next_obs, dones)
        return rewards

    def update_discriminator(self) -> None:
        """``disc_updates`` steps on expert data vs. uniform samples of the replay buffer."""
        buf = self.model.replay_buffer
        stored = (buf.buffer_size if buf.full else buf.pos) * buf.n_envs
        bs = self.disc_config.batch_size
        if stored < bs:
            return
        n = buf.n_envs
        for _ in range(self.config.disc_updates):
            flat = self.rng.integers(0, stored, size=bs)
            pos, env = flat // n, flat % n
            acts = buf.actions[pos, env]
            policy = DiscBatch.from_numpy(buf.observations[pos, env], acts.reshape(bs) if acts.shape[-1] == 1 and
                                          isinstance(self.venv.action_space, spaces.Discrete) else acts,
                                          buf.next_observations[pos, env],
                                          buf.dones[pos, env] * (1 - buf.timeouts[pos, env]))
            self.disc_stats = self.disc.train_step(self._expert_batch(bs), policy)
        self._log_disc(np.array([0.0]))

    def train(self, *, resume: bool = False) -> list[dict[str, float]]:
        """Run to ``config.steps``; returns the evaluation history."""
        if resume:
            raise ValueError("DAC runs cannot be resumed (the replay buffer is not checkpointed); start a new run")
        if (self.out / "checkpoint").exists():
            raise ValueError(f"{self.out} already holds a run; choose another --out")
        self._write_config()
        self._clock = time.perf_counter()
        self.writer = SummaryWriter(str(self.out / "tb"))
        self._record(self.evaluate())
        bar = tqdm(total=self.config.steps, unit="step", desc="DAC", disable=not self.config.progress,
                   dynamic_ncols=True)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self.model.learn(self.config.steps, callback=_DACCallback(self, bar))
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
        if self.history[-1]["steps"] != self.model.num_timesteps:
            self._record(self.evaluate())
        self.writer.close()
        self.save_checkpoint()
        self.save_policy()
        if self._stop:
            print(f"interrupted at {self.model.num_timesteps} steps; policy and discriminator saved in {self.out}")
        return self.history

    def save_checkpoint(self) -> Path:
        ckpt = self.out / "checkpoint"
        save_tensors(ckpt / "policy.safetensors", self.model.policy.state_dict())
        self.disc.save(ckpt)
        return ckpt
