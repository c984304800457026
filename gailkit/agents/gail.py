"""GAIL (Ho & Ermon, 2016) and AIRL (Fu et al., 2018) with a PPO generator.

A round: PPO collects ``n_envs x n_steps`` transitions; the discriminator takes
``disc_updates`` steps on expert vs. those policy samples; the whole rollout is relabelled by
one batched ``Discriminator.reward`` call; GAE runs on the new rewards; PPO updates. AIRL is
GAIL with the discriminator in AIRL's form, ``logit = f(s, a, s') - log pi(a|s)`` with
``f = g + gamma * h(s') - h(s)`` (:mod:`gailkit.discriminators`). Dream GAIL is GAIL whose PPO
collects in a world model's dream (:mod:`gailkit.agents.dream`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from gailkit.agents.adversarial import AdversarialRun
from gailkit.agents.base import TrainingConfig
from gailkit.agents.cloning import BCConfig, pretrain_policy
from gailkit.agents.dream import DreamOptions, DreamRun
from gailkit.agents.onpolicy import PPOOptions, PPORun
from gailkit.agents.perception_training import PerceptionTrainingOptions
from gailkit.agents.registry import register
from gailkit.buffers import ImitationRolloutBuffer
from gailkit.configs import doc
from gailkit.discriminators import DiscBatch, DiscriminatorConfig
from gailkit.errors import UsageError
from gailkit.nn.blocks import RunningNorm
from gailkit.nn.checkpoint import tensors_under

__all__ = ["AIRL", "AIRLConfig", "DreamGAIL", "DreamGAILConfig", "GAIL", "GAILConfig"]

field = dataclasses.field


@dataclasses.dataclass(kw_only=True)
class GAILConfig(PerceptionTrainingOptions, PPOOptions, TrainingConfig):
    """What ``gailkit imitate gail`` takes (the discriminator's options are ``--disc-*``)."""

    disc_updates: int = field(default=16, metadata=doc("discriminator steps per round"))
    balance: bool = field(default=False, metadata=doc(
        "adapt disc_updates to keep the discriminator's accuracy in [balance_low, balance_high]"))
    balance_low: float = field(default=0.6, metadata=doc("lower accuracy bound"))
    balance_high: float = field(default=0.85, metadata=doc("upper accuracy bound"))
    bc_steps: int = field(default=0, metadata=doc("behaviour-cloning steps that warm-start the actor (0: none)"))
    clip_actions: bool = field(default=False, metadata=doc(
        "show the discriminator the actions the env ran (PPO's Gaussian samples clipped to a Box action "
        "space, AIRL's log pi taken there), not the unclipped samples"))
    normalize_reward: bool = field(default=False, metadata=doc(
        "standardise the learned reward by its running mean and std before PPO sees it (the imitation library's "
        "normalize_output_layer); the discriminator, its logs and a transferred reward keep the raw reward"))

    bounds: ClassVar[dict[str, str]] = {**TrainingConfig.bounds, **PPOOptions.bounds,
                                        **PerceptionTrainingOptions.bounds, "disc_updates": "[1, inf)",
                                        "balance_low": "[0, 1]", "balance_high": "[0, 1]", "bc_steps": "[0, inf)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.balance_high <= self.balance_low:
            raise UsageError(f"--balance-high {self.balance_high} must exceed --balance-low {self.balance_low}")
        self.check_perception_training()


@register("gail")
class GAIL(AdversarialRun, PPORun):
    """Generative adversarial imitation learning with a PPO generator."""

    Config = GAILConfig

    def __init__(self, config: GAILConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.disc_updates = config.disc_updates
        self.reward_norm = RunningNorm(1)  # moved only with --normalize-reward

    def _relabel(self, buffer: ImitationRolloutBuffer) -> None:
        flat = buffer.flat()
        n, bs = len(flat["obs"]), self.disc_config.batch_size
        log_probs = flat["log_probs"] if self.disc_config.airl else None
        space = self.venv.action_space
        if self.config.clip_actions and isinstance(space, gym.spaces.Box):
            # the expert's actions are ones its env ran; a sample outside the box ran as its clipped value
            flat = {**flat, "acts": np.clip(flat["acts"], space.low, space.high)}
            if log_probs is not None:
                log_probs = self._log_probs(flat["obs"], flat["acts"])
        for _ in range(self.disc_updates):
            j = self.rng.integers(0, n, size=bs)
            self._train_disc(DiscBatch.from_numpy(flat["obs"][j], flat["acts"][j], flat["next_obs"][j],
                                                  flat["dones"][j], None if log_probs is None else log_probs[j]))
        if self.config.balance and self.stats:
            acc = self.stats["accuracy"]
            if acc > self.config.balance_high:
                self.disc_updates = max(1, self.disc_updates - 1)
            elif acc < self.config.balance_low:
                self.disc_updates = min(4 * self.config.disc_updates, self.disc_updates + 1)
        rewards = self.disc.reward(flat["obs"], flat["acts"], flat["next_obs"], flat["dones"], log_probs)
        self._log_disc(rewards, flat["env_rewards"])
        if self.config.normalize_reward:  # this rollout's rewards count in the statistics that scale them
            r = torch.from_numpy(rewards).double().reshape(-1, 1)
            self.reward_norm.update(r)
            rewards = self.reward_norm(r).numpy().astype(np.float32)
        buffer.rewards[:] = rewards.reshape(buffer.rewards.shape)
        self._log("discriminator", {"updates_per_round": self.disc_updates})

    def _before_first_round(self) -> None:
        if self.config.bc_steps > 0:  # BC warm start of the actor
            if self.obs_norm is not None:  # the actor is cloned through the statistics PPO will start from
                self.obs_norm.update(torch.tensor(self.expert_data.obs))
            pretrain_policy(self.model.policy, self.expert_data,
                            BCConfig(steps=self.config.bc_steps, seed=self.config.seed), progress=False)

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"reward_norm.{k}": v for k, v in self.reward_norm.state_dict().items()}
        return tensors if self.config.normalize_reward else {}, {"disc_updates": self.disc_updates}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.disc_updates = state["disc_updates"]
        if self.config.normalize_reward:
            self.reward_norm.load_state_dict(tensors_under(tensors, "reward_norm."))


@dataclasses.dataclass(kw_only=True)
class AIRLConfig(GAILConfig):
    """What ``gailkit imitate airl`` takes (the discriminator's options are ``--disc-*``)."""


@register("airl")
class AIRL(GAIL):
    """Adversarial inverse RL: GAIL with AIRL's discriminator, whose ``g`` is a transferable reward.

    The policy's reward is ``f`` (PPO's ``ent_coef`` is its entropy bonus: ``-log pi`` at
    temperature 1 swamps ``f``), or ``-log(1 - D)`` on AIRL's ``D`` when the env has an absorbing
    state (``f`` is unbounded below on states only the policy visits, which then sink below the
    absorbing state and make dying pay). For a reward to transfer, learn a state-only ``g(s)``
    (``--disc-inputs s``), the disentangled reward of Fu et al. (2018).
    """

    Config = AIRLConfig
    airl = True

    @classmethod
    def disc_defaults(cls, config: AIRLConfig, disc: DiscriminatorConfig) -> DiscriminatorConfig:
        # the shaping term gamma * h(s') - h(s) leaves the optimal policy unchanged only when it
        # is discounted like the policy's return
        # and h is 0 in the absorbing state, which is terminal for the shaping
        return dataclasses.replace(disc, airl=True, gamma=config.gamma, absorbing=config.absorbing)

    def _log_probs(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray | None:
        with torch.no_grad():
            obs_t, _ = self.model.policy.obs_to_tensor(obs)
            _, log_prob, _ = self.model.policy.evaluate_actions(obs_t, torch.as_tensor(acts))
        return log_prob.numpy()


@dataclasses.dataclass(kw_only=True)
class DreamGAILConfig(DreamOptions, GAILConfig):
    """What ``gailkit imitate dream-gail`` takes: GAIL's options (``--steps``: dream steps) and the dream's."""

    absorbing: bool = field(default=False, metadata=doc(
        "must stay off: a dream ends where M's done head says, with no absorbing state"))

    bounds: ClassVar[dict[str, str]] = {**GAILConfig.bounds, **DreamOptions.bounds}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_dream()


@register("dream-gail")
class DreamGAIL(DreamRun, GAIL):
    """GAIL trained in a world model's dream, grounded by real episodes (:mod:`gailkit.agents.dream`)."""

    Config = DreamGAILConfig
