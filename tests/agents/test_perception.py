"""--perception: imitation on a world model's [z, h], from pixel demonstrations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from gailkit.agents.perception import Perception
from gailkit.cli import main
from gailkit.data import load_demos
from gailkit.nn.checkpoint import load_tensors
from gailkit.worldmodels.model import WorldModel
from tests.agents.conftest import DEMO_STEPS, PIXELS


def test_wrapper_and_demo_encoding_agree(pixel_world):
    perception = Perception(pixel_world / "wm")
    demos = load_demos(pixel_world / "px.npz")
    encoded = perception.encode_demos(demos)
    assert encoded.observation_space.shape == (24,) and encoded.trajectories[0].obs.shape == (DEMO_STEPS + 1, 24)
    env = perception.wrap(gym.make(PIXELS))  # the env seen through V and M gives the demos' encoding
    obs, _ = env.reset(seed=0)
    traj = encoded.trajectories[0]
    np.testing.assert_allclose(obs, traj.obs[0], atol=1e-5)
    for t in range(5):
        obs, *_ = env.step(traj.acts[t])
        np.testing.assert_allclose(obs, traj.obs[t + 1], atol=1e-5)
    assert np.abs(traj.obs[3, 8:]).sum() > 0  # h moves once actions are taken
    z_only = Perception(pixel_world / "wm", memory=False).encode_demos(demos)
    np.testing.assert_allclose(z_only.trajectories[0].obs, traj.obs[:, :8], atol=1e-6)


@pytest.mark.parametrize("algo, steps", [("bc", None), ("dac", "600"), ("gail", "512")])
def test_imitation_runs_on_latents(pixel_world, tmp_path, algo, steps):
    argv = ["imitate", algo, "--env", PIXELS, "--demos", str(pixel_world / "px.npz"),
            "--perception", str(pixel_world / "wm"),
            "--out", str(tmp_path / algo), "--no-progress", "--eval-episodes", "1"]
    if steps:
        argv += ["--steps", steps, "--eval-every", steps, "--no-absorbing"]
    if algo == "bc":
        argv += ["--bc-steps", "20"]
    assert main(argv) == 0
    assert main(["eval", "--run", str(tmp_path / algo), "--episodes", "1"]) == 0


def test_perception_mismatches_are_one_line_errors(pixel_world, tmp_path, capsys):
    from tests.test_cli import fails_cleanly

    WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2,
               env_id="gailkit/CartPolePixels-v1").save(tmp_path / "other")
    base = ["imitate", "bc", "--demos", str(pixel_world / "px.npz"), "--out", str(tmp_path / "r")]
    fails_cleanly([*base, "--env", PIXELS, "--perception", str(tmp_path / "other")], capsys,
                  "trained on gailkit/CartPolePixels-v1 frames, not gailkit/CartPoleCentredPixels-v1")
    fails_cleanly([*base, "--env", "CartPole-v1", "--perception", str(pixel_world / "wm")], capsys,
                  "trained on gailkit/CartPoleCentredPixels-v1 frames, not CartPole-v1")
    fails_cleanly([*base, "--env", "CartPole-v1"], capsys, "observation space does not match CartPole-v1")
    assert not (tmp_path / "r").exists()


def test_a_resumed_latent_run_equals_an_uninterrupted_one(pixel_world, tmp_path):
    import json

    from gailkit.agents.dac import DACConfig
    from gailkit.agents.imitate import imitate

    def dac(out, steps, resume=False):
        cfg = DACConfig(env=PIXELS, demos=pixel_world / "px.npz", perception=pixel_world / "wm", out=out, steps=steps,
                        eval_every=256, checkpoint_every=256, learning_starts=128, absorbing=False, progress=False,
                        eval_episodes=1)
        return imitate(cfg, resume=resume)

    dac(tmp_path / "straight", 512)
    dac(tmp_path / "resumed", 256)
    dac(tmp_path / "resumed", 512, resume=True)
    history = [json.loads((tmp_path / r / "eval.json").read_text())["history"] for r in ("straight", "resumed")]
    assert [(h["steps"], h["return_mean"]) for h in history[0]] == [(h["steps"], h["return_mean"]) for h in history[1]]
    a, b = (load_tensors(tmp_path / r / "policy.safetensors") for r in ("straight", "resumed"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_vec_perception_equals_one_wrapper_per_env(pixel_world):
    """The batched perception gives each env what its own PerceptionWrapper gives, through episode ends."""
    from stable_baselines3.common.env_util import make_vec_env

    from gailkit.agents.perception import VecPerception

    perception = Perception(pixel_world / "wm")
    venv = VecPerception(make_vec_env(PIXELS, n_envs=3, seed=5), perception)
    singles = [perception.wrap(gym.make(PIXELS)) for _ in range(3)]
    obs = venv.reset()
    expected = np.stack([env.reset(seed=5 + i)[0] for i, env in enumerate(singles)])
    np.testing.assert_allclose(obs, expected, atol=1e-4)
    rng, ends = np.random.default_rng(0), 0
    for _ in range(60):
        actions = rng.integers(0, 2, size=3)
        obs, _, dones, infos = venv.step(actions)
        for i, env in enumerate(singles):
            single, _, terminated, truncated, _ = env.step(actions[i])
            assert dones[i] == (terminated or truncated)
            if dones[i]:  # the terminal observation, then the next episode's first (h back to 0)
                ends += 1
                np.testing.assert_allclose(infos[i]["terminal_observation"], single, atol=1e-4)
                single, _ = env.reset()
                assert np.abs(obs[i, 8:]).sum() == 0
            np.testing.assert_allclose(obs[i], single, atol=1e-4)
    assert ends >= 3  # random actions drop the pole within 60 steps
