"""The on-policy generator of imitation runs: PPO whose rollout is relabelled in one call.

:class:`PPORun` builds :class:`~gailkit.agents.sb3_adapter.RelabelingPPO` on ``n_envs``
training envs. A round collects ``n_envs x n_steps`` transitions, hands the whole rollout to
``_relabel`` (which writes the rewards PPO learns from: a discriminator's, or any learned
reward), runs GAE on them and takes PPO's update.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import is_image_space

from gailkit.agents.base import Run, TrainingConfig
from gailkit.agents.sb3_adapter import RelabelingPPO, update_progress
from gailkit.buffers import ImitationRolloutBuffer
from gailkit.configs import doc
from gailkit.errors import UsageError

__all__ = ["PPOOptions", "PPORun"]

field = dataclasses.field


@dataclasses.dataclass(kw_only=True)
class PPOOptions:
    """PPO's options (SB3's names and meanings)."""

    n_envs: int = field(default=8, metadata=doc("parallel environments"))
    n_steps: int = field(default=128, metadata=doc("steps per env per round"))
    batch_size: int = field(default=256, metadata=doc("PPO minibatch size"))
    n_epochs: int = field(default=10, metadata=doc("PPO epochs per round"))
    learning_rate: float = field(default=1e-3, metadata=doc("PPO learning rate"))
    gae_lambda: float = field(default=0.9, metadata=doc("GAE lambda, in [0, 1]"))
    ent_coef: float = field(default=0.01, metadata=doc("PPO entropy coefficient"))
    use_sde: bool = field(default=False, metadata=doc(
        "generalised state-dependent exploration for continuous actions"))
    fixed_std: float | None = field(default=None, metadata=doc(
        "hold the Gaussian policy's action standard deviation at this value instead of learning it "
        "(Box actions, without --use-sde; default: learned, starting at 1)"))

    bounds: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("n_envs", "n_steps", "batch_size", "n_epochs"), "[1, inf)"),
        "learning_rate": "(0, inf)", "gae_lambda": "[0, 1]", "ent_coef": "[0, inf)", "fixed_std": "(0, inf)"}


class PPORun(Run):
    """A run whose learner is PPO on relabelled rollouts; subclasses define ``_relabel``."""

    def __init__(self, config: Any, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.venv = self._vec_env(config.n_envs)
        policy = "CnnPolicy" if is_image_space(self.venv.observation_space) else "MlpPolicy"
        std = config.fixed_std
        if std is not None and (config.use_sde or not isinstance(self.venv.action_space, spaces.Box)):
            raise UsageError(f"--fixed-std {std}: needs a Box action space and no --use-sde "
                             f"({config.env} has {type(self.venv.action_space).__name__} actions"
                             f"{', and --use-sde is on' if config.use_sde else ''})")
        self.model = RelabelingPPO(
            policy, self.venv, n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
            learning_rate=config.learning_rate, gamma=config.gamma, gae_lambda=config.gae_lambda,
            ent_coef=config.ent_coef, seed=config.seed, device="cpu", relabel=self._relabel,
            use_sde=config.use_sde, sde_sample_freq=4 if config.use_sde else -1,
            policy_kwargs=None if std is None else {"log_std_init": math.log(std)},
        )
        if std is not None:  # no gradient, so PPO's Adam leaves it where it starts
            self.model.policy.log_std.requires_grad_(False)
        self.round_size = config.n_envs * config.n_steps

    def _relabel(self, buffer: ImitationRolloutBuffer) -> None:
        """Write the rewards PPO learns from into ``buffer.rewards`` (shape ``(n_steps, n_envs)``)."""
        raise NotImplementedError

    def _round(self, callback: BaseCallback) -> None:
        cfg: TrainingConfig = self.config
        self.model.collect_rollouts(self.venv, callback, self.model.rollout_buffer, self.model.n_steps)
        update_progress(self.model, cfg.steps)
        self.model.train()
