"""Pixel demonstrations: frames recorded beside a state expert, stored per episode, read lazily."""

from __future__ import annotations

import zipfile

import gymnasium as gym
import numpy as np
import pytest

from gailkit.agents.experts import CollectConfig, collect_demos
from gailkit.cli import main
from gailkit.data import DemoFormatError, load_demos, open_demos
from gailkit.errors import UsageError

PIXELS = "gailkit/CartPoleCentredPixels-v1"


@pytest.fixture(scope="module")
def pixel_demos(tmp_path_factory):
    path = tmp_path_factory.mktemp("px") / "cartpole_pixels.npz"
    collect_demos(CollectConfig(expert="zoo:CartPole-v1", episodes=3, out=path, pixels=PIXELS))
    return path


def test_frames_are_the_pixel_envs_and_the_expert_still_balances(pixel_demos):
    demos = load_demos(pixel_demos)
    assert demos.env_id == PIXELS and demos.metadata["states_from"] == "CartPole-v1"
    assert demos.observation_space.shape == (64, 64, 3) and demos.trajectories[0].obs.dtype == np.uint8
    assert np.all(demos.returns == 500.0), f"the zoo expert should balance for 500 steps: {demos.returns}"
    env = gym.make(PIXELS)  # replaying the recorded actions in the pixel env gives the recorded frames
    frame, _ = env.reset(seed=1)
    traj = demos.trajectories[1]
    np.testing.assert_array_equal(frame, traj.obs[0])
    for t in (0, 1, 2, 3):
        frame, *_ = env.step(traj.acts[t])
        np.testing.assert_array_equal(frame, traj.obs[t + 1])
    with zipfile.ZipFile(pixel_demos) as z:  # one compressed member per episode, far below raw size
        names = set(z.namelist())
        assert {"obs_00000.npy", "obs_00001.npy", "obs_00002.npy"} <= names and "obs.npy" not in names
        raw = sum(i.file_size for i in z.infolist())
    assert pixel_demos.stat().st_size < raw / 10


def test_reader_reads_one_episode_at_a_time(pixel_demos, tmp_path):
    demos = load_demos(pixel_demos)
    reader = open_demos(pixel_demos, env=PIXELS)
    assert len(reader) == 3 and reader.n_steps == demos.n_steps == 1500
    for i, traj in enumerate(reader):
        np.testing.assert_array_equal(traj.obs, demos.trajectories[i].obs)
        np.testing.assert_array_equal(traj.acts, demos.trajectories[i].acts)
    # damage the last episode's frames: opening still works, that episode is refused when read
    data = bytearray(pixel_demos.read_bytes())
    with zipfile.ZipFile(pixel_demos) as z:
        info = z.getinfo("obs_00002.npy")
    middle = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[middle] ^= 0xFF
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(data))
    reader = open_demos(damaged)
    np.testing.assert_array_equal(reader.episode(0).obs, demos.trajectories[0].obs)
    with pytest.raises(DemoFormatError, match="obs_00002"):
        reader.episode(2)
    with pytest.raises(DemoFormatError):
        load_demos(damaged)  # the eager loader reads (and checks) everything


def test_pixel_and_state_demos_do_not_mix(pixel_demos, tmp_path):
    with pytest.raises(DemoFormatError, match="observation space does not match CartPole-v1"):
        load_demos(pixel_demos, env="CartPole-v1")
    with pytest.raises(DemoFormatError, match=f"observation space does not match {PIXELS}"):
        load_demos("zoo:CartPole-v1", env=PIXELS)
    with pytest.raises(UsageError, match="not image frames"):
        collect_demos(CollectConfig(expert="zoo:CartPole-v1", episodes=1, out=tmp_path / "x.npz", pixels="CartPole-v1"))
    with pytest.raises(UsageError, match="give a pixel version of CartPole-v1"):
        collect_demos(CollectConfig(expert="zoo:CartPole-v1", episodes=1, out=tmp_path / "x.npz",
                                    pixels="gailkit/PendulumPixels-v1"))
    assert not (tmp_path / "x.npz").exists()


def test_cli_collects_pixels(tmp_path, capsys):
    out = tmp_path / "px.npz"
    assert main(["demos", "collect", "--expert", "zoo:CartPole-v1", "--pixels", PIXELS, "--episodes", "1",
                 "--out", str(out)]) == 0
    assert main(["demos", "info", str(out)]) == 0
    assert PIXELS in capsys.readouterr().out
