"""The on-policy generator of imitation runs: PPO whose rollout is relabelled in one call.

:class:`PPORun` builds :class:`~gailkit.agents.sb3_adapter.RelabelingPPO` on ``n_envs``
training envs. A round collects ``n_envs x n_steps`` transitions, hands the whole rollout to
``_relabel`` (which writes the rewards PPO learns from: a discriminator's, or any learned
reward), runs GAE on them and takes PPO's update.

With ``normalize_obs`` the policy and value see observations standardised by a running mean and
variance (:class:`NormalizedFlatten`, the job SB3's ``VecNormalize`` does for RL Zoo's MuJoCo
PPO). The statistics are buffers of the policy, so they travel with its weights into
checkpoints and ``policy.safetensors``. They move once per round, after PPO's update, by that
round's observations: within a round they are fixed, so the log-probabilities and values PPO
compares were taken through the same normalisation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from gailkit.agents.base import Run, TrainingConfig
from gailkit.agents.sb3_adapter import RelabelingPPO, update_progress
from gailkit.buffers import ImitationRolloutBuffer
from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.nn.blocks import RunningNorm

__all__ = ["NormalizedFlatten", "PPOOptions", "PPORun"]

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
    normalize_obs: bool = field(default=False, metadata=doc(
        "standardise the observations the policy and value see by their running mean and std (vector "
        "observations; the statistics are saved with the policy). Worth it on MuJoCo: GAIL on HalfCheetah-v5 "
        "reached 0.9 of the expert in 4.7x fewer steps (scripts/bench_imitation.py)"))

    bounds: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("n_envs", "n_steps", "batch_size", "n_epochs"), "[1, inf)"),
        "learning_rate": "(0, inf)", "gae_lambda": "[0, 1]", "ent_coef": "[0, inf)", "fixed_std": "(0, inf)"}


class NormalizedFlatten(BaseFeaturesExtractor):
    """SB3's ``FlattenExtractor`` followed by :class:`~gailkit.nn.blocks.RunningNorm` (clipped at
    10 std). Nothing moves the statistics but an explicit ``norm.update``; before the first,
    observations pass unchanged."""

    def __init__(self, observation_space: spaces.Space):
        dim = get_flattened_obs_dim(observation_space)
        super().__init__(observation_space, dim)
        self.flatten = nn.Flatten()
        self.norm = RunningNorm(dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.norm(self.flatten(observations))


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
        policy_kwargs: dict[str, Any] = {} if std is None else {"log_std_init": math.log(std)}
        if config.normalize_obs:
            if policy == "CnnPolicy":
                raise UsageError(f"--normalize-obs: needs vector observations; {config.env}'s are images, which "
                                 "the policy already scales to [0, 1] (drop --normalize-obs)")
            policy_kwargs["features_extractor_class"] = NormalizedFlatten
        self.model = RelabelingPPO(
            policy, self.venv, n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
            learning_rate=config.learning_rate, gamma=config.gamma, gae_lambda=config.gae_lambda,
            ent_coef=config.ent_coef, seed=config.seed, device="cpu", relabel=self._relabel,
            use_sde=config.use_sde, sde_sample_freq=4 if config.use_sde else -1,
            policy_kwargs=policy_kwargs or None,
        )
        if std is not None:  # no gradient, so PPO's Adam leaves it where it starts
            self.model.policy.log_std.requires_grad_(False)
        self.round_size = config.n_envs * config.n_steps

    @property
    def obs_norm(self) -> RunningNorm | None:
        """The policy's observation statistics (with ``normalize_obs``; shared by actor and critic)."""
        extractor = self.model.policy.features_extractor
        return extractor.norm if isinstance(extractor, NormalizedFlatten) else None

    def _relabel(self, buffer: ImitationRolloutBuffer) -> None:
        """Write the rewards PPO learns from into ``buffer.rewards`` (shape ``(n_steps, n_envs)``)."""
        raise NotImplementedError

    def _round(self, callback: BaseCallback) -> None:
        cfg: TrainingConfig = self.config
        self.model.collect_rollouts(self.venv, callback, self.model.rollout_buffer, self.model.n_steps)
        update_progress(self.model, cfg.steps)
        self.model.train()
        if self.obs_norm is not None:  # after the update: the next round collects and learns with the new statistics
            self.obs_norm.update(torch.from_numpy(self.model.rollout_buffer.observations))
