"""Agents: experts now; imitation learners (BC, GAIL, AIRL, DAC) build on the same parts."""

from gailkit.agents.experts import PRESETS, Expert, ExpertConfig, load_expert, train_expert

__all__ = ["PRESETS", "Expert", "ExpertConfig", "load_expert", "train_expert"]
