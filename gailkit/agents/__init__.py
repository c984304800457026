"""Agents: experts now; imitation learners (BC, GAIL, AIRL, DAC) build on the same parts."""

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

__all__ = [
    "PRESETS",
    "CollectConfig",
    "Expert",
    "ExpertConfig",
    "collect_demos",
    "evaluate_policy",
    "load_expert",
    "train_expert",
]
