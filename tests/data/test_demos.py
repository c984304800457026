"""Demonstration files: round trips and a clear DemoFormatError for every kind of bad input."""

import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest

from gailkit.data import DemoFormatError, Trajectory, Transitions, flatten_trajectories, load_demos, save_demos

OBS_SPACE = gym.make("CartPole-v1").observation_space
ACT_SPACE = gym.spaces.Discrete(2)


def episodes(n=3, length=5, seed=0, terminal_last=True):
    rng = np.random.default_rng(seed)
    return [
        Trajectory(
            obs=rng.normal(size=(length + i + 1, 4)).astype(np.float32),
            acts=rng.integers(0, 2, size=length + i),
            rews=np.ones(length + i, np.float32),
            terminal=terminal_last and i == n - 1,
        )
        for i in range(n)
    ]


def save(path, trajs=None, **kw):
    return save_demos(path, trajs or episodes(), env_id="CartPole-v1", observation_space=OBS_SPACE,
                      action_space=ACT_SPACE, **kw)


def test_round_trip_preserves_everything(tmp_path):
    trajs = episodes()
    path = save(tmp_path / "d", trajs, metadata={"note": "hi"})
    assert path.name == "d.npz" and not list(tmp_path.glob(".*tmp"))  # atomic: no temp file left
    demos = load_demos(path, env="CartPole-v1")
    assert demos.env_id == "CartPole-v1" and demos.metadata["note"] == "hi"
    assert demos.observation_space == OBS_SPACE and demos.action_space == ACT_SPACE
    for a, b in zip(trajs, demos.trajectories):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)
        np.testing.assert_array_equal(a.rews, b.rews)
        assert a.terminal == b.terminal
    s = demos.summary()
    assert (s["episodes"], s["steps"], s["return_mean"], s["terminated_episodes"]) == (3, 18, 6.0, 1)


def test_box_actions_and_missing_rewards_round_trip(tmp_path):
    space = gym.make("Pendulum-v1")
    t = Trajectory(np.zeros((4, 3), np.float32), np.full((3, 1), 0.5, np.float32), None, False)
    path = save_demos(tmp_path / "p.npz", [t], env_id="Pendulum-v1",
                      observation_space=space.observation_space, action_space=space.action_space)
    demos = load_demos(path, env="Pendulum-v1")
    assert demos.trajectories[0].rews is None and demos.summary()["return_mean"] is None
    np.testing.assert_array_equal(demos.trajectories[0].acts, t.acts)


def test_trajectory_checks_shapes_and_is_read_only():
    with pytest.raises(ValueError, match="len\\(obs\\) == len\\(acts\\) \\+ 1"):
        Trajectory(np.zeros((3, 4)), np.zeros(3), None, False)
    with pytest.raises(ValueError, match="rews must have shape"):
        Trajectory(np.zeros((4, 4)), np.zeros(3), np.zeros(2), False)
    source = np.zeros((4, 4))
    t = Trajectory(source, np.zeros(3), None, False)
    source[0, 0] = 7.0  # writes to the caller's array do not leak in
    assert t.obs[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        t.obs[0, 0] = 1.0


def test_flatten_marks_only_terminal_transitions_done():
    tr = flatten_trajectories(episodes(n=2, length=2))
    assert isinstance(tr, Transitions) and len(tr) == 5
    np.testing.assert_array_equal(tr.dones, [False, False, False, False, True])
    np.testing.assert_array_equal(tr.next_obs[0], episodes(n=2, length=2)[0].obs[1])


def test_mismatched_env_names_the_space(tmp_path):
    path = save(tmp_path / "d.npz")
    with pytest.raises(DemoFormatError, match=r"observation space does not match Pendulum-v1: shape \(4,\) != \(3,\)"):
        load_demos(path, env="Pendulum-v1")
    with pytest.raises(DemoFormatError, match="observation space does not match gailkit/CartPoleAbsorbing-v1"):
        load_demos(path, env="gailkit/CartPoleAbsorbing-v1")  # one more (flag) dimension
    load_demos(path, env="gailkit/CartPoleFixedHorizon-v1")  # same spaces: fine

def test_mismatched_action_space(tmp_path):
    path = save(tmp_path / "d.npz")
    env = gym.make("CartPole-v1")
    env.action_space = gym.spaces.Discrete(3)
    with pytest.raises(DemoFormatError, match=r"action space does not match.*Discrete\(2\) != Discrete\(3\)"):
        load_demos(path, env=env)


def test_corrupt_and_truncated_files(tmp_path):
    path = save(tmp_path / "d.npz")
    blob = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DemoFormatError, match="not an .npz archive"):
        load_demos(tmp_path / "trunc.npz")
    flipped = bytearray(blob)
    for i in range(200, 260):  # damage member data, keep the zip directory intact
        flipped[i] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(DemoFormatError, match="corrupt|cannot be read|unreadable"):
        load_demos(tmp_path / "flipped.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DemoFormatError, match="not an .npz archive"):
        load_demos(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="gailkit demos collect"):
        load_demos(tmp_path / "missing.npz")


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, schema_version=np.array(1), meta_json=np.array("{}"), obs=np.array([{"a": 1}], dtype=object),
             acts=np.zeros(1), lengths=np.array([1]), terminal=np.array([False]))
    with pytest.raises(DemoFormatError, match="object \\(pickled\\) arrays"):
        load_demos(path)


def test_foreign_npz_and_newer_schema(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DemoFormatError, match="not a gailkit demonstration file, missing arrays"):
        load_demos(tmp_path / "other.npz")
    path = save(tmp_path / "d.npz")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["schema_version"] = np.array(99)
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(DemoFormatError, match="schema version 99 is newer"):
        load_demos(tmp_path / "new.npz")
    arrays["schema_version"] = np.array(1)
    arrays["obs"] = arrays["obs"][:-2]
    np.savez(tmp_path / "short.npz", **arrays)
    with pytest.raises(DemoFormatError, match="obs has 19 rows but the episode lengths imply 21"):
        load_demos(tmp_path / "short.npz")


@pytest.mark.parametrize("field", ["obs", "rews"])
def test_nan_is_refused_on_save_and_load(tmp_path, field):
    trajs = episodes()
    bad = dict(obs=trajs[1].obs.copy(), acts=trajs[1].acts, rews=trajs[1].rews.copy(), terminal=False)
    bad[field][2] = np.nan
    trajs[1] = Trajectory(**bad)
    name = "observations" if field == "obs" else "rewards"
    with pytest.raises(DemoFormatError, match=f"{name} contains NaN or inf .*episode 1, step 2"):
        save(tmp_path / "d.npz", trajs)
    # a file written by something else is checked on load too
    good = save(tmp_path / "good.npz")
    with np.load(good) as z:
        arrays = dict(z)
    arrays[field][7] = np.inf  # row 7 is episode 1 (episode 0 has 6 obs / 5 actions)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DemoFormatError, match=f"{name} contains NaN or inf .*episode 1"):
        load_demos(tmp_path / "bad.npz")


def test_actions_outside_discrete_space(tmp_path):
    trajs = episodes()
    trajs[0] = Trajectory(trajs[0].obs, np.full(len(trajs[0]), 5), trajs[0].rews, False)
    with pytest.raises(DemoFormatError, match=r"discrete actions must be integers in \[0, 2\)"):
        save(tmp_path / "d.npz", trajs)


def test_metadata_is_json(tmp_path):
    path = save(tmp_path / "d.npz")
    with zipfile.ZipFile(path) as z:
        assert "meta_json.npy" in z.namelist()
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta_json"]))
    assert (meta["observation_space"]["type"] == "Box"
            and meta["action_space"] == {"type": "Discrete", "n": 2, "start": 0})
