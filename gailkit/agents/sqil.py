"""SQIL: imitation by off-policy RL with sparse rewards (Reddy et al., 2020).

No discriminator. The learner is SAC (continuous actions) or DQN (discrete) on
:class:`~gailkit.buffers.ExpertMixReplayBuffer`: every minibatch holds ``expert_fraction``
expert transitions with reward 1 and the agent's own replay with reward 0 (the environment's
reward is never used). By default (``--clip-target``) the TD target is clipped to the largest
value those rewards allow: ``reward_max`` 1 of :class:`~gailkit.agents.fast_sac.FastSAC`, whose
soft value adds the entropy's bound, or of :class:`~gailkit.agents.offpolicy.BoundedDQN`.
Episodes end in absorbing states (``--absorbing``, the default) as in DAC: the expert rows
include the absorbing-state transitions of :func:`~gailkit.envs.wrappers.absorbing_transitions`
(reward 1, like every expert row) and the agent's absorbing steps carry reward 0, so neither
termination nor episode length leaks reward.
The expert rows are rebuilt from the run's demonstrations on resume; the agent replay is in
the checkpoint like every off-policy run's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from stable_baselines3.common.utils import LinearSchedule

from gailkit.agents.base import TrainingConfig
from gailkit.agents.offpolicy import GENERATORS, OffPolicyOptions, OffPolicyRun
from gailkit.agents.registry import register
from gailkit.buffers import ExpertMixReplayBuffer
from gailkit.configs import doc
from gailkit.errors import UsageError

__all__ = ["SQIL", "SQILConfig"]


@dataclasses.dataclass(kw_only=True)
class SQILConfig(OffPolicyOptions, TrainingConfig):
    """What ``gailkit imitate sqil`` takes."""

    expert_fraction: float = dataclasses.field(default=0.5, metadata=doc(
        "share of every minibatch drawn from the demonstrations, in (0, 1)"))
    ent_coef: str | None = dataclasses.field(default="0.01", metadata=doc(  # SB3's auto until 0.01
        "SAC's entropy coefficient alpha: X (held at X), auto (learned from 1, SB3's default) or auto_X (learned "
        "from X), X > 0; DQN has none and ignores this default. Held at 0.01, SQIL imitated HalfCheetah-v5 (0.904 "
        "over 3 seeds; auto 0.27) and Hopper-v5 without auto's collapses"))
    lr_decay: bool = dataclasses.field(default=True, metadata=doc(
        "decay the learning rate linearly to 0 over --steps (at a constant rate DQN's Q diverged on one CartPole "
        "seed in three: rewards in {0, 1} bound Q by 1 / (1 - gamma), yet it grew past 40,000)"))

    clip_target: bool = dataclasses.field(default=True, metadata=doc(
        "clip the TD target to the largest value rewards in {0, 1} allow: 1 / (1 - gamma) for DQN, the soft "
        "value (1 + alpha |A| log 2) / (1 - gamma) for SAC; HalfCheetah-v5 reached 0.9 by 110k steps with it, 250k "
        "without; where Q stays below the bound nothing changes. Needs --gamma below 1"))

    bounds: ClassVar[dict[str, str]] = {**TrainingConfig.bounds, **OffPolicyOptions.bounds,
                                        "expert_fraction": "(0, 1)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_off_policy()
        if self.clip_target and not self.gamma < 1:
            raise UsageError(f"--clip-target (SQIL's default) bounds Q by 1 / (1 - gamma): it needs --gamma below 1, "
                             f"got {self.gamma}; add --no-clip-target to train with gamma 1")


@register("sqil")
class SQIL(OffPolicyRun):
    """Soft Q imitation learning: reward 1 on expert transitions, 0 on the agent's."""

    Config = SQILConfig
    replay_buffer_class = ExpertMixReplayBuffer
    # a run saved before a default changed keeps the value of its time: alpha learned (null), no clip
    former_defaults = {"ent_coef": None, "clip_target": False}

    def __init__(self, config: SQILConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        d = self.expert_data
        self.model.replay_buffer.set_expert(d.obs, self._replay_actions(d.acts), d.next_obs, d.dones)

    def _generator_options(self, name: str) -> dict[str, Any]:
        options = super()._generator_options(name)
        if self.config.clip_target:
            options["reward_max"] = 1.0
        if self.config.lr_decay:
            lr = options.get("learning_rate", GENERATORS[name]["learning_rate"])
            options["learning_rate"] = LinearSchedule(lr, 0.0, 1.0)  # of the progress through --steps
        return options

    def _replay_options(self) -> dict[str, Any]:
        return {"expert_fraction": self.config.expert_fraction}
