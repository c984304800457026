"""Reward transfer: PPO trained from scratch on a learned reward alone (``gailkit imitate
ppo-on-reward --reward-from RUN``).

The test of what an adversarial run's discriminator learned: is it a reward, or only a signal
that pushed one policy? A fresh PPO policy trains on
:meth:`~gailkit.discriminators.Discriminator.transfer_reward` of the run's final
discriminator (frozen; no demonstrations, no environment reward); its return on the real task
is the measure. AIRL's state-only ``g(s)`` (an AIRL run with ``--disc-inputs s``) is meant to
transfer (Fu et al., 2018); GAIL's discriminator is the baseline. The env, absorbing wrapper,
discount and demonstrations (for the expert and random references only) default to the source
run's. The run keeps its own
copy of the reward (``reward/``), so it resumes and evaluates without the source folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from gailkit.agents.base import TrainingConfig, saved_run
from gailkit.agents.onpolicy import PPOOptions, PPORun
from gailkit.agents.registry import register
from gailkit.agents.run import DEMOS_COPY
from gailkit.buffers import ImitationRolloutBuffer
from gailkit.configs import doc
from gailkit.discriminators import Discriminator
from gailkit.errors import UsageError

__all__ = ["PPOOnReward", "PPOOnRewardConfig"]

field = dataclasses.field
REWARD_DIR = "reward"


@dataclasses.dataclass(kw_only=True)
class PPOOnRewardConfig(PPOOptions, TrainingConfig):
    """What ``gailkit imitate ppo-on-reward`` takes."""

    reward_from: Path = field(metadata=doc("run directory whose final discriminator is the reward (airl, gail, dac)"))
    env: str | None = field(default=None, metadata=doc("Gymnasium env id (default: the reward run's)"))
    demos: Path | None = field(default=None, metadata=doc(
        "demonstrations, for the expert and random references only (default: the reward run's copy)"))
    absorbing: bool | None = field(default=None, metadata=doc(
        "absorbing-state wrapper (default: as the reward run; the reward needs the same observations)"))
    gamma: float | None = field(default=None, metadata=doc("discount, in (0, 1] (default: the reward run's)"))

    bounds: ClassVar[dict[str, str]] = {**TrainingConfig.bounds, **PPOOptions.bounds}

    def __post_init__(self) -> None:
        self.reward_from = Path(self.reward_from)
        super().__post_init__()


def _with_source_defaults(config: PPOOnRewardConfig) -> PPOOnRewardConfig:
    """``config`` with its unset fields taken from the reward run; UsageError if that run holds
    no reward model."""
    source = config.reward_from
    meta = saved_run(source)
    if not (source / "checkpoint" / "discriminator.json").is_file():
        raise UsageError(f"--reward-from {source}: that {meta['algo']} run holds no learned reward (no "
                         "discriminator in its checkpoint); pass an airl, gail or dac run directory")
    original = meta["config"]
    fill = {"env": original["env"], "demos": source / DEMOS_COPY, "absorbing": original.get("absorbing", False),
            "gamma": original.get("gamma", 0.99)}
    return dataclasses.replace(config, **{k: v for k, v in fill.items() if getattr(config, k) is None})


@register("ppo-on-reward")
class PPOOnReward(PPORun):
    """PPO from scratch on another run's learned reward, to test whether that reward transfers."""

    Config = PPOOnRewardConfig

    def __init__(self, config: PPOOnRewardConfig, **kwargs: Any):
        own = Path(config.out) / REWARD_DIR
        if not (own / "discriminator.json").is_file():  # a new run (a started one has its own copy)
            config = _with_source_defaults(config)
        super().__init__(config, **kwargs)
        self.reward_model = Discriminator.load(own if (own / "discriminator.json").is_file()
                                               else config.reward_from / "checkpoint")
        spaces = (self.venv.observation_space, self.venv.action_space)
        if spaces != (self.reward_model.observation_space, self.reward_model.action_space):
            raise UsageError(f"--reward-from {config.reward_from}: its reward takes observations "
                             f"{self.reward_model.observation_space} and actions {self.reward_model.action_space}, "
                             f"the env gives {spaces[0]} and {spaces[1]}; use the reward run's env and "
                             "--absorbing setting (the defaults)")

    def _write_config(self) -> None:
        super()._write_config()
        self.reward_model.save(self.out / REWARD_DIR)

    def _relabel(self, buffer: ImitationRolloutBuffer) -> None:
        flat = buffer.flat()
        rewards = self.reward_model.transfer_reward(flat["obs"], flat["acts"], flat["next_obs"], flat["dones"])
        buffer.rewards[:] = rewards.reshape(buffer.rewards.shape)
        self._log("reward", {"learned_mean": float(rewards.mean()), "env_mean": float(flat["env_rewards"].mean())})
