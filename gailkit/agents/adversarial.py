"""A run with a discriminator: the reward of an adversarial imitation learner.

:class:`AdversarialRun` adds to :class:`~gailkit.agents.base.Run` the discriminator (its
config is the ``disc`` part: ``--disc-*`` flags), expert minibatches for it, its logs and its
place in every checkpoint. Combine it with a generator (``gailkit.agents.onpolicy.PPORun``,
``gailkit.agents.offpolicy.OffPolicyRun``) in an algorithm's file, e.g.
``class GAIL(AdversarialRun, PPORun)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gailkit.agents.base import Run, TrainingConfig
from gailkit.discriminators import DiscBatch, Discriminator, DiscriminatorConfig
from gailkit.errors import UsageError

__all__ = ["AdversarialRun"]


class AdversarialRun(Run):
    """A run whose reward is a discriminator trained on expert vs. policy transitions."""

    parts: ClassVar[dict[str, type]] = {"disc": DiscriminatorConfig}
    # the run's seed, and AIRL's form, discount and absorbing state, which the algorithm decides
    fixed: ClassVar[dict[str, tuple[str, ...]]] = {"disc": ("seed", "airl", "gamma", "absorbing")}
    airl: ClassVar[bool] = False  # whether the algorithm feeds the discriminator log pi(a|s) (AIRL's form)

    def __init__(self, config: TrainingConfig, *, disc: DiscriminatorConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)  # the generator's __init__ builds self.venv and self.model
        self.disc_config = self.resolve_parts(config, {"disc": disc})["disc"]
        n_needed = self.disc_config.batch_size
        if len(self.expert_data) < n_needed:
            raise UsageError(f"{config.demos}: {len(self.expert_data)} expert transitions are too few for a "
                             f"discriminator batch of {n_needed}; record more episodes or pass a smaller "
                             f"--disc-batch-size")
        self.disc = Discriminator(self.venv.observation_space, self.venv.action_space, self.disc_config)

    @classmethod
    def resolve_parts(cls, config: Any, parts: dict[str, Any]) -> dict[str, Any]:
        # the run's seed, whatever the given config's: a run is its config's seed, however it is started
        disc = dataclasses.replace(parts.get("disc") or DiscriminatorConfig(), seed=config.seed)
        if disc.airl and not cls.airl:
            raise UsageError(f"{cls.name}: DiscriminatorConfig(airl=True) is AIRL's discriminator, which needs the "
                             "policy's log-probabilities; train the airl algorithm instead")
        return {**parts, "disc": cls.disc_defaults(config, disc)}

    @classmethod
    def disc_defaults(cls, config: Any, disc: DiscriminatorConfig) -> DiscriminatorConfig:
        """The discriminator config this algorithm uses given the user's (its defaults filled in)."""
        return disc

    def part_configs(self) -> dict[str, Any]:
        return {"disc": self.disc_config}

    def _save_parts(self, directory: Path) -> None:
        self.disc.save(directory)

    def _load_parts(self, directory: Path) -> None:
        self.disc = Discriminator.load(directory)

    def _log_probs(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray | None:
        """``log pi(a|s)`` of the current policy where the discriminator needs it (AIRL)."""
        return None

    def _expert_batch(self, n: int) -> DiscBatch:
        i = self.rng.integers(0, len(self.expert_data), size=n)
        d = self.expert_data
        return DiscBatch.from_numpy(d.obs[i], d.acts[i], d.next_obs[i], d.dones[i],
                                    self._log_probs(d.obs[i], d.acts[i]))

    def _train_disc(self, policy: DiscBatch) -> None:
        """One discriminator step on an expert batch vs. ``policy``."""
        self.stats = self.disc.train_step(self._expert_batch(len(policy.obs)), policy)

    def _log_disc(self, rewards: np.ndarray, env_rewards: np.ndarray | None = None) -> None:
        self._log("discriminator", self.stats)
        self._log("reward", {"learned_mean": float(rewards.mean()),
                             **({} if env_rewards is None else {"env_mean": float(env_rewards.mean())})})

