"""Agents: experts, behaviour cloning and adversarial imitation (GAIL, AIRL, DAC)."""

from gailkit.agents.bc import BC, BCConfig, pretrain_policy
from gailkit.agents.dac import DAC
from gailkit.agents.experts import (
    PRESETS,
    CollectConfig,
    Expert,
    ExpertConfig,
    collect_demos,
    evaluate_policy,
    load_expert,
    train_expert,
)
from gailkit.agents.imitate import evaluate_run, imitate, summarise_runs
from gailkit.agents.imitation import AdversarialImitation, ImitationConfig, load_run

__all__ = [
    "BC",
    "BCConfig",
    "DAC",
    "PRESETS",
    "AdversarialImitation",
    "CollectConfig",
    "Expert",
    "ExpertConfig",
    "ImitationConfig",
    "collect_demos",
    "evaluate_policy",
    "evaluate_run",
    "imitate",
    "load_expert",
    "load_run",
    "pretrain_policy",
    "summarise_runs",
    "train_expert",
]
