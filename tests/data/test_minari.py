"""Minari import/export: datasets made by Minari's own DataCollector, round trips, errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gymnasium as gym
import h5py  # noqa: F401  (Minari's default hdf5 storage; `make test` installs the minari extra)
import minari
import numpy as np
import pytest

from gailkit.data import (
    DemoFormatError,
    Demonstrations,
    Trajectory,
    load_demos,
    save_demos,
)
from gailkit.data.minari_io import demos_from_minari, demos_to_minari
from gailkit.data.spaces import space_mismatch

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*is set to None:UserWarning", "ignore:env_spec is None:UserWarning"
)

CARTPOLE_ID = "cartpole/random-v0"
N_EPISODES = 5
MAX_STEPS = 15  # short time limit: some episodes terminate, some are truncated


@pytest.fixture
def cartpole_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A datasets root holding a CartPole dataset recorded with minari.DataCollector."""
    root = tmp_path / "collected"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    env = minari.DataCollector(gym.make("CartPole-v1", max_episode_steps=MAX_STEPS))
    env.action_space.seed(0)
    for ep in range(N_EPISODES):
        env.reset(seed=ep)
        while True:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    env.create_dataset(CARTPOLE_ID, author="gailkit tests", description="random CartPole")
    env.close()
    # Point the env var elsewhere so the tests show that data_path is what finds the data.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "elsewhere"))
    return root


def _assert_same_demos(a: Demonstrations, b: Demonstrations) -> None:
    assert a.env_id == b.env_id
    assert space_mismatch(a.observation_space, b.observation_space) is None
    assert space_mismatch(a.action_space, b.action_space) is None
    assert len(a) == len(b)
    for ta, tb in zip(a.trajectories, b.trajectories):
        for name in ("obs", "acts", "rews"):
            x, y = getattr(ta, name), getattr(tb, name)
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        assert ta.terminal == tb.terminal


def _pendulum_demos(n_episodes: int = 3, steps: int = 12) -> Demonstrations:
    """Random Pendulum-v1 episodes, cut (truncated) after ``steps`` steps."""
    env = gym.make("Pendulum-v1")
    env.action_space.seed(0)
    trajectories = []
    for ep in range(n_episodes):
        obs = [env.reset(seed=ep)[0]]
        acts, rews = [], []
        for _ in range(steps + ep):
            act = env.action_space.sample()
            o, r, *_ = env.step(act)
            obs.append(o)
            acts.append(act)
            rews.append(r)
        trajectories.append(Trajectory(np.array(obs), np.array(acts), np.array(rews), False))
    spaces = env.observation_space, env.action_space
    env.close()
    return Demonstrations(tuple(trajectories), "Pendulum-v1", *spaces, {})


def test_reads_datacollector_dataset(cartpole_root: Path, monkeypatch: pytest.MonkeyPatch):
    demos = demos_from_minari(CARTPOLE_ID, data_path=cartpole_root)

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(cartpole_root))
    episodes = list(minari.load_dataset(CARTPOLE_ID).iterate_episodes())
    assert len(demos) == len(episodes) == N_EPISODES
    assert demos.env_id == "CartPole-v1"
    assert demos.metadata == {"minari_dataset_id": CARTPOLE_ID}
    assert isinstance(demos.action_space, gym.spaces.Discrete)
    for traj, ep in zip(demos.trajectories, episodes):
        assert len(traj) == len(ep) <= MAX_STEPS
        assert traj.obs.shape == (len(ep) + 1, 4)
        np.testing.assert_array_equal(traj.obs, ep.observations)
        np.testing.assert_array_equal(traj.acts, ep.actions)
        np.testing.assert_array_equal(traj.rews, np.ones(len(ep), dtype=np.float32))
        assert traj.terminal == bool(ep.terminations[-1]) != bool(ep.truncations[-1])
    # the seeds give both kinds of episode end
    assert {t.terminal for t in demos.trajectories} == {True, False}


def test_default_root_is_the_env_var(cartpole_root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(cartpole_root))
    assert len(demos_from_minari(CARTPOLE_ID)) == N_EPISODES


def test_round_trip_cartpole(cartpole_root: Path, tmp_path: Path):
    demos = demos_from_minari(CARTPOLE_ID, data_path=cartpole_root)
    before = os.environ.get("MINARI_DATASETS_PATH")
    out_root = tmp_path / "exported"

    dataset = demos_to_minari(demos, "gailkit/cartpole-v1", data_path=out_root, author="me")
    assert os.environ.get("MINARI_DATASETS_PATH") == before  # restored
    assert isinstance(dataset, minari.MinariDataset)
    assert dataset.total_episodes == N_EPISODES
    assert dataset.env_spec is not None and dataset.env_spec.id == "CartPole-v1"
    assert (out_root / "gailkit" / "cartpole-v1" / "data").is_dir()

    back = demos_from_minari("gailkit/cartpole-v1", data_path=out_root)
    _assert_same_demos(demos, back)

    path = save_demos(
        tmp_path / "cartpole.npz",
        back.trajectories,
        env_id=back.env_id,
        observation_space=back.observation_space,
        action_space=back.action_space,
        metadata=back.metadata,
    )
    from_file = load_demos(path, env="CartPole-v1")
    _assert_same_demos(demos, from_file)
    assert from_file.metadata == back.metadata


def test_round_trip_pendulum_box_actions(tmp_path: Path):
    demos = _pendulum_demos()
    demos_to_minari(demos, "pendulum-v0", data_path=tmp_path)
    back = demos_from_minari("pendulum-v0", data_path=tmp_path)

    assert back.trajectories[0].acts.shape == (12, 1)
    assert back.trajectories[0].acts.dtype == np.float32
    assert not any(t.terminal for t in back.trajectories)
    _assert_same_demos(demos, back)

    path = save_demos(
        tmp_path / "pendulum",
        back.trajectories,
        env_id=back.env_id,
        observation_space=back.observation_space,
        action_space=back.action_space,
    )
    _assert_same_demos(demos, load_demos(path, env="Pendulum-v1"))


def test_unregistered_env_exports_spaces_only(tmp_path: Path):
    pend = _pendulum_demos(n_episodes=1)
    demos = Demonstrations(pend.trajectories, "NotRegistered-v0", pend.observation_space,
                           pend.action_space)
    dataset = demos_to_minari(demos, "custom-v0", data_path=tmp_path)
    assert dataset.env_spec is None
    back = demos_from_minari("custom-v0", data_path=tmp_path)
    assert back.env_id == "custom-v0"  # fallback: the dataset id
    np.testing.assert_array_equal(back.trajectories[0].obs, pend.trajectories[0].obs)


def test_unknown_dataset_id(tmp_path: Path):
    with pytest.raises(DemoFormatError, match="D4RL/door/nothing-v9") as info:
        demos_from_minari("D4RL/door/nothing-v9", data_path=tmp_path)
    assert "minari download" in str(info.value)
    assert not (tmp_path / "D4RL").exists()


def test_malformed_dataset_id(tmp_path: Path):
    demos = _pendulum_demos(n_episodes=1)
    for bad in ("no-version", "../escape-v0"):
        with pytest.raises(DemoFormatError, match="malformed Minari dataset id"):
            demos_to_minari(demos, bad, data_path=tmp_path)
        with pytest.raises(DemoFormatError, match="malformed Minari dataset id"):
            demos_from_minari(bad, data_path=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_rewards(tmp_path: Path):
    pend = _pendulum_demos(n_episodes=2)
    no_rews = tuple(Trajectory(t.obs, t.acts, None, t.terminal) for t in pend.trajectories)
    demos = Demonstrations(no_rews, "Pendulum-v1", pend.observation_space, pend.action_space)

    with pytest.raises(DemoFormatError, match="require rewards.*fill_missing_rewards=True"):
        demos_to_minari(demos, "norews-v0", data_path=tmp_path)
    assert not (tmp_path / "norews-v0").exists()

    demos_to_minari(demos, "norews-v0", data_path=tmp_path, fill_missing_rewards=True)
    back = demos_from_minari("norews-v0", data_path=tmp_path)
    for traj, orig in zip(back.trajectories, pend.trajectories):
        np.testing.assert_array_equal(traj.rews, np.zeros(len(orig), dtype=np.float32))
        np.testing.assert_array_equal(traj.obs, orig.obs)


def test_existing_dataset_is_kept(tmp_path: Path):
    demos = _pendulum_demos(n_episodes=1)
    demos_to_minari(demos, "twice-v0", data_path=tmp_path)
    with pytest.raises(ValueError, match="already exists"):
        demos_to_minari(demos, "twice-v0", data_path=tmp_path)
    assert len(demos_from_minari("twice-v0", data_path=tmp_path)) == 1


def _buffer(obs, acts) -> minari.data_collector.EpisodeBuffer:
    n = len(acts)
    return minari.data_collector.EpisodeBuffer(
        observations=obs,
        actions=acts,
        rewards=np.zeros(n),
        terminations=np.eye(n, dtype=bool)[-1],
        truncations=np.zeros(n, dtype=bool),
    )


def test_dict_observations_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    obs_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,)), "b": gym.spaces.Discrete(3)})
    obs = {"a": np.zeros((4, 2), dtype=np.float32), "b": np.zeros(4, dtype=np.int64)}
    minari.create_dataset_from_buffers(
        "dictobs-v0", [_buffer(obs, np.zeros(3, dtype=np.int64))],
        observation_space=obs_space, action_space=gym.spaces.Discrete(2),
    )
    with pytest.raises(DemoFormatError, match="observation space Dict.*Flatten"):
        demos_from_minari("dictobs-v0")


def test_nan_observation_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    good = np.zeros((6, 3), dtype=np.float32)
    bad = good.copy()
    bad[4, 1] = np.nan
    acts = np.zeros(5, dtype=np.int64)
    minari.create_dataset_from_buffers(
        "nan-v0", [_buffer(good, acts), _buffer(bad, acts)],
        observation_space=space, action_space=gym.spaces.Discrete(2),
    )
    with pytest.raises(DemoFormatError, match=r"NaN or inf.*episode 1, step 4"):
        demos_from_minari("nan-v0")


def test_missing_minari_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` fail
    with pytest.raises(ImportError, match=r'pip install "gailkit\[minari\]"'):
        demos_from_minari("anything-v0", data_path=tmp_path)
    with pytest.raises(ImportError, match=r'pip install "gailkit\[minari\]"'):
        demos_to_minari(_pendulum_demos(n_episodes=1), "anything-v0", data_path=tmp_path)
