"""Fixtures of the imitation tests."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from gailkit.agents.experts import CollectConfig, collect_demos
from gailkit.worldmodels.model import WorldModel

PIXELS = "gailkit/CartPoleCentredPixels-v1"
WORLD_MODEL_DATA_STEPS = 1234  # what the fixture's world model says its data cost


@pytest.fixture(scope="module")
def pixel_world(tmp_path_factory):
    """A folder with ``wm/`` (a small untrained world model of pixel CartPole that says its data
    cost ``WORLD_MODEL_DATA_STEPS`` steps) and ``px.npz`` (2 zoo-expert episodes as frames)."""
    root = tmp_path_factory.mktemp("pixel_world")
    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2, env_id=PIXELS)
    model.data_steps = WORLD_MODEL_DATA_STEPS
    model.save(root / "wm")
    collect_demos(CollectConfig(expert="zoo:CartPole-v1", episodes=2, out=root / "px.npz", pixels=PIXELS))
    return root
