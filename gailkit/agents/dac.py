"""DAC: discriminator-actor-critic, off-policy adversarial imitation (Kostrikov et al., 2019).

The learner is SAC (continuous actions) or DQN (discrete) on gailkit's replay buffer, whose
reward hook asks the *current* discriminator for the reward of every minibatch it samples:
rewards never go stale in the replay buffer. Episodes end in absorbing states (``--absorbing``,
the default), so termination neither leaks reward nor cuts bootstrapping. Every ``disc_every``
environment steps the discriminator takes ``disc_updates`` steps on expert transitions vs.
uniform replay samples.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from gailkit.agents.adversarial import AdversarialRun
from gailkit.agents.base import TrainingConfig
from gailkit.agents.offpolicy import OffPolicyOptions, OffPolicyRun
from gailkit.agents.perception_training import PerceptionTrainingOptions
from gailkit.agents.registry import register
from gailkit.configs import doc
from gailkit.discriminators import DiscBatch, DiscriminatorConfig
from gailkit.errors import UsageError

__all__ = ["DAC", "DACConfig"]

field = dataclasses.field


@dataclasses.dataclass(kw_only=True)
class DACConfig(PerceptionTrainingOptions, OffPolicyOptions, TrainingConfig):
    """What ``gailkit imitate dac`` takes (the discriminator's options are ``--disc-*``)."""

    disc_updates: int = field(default=4, metadata=doc("discriminator steps per update"))
    disc_every: int = field(default=256, metadata=doc(
        "environment steps between discriminator updates (a multiple of the learner's collection period: "
        "DQN 256 steps x n_envs, SAC n_envs)"))

    bounds: ClassVar[dict[str, str]] = {**TrainingConfig.bounds, **OffPolicyOptions.bounds,
                                        **PerceptionTrainingOptions.bounds, "disc_updates": "[1, inf)",
                                        "disc_every": "[1, inf)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_off_policy()
        self.check_perception_training()


@register("dac")
class DAC(AdversarialRun, OffPolicyRun):
    """Discriminator-actor-critic: an off-policy learner on the discriminator's reward."""

    Config = DACConfig

    def __init__(self, config: DACConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        if config.disc_every % self.round_size:
            raise UsageError(f"--disc-every {config.disc_every} must be a multiple of the learner's collection "
                             f"period ({self.round_size} environment steps)")

    @classmethod
    def disc_defaults(cls, config: DACConfig, disc: DiscriminatorConfig) -> DiscriminatorConfig:
        if disc.reward is None:  # log D - log(1 - D): stable with a Q-learner (tested)
            return dataclasses.replace(disc, reward="logit")
        return disc

    def _replay_options(self) -> dict[str, Any]:
        return {"reward_fn": self._reward}

    # the discriminator compares the expert's actions with replay actions in the env's units
    def _reward(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        return self.disc.reward(obs, self._env_actions(acts), next_obs, dones)

    def _after_collect(self) -> None:
        if self.model.num_timesteps % self.config.disc_every == 0:
            self.update_discriminator()

    def update_discriminator(self) -> None:
        """``disc_updates`` steps on expert data vs. uniform samples of the replay buffer."""
        buf = self.model.replay_buffer
        stored, bs, n = self._replay_size(), self.disc_config.batch_size, buf.n_envs
        if stored < bs:
            return
        for _ in range(self.config.disc_updates):
            flat = self.rng.integers(0, stored, size=bs)
            pos, env = flat // n, flat % n
            policy = DiscBatch.from_numpy(buf.observations[pos, env], self._env_actions(buf.actions[pos, env]),
                                          buf.next_observations[pos, env],
                                          buf.dones[pos, env] * (1 - buf.timeouts[pos, env]))
            self._train_disc(policy)
        self._log_disc(self.disc.reward(*[t.numpy() for t in policy[:4]]))  # rewards of the last policy batch
