"""Fixtures of the imitation tests."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from gailkit.agents.experts import CollectConfig, collect_demos
from gailkit.data import Trajectory, load_demos, save_demos
from gailkit.worldmodels.model import WorldModel

PIXELS = "gailkit/CartPoleCentredPixels-v1"
WORLD_MODEL_DATA_STEPS = 1234  # what the fixture's world model says its data cost
DEMO_STEPS = 150  # of each expert episode in px.npz


@pytest.fixture(scope="module")
def pixel_world(tmp_path_factory):
    """A folder with ``wm/`` (a small untrained world model of pixel CartPole that says its data
    cost ``WORLD_MODEL_DATA_STEPS`` steps) and ``px.npz`` (2 zoo-expert episodes as frames, each cut
    after ``DEMO_STEPS`` steps: every frame is encoded again whenever V changes)."""
    root = tmp_path_factory.mktemp("pixel_world")
    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2, env_id=PIXELS)
    model.data_steps = WORLD_MODEL_DATA_STEPS
    model.save(root / "wm")
    collect_demos(CollectConfig(expert="zoo:CartPole-v1", episodes=2, out=root / "full.npz", pixels=PIXELS))
    full = load_demos(root / "full.npz")  # the expert balances all 500 steps: the first 150 of each do here
    cut = [Trajectory(t.obs[:DEMO_STEPS + 1], t.acts[:DEMO_STEPS], t.rews[:DEMO_STEPS], terminal=False)
           for t in full.trajectories]
    save_demos(root / "px.npz", cut, env_id=full.env_id, observation_space=full.observation_space,
               action_space=full.action_space, metadata=full.metadata)
    return root
