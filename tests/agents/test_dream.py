"""dream-gail: GAIL in a world model's dream, grounded by real episodes; and GAIL on raw frames."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import torch

from gailkit.agents.gail import DreamGAILConfig
from gailkit.agents.imitate import evaluate_run, imitate
from gailkit.cli import main
from gailkit.nn.checkpoint import load_tensors
from tests.agents.conftest import PIXELS, WORLD_MODEL_DATA_STEPS


def dream(pixel_world, out, steps, *, resume=False, **kw):
    options = dict(n_envs=4, n_steps=64, eval_every=256, checkpoint_every=256, ground_every=256, ground_episodes=1,
                   m_updates=3, eval_episodes=1, progress=False)
    cfg = DreamGAILConfig(env=PIXELS, demos=pixel_world / "px.npz", perception=pixel_world / "wm", out=out, steps=steps,
                          **{**options, **kw})
    return imitate(cfg, resume=resume)


def history(run):
    return json.loads((run / "eval.json").read_text())["history"]


def test_dream_gail_counts_real_steps_apart_and_refreshes_m(pixel_world, tmp_path):
    dream(pixel_world, tmp_path / "run", 768)
    h = history(tmp_path / "run")
    assert [e["steps"] for e in h] == [0, 256, 512, 768]  # dream steps
    real = [e["real_steps"] for e in h]
    assert real[0] == WORLD_MODEL_DATA_STEPS  # the world model's own data
    # one real episode per grounding (each at least 8 steps: CartPole cannot fall sooner)
    assert all(b - a >= 8 for a, b in zip(real, real[1:])), real
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert len(state["ground_returns"]) == 3 and state["real_steps"] == real[-1]
    refreshed = load_tensors(tmp_path / "run" / "mdn_rnn.safetensors")
    original = load_tensors(pixel_world / "wm" / "mdn_rnn.safetensors")
    assert any(not torch.equal(refreshed[k], original[k]) for k in original)  # M learned from real episodes
    # the saved run evaluates with its own M: the same episodes as its last evaluation
    assert evaluate_run(tmp_path / "run", episodes=1)["return_mean"] == h[-1]["return_mean"]


def test_dream_gail_resumes_exactly(pixel_world, tmp_path):
    dream(pixel_world, tmp_path / "straight", 768)
    dream(pixel_world, tmp_path / "resumed", 512)
    dream(pixel_world, tmp_path / "resumed", 768, resume=True)
    a, b = (history(tmp_path / r) for r in ("straight", "resumed"))
    assert [{k: v for k, v in e.items() if k != "wall_s"} for e in a] == \
           [{k: v for k, v in e.items() if k != "wall_s"} for e in b]
    for name in ("policy.safetensors", "mdn_rnn.safetensors"):
        x, y = (load_tensors(tmp_path / r / name) for r in ("straight", "resumed"))
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=f"{name}: {key}")


def test_m_stays_frozen_without_updates(pixel_world, tmp_path):
    dream(pixel_world, tmp_path / "frozen", 256, m_updates=0)
    refreshed = load_tensors(tmp_path / "frozen" / "mdn_rnn.safetensors")
    original = load_tensors(pixel_world / "wm" / "mdn_rnn.safetensors")
    assert all(torch.equal(refreshed[k], original[k]) for k in original)


def test_dream_gail_bad_input_is_one_line(pixel_world, tmp_path, capsys):
    from tests.test_cli import fails_cleanly

    base = ["imitate", "dream-gail", "--env", PIXELS, "--demos", str(pixel_world / "px.npz"),
            "--out", str(tmp_path / "r")]
    fails_cleanly(base, capsys, "pass --perception DIR")
    with_wm = [*base, "--perception", str(pixel_world / "wm")]
    fails_cleanly([*with_wm, "--no-perception-memory"], capsys, "drop --no-perception-memory")
    fails_cleanly([*with_wm, "--absorbing"], capsys, "pass --no-absorbing")
    assert not (tmp_path / "r").exists()


def test_gail_on_raw_frames_uses_cnns(pixel_world, tmp_path):
    out = tmp_path / "pixels"
    assert main(["imitate", "gail", "--env", PIXELS, "--demos", str(pixel_world / "px.npz"), "--out", str(out),
                 "--no-absorbing", "--steps", "256", "--n-envs", "2", "--n-steps", "128", "--eval-every", "256",
                 "--eval-episodes", "1", "--no-progress"]) == 0
    disc = load_tensors(out / "checkpoint" / "discriminator.safetensors")
    policy = load_tensors(out / "policy.safetensors")
    assert any(k.startswith("cnn.conv") for k in disc) and any("features_extractor.cnn" in k for k in policy)


def test_normalize_obs_on_frames_is_refused(pixel_world, tmp_path, capsys):
    from tests.test_cli import fails_cleanly

    out = tmp_path / "pixels"
    fails_cleanly(["imitate", "gail", "--env", PIXELS, "--demos", str(pixel_world / "px.npz"), "--out", str(out),
                   "--no-absorbing", "--normalize-obs", "--no-progress"], capsys,
                  "--normalize-obs: needs vector observations", "drop --normalize-obs")
    assert not out.exists()


def test_frame_encoder_matches_sb3_nature_cnn():
    """The discriminator's frame encoder computes what SB3's NatureCNN (the policy's) does."""
    from stable_baselines3.common.torch_layers import NatureCNN

    from gailkit.nn.blocks import FrameEncoder

    space = gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)
    torch.manual_seed(0)
    reference, ours = NatureCNN(space, features_dim=256), FrameEncoder(3, (64, 64), 256)
    ours.conv.load_state_dict(reference.cnn.state_dict())
    ours.linear.load_state_dict(reference.linear.state_dict())
    x = torch.rand(5, 3, 64, 64)
    torch.testing.assert_close(ours(x), reference(x))
