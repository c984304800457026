"""DAgger for World Models' linear C: the least-squares fit, the privileged CarRacing teacher, the loop."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from gailkit.envs.car_racing import TrackFollower
from gailkit.envs.make import make_env
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import CheckpointError
from gailkit.worldmodels.dagger import (
    DaggerConfig,
    DaggerResult,
    dagger_controller,
    dagger_inputs,
    drive,
    fit_linear_controller,
    linear_probe,
    teacher_frames,
    teacher_returns,
)
from gailkit.worldmodels.linear_controller import LinearController
from gailkit.worldmodels.model import WorldModel

CAR = "gailkit/FastCarRacing64-v3"


def test_fit_recovers_the_actions_of_a_linear_controller():
    space = gym.spaces.Box(np.array([-1.0, 0.0, 0.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32))
    c = LinearController(5, space)
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 0.5, c.n_params)
    x = rng.normal(3.0, 2.0, (400, 5))  # off-centre, unequal scales: the fit standardises and folds back
    x[:, 1] *= 10
    y = c.act(truth[None].repeat(len(x), 0), x)
    fitted = fit_linear_controller(c, x, y, ridge=0.0)
    gap = np.abs(c.act(fitted[None].repeat(len(x), 0), x) - y).max()
    assert gap < 1e-4, f"the fit should reproduce a linear controller's actions; largest gap {gap:.2e}"
    np.testing.assert_allclose(fitted, truth, atol=1e-3)
    shrunk = fit_linear_controller(c, x, y, ridge=1.0)  # the penalty pulls the weights in
    assert np.abs(shrunk[:15]).sum() < np.abs(fitted[:15]).sum()


def test_fit_refuses_inputs_of_the_wrong_width():
    c = LinearController(4, gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    with pytest.raises(UsageError, match="do not fit C's 4 inputs"):
        fit_linear_controller(c, np.zeros((10, 3)), np.zeros((10, 2)))
    with pytest.raises(UsageError, match="Box actions"):
        fit_linear_controller(LinearController(4, gym.spaces.Discrete(2)), np.zeros((10, 4)), np.zeros((10, 2)))


def test_track_follower_drives_carracing():
    returns = teacher_returns(CAR, TrackFollower(), [10_000_000, 10_000_001])
    # measured 903 and 902 on these tracks (900 on eight); a driver that leaves the road scores < 400
    assert returns.min() > 750, f"the privileged driver should finish these tracks: {returns}"


def test_dagger_loop_is_reproducible_and_labels_every_step(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(gym.make(CAR).action_space, latent_dim=8, hidden=16, n_mixtures=2, env_id=CAR)  # untrained
    config = DaggerConfig(iterations=2, episodes=2, max_steps=30, seed=3)
    a = dagger_controller(model, CAR, TrackFollower(), config=config, progress=False)
    assert a.params.shape == (3 * (8 + 16) + 3,) and a.input_mean.shape == (24,)
    assert [r["labelled_steps"] for r in a.history] == [60, 120]
    assert a.history[0]["teacher_share"] == 1.0 and a.history[1]["teacher_share"] == 0.5
    assert a.history[1]["error_before_fit"] is not None
    b = dagger_controller(model, CAR, TrackFollower(), config=config, progress=False)
    np.testing.assert_array_equal(a.params, b.params)  # same seed, same numbers
    loaded = DaggerResult.load(a.save(tmp_path / "dagger"))  # as bench_worldmodel.py keeps a fitted start
    np.testing.assert_array_equal(loaded.params, a.params)
    np.testing.assert_array_equal(loaded.input_mean, a.input_mean)
    assert loaded.history == a.history
    with pytest.raises(CheckpointError, match="dagger.json is missing"):
        DaggerResult.load(tmp_path / "nothing")
    small = dagger_controller(model, CAR, TrackFollower(), memory=False, config=config, progress=False)
    assert small.params.shape == (3 * 8 + 3,)
    with pytest.raises(UsageError, match="iterations"):
        DaggerConfig(iterations=0)
    with pytest.raises(UsageError, match="not gailkit/FastCarRacing96-v3"):
        dagger_controller(model, "gailkit/FastCarRacing96-v3", TrackFollower(), config=config, progress=False)


def test_drive_feeds_c_the_action_before_as_a_reference_loop_does():
    """A C whose weights read only a_{t-1} drives the same whatever V sees: a_t = C(a_{t-1}), a_{-1} = 0.
    A plain loop over the env with that recurrence is the reference for drive()'s returns."""
    torch.manual_seed(0)
    model = WorldModel(gym.make(CAR).action_space, latent_dim=8, hidden=16, n_mixtures=2, env_id=CAR)
    c = dagger_inputs(model, memory=False, previous_action=True)
    assert c.in_dim == 8 + 3
    w = np.zeros((3, 11))
    w[:, 8:] = [[0.5, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, -1.0]]
    params = np.concatenate([w.ravel(), [0.3, 0.2, -2.0]])
    tracks, steps = [7, 8], 80
    got = drive(model, CAR, params, tracks, memory=False, previous_action=True, max_steps=steps)
    for track, value in zip(tracks, got, strict=True):
        env, last, total = make_env(CAR), np.zeros(3), 0.0
        env.reset(seed=track)
        for _ in range(steps):
            last = c.act(params[None], np.r_[np.zeros(8), last][None])[0]
            _, reward, terminated, truncated, _ = env.step(last)
            total += reward
            if terminated or truncated:
                break
        env.close()
        assert value == pytest.approx(total, abs=1e-9), f"track {track}: drive {value}, reference loop {total}"
    with pytest.raises(UsageError, match="its inputs take 36"):
        drive(model, CAR, params[:-1], tracks, memory=False, previous_action=True)


def test_the_action_before_predicts_a_smooth_teacher():
    """The copycat's signature: where the teacher drives, [z, a_{t-1}] fits its actions far better than z."""
    torch.manual_seed(0)
    model = WorldModel(gym.make(CAR).action_space, latent_dim=8, hidden=16, n_mixtures=2, env_id=CAR)
    config = DaggerConfig(iterations=1, episodes=2, max_steps=150, seed=0)
    z = dagger_controller(model, CAR, TrackFollower(), memory=False, config=config, progress=False)
    za = dagger_controller(model, CAR, TrackFollower(), memory=False, previous_action=True, config=config,
                           progress=False)
    assert za.params.shape == (3 * (8 + 3) + 3,)
    e_z, e_za = z.history[0]["error_after_fit"], za.history[0]["error_after_fit"]
    # measured 0.037 against 0.312 (seeds 0-2 of model and tracks: ratios 0.12, 0.11, 0.10)
    assert e_za < 0.5 * e_z, f"the action before should explain most of the teacher's action: {e_za:.4f} vs {e_z:.4f}"
    assert e_za > 1e-4, f"a_{{t-1}} is not a_t: a near-zero error ({e_za:.2e}) means C reads the action it predicts"


def test_linear_probe_matches_scikit_learns_ridge():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, [1.0, 5.0, 0.1, 3.0], (300, 4))
    y = np.stack([x @ [1.0, -0.2, 4.0, 0.0] + rng.normal(0, 0.5, 300), np.sin(x[:, 0])], 1)
    train, test = slice(0, 200), slice(200, None)
    got = linear_probe(x[train], y[train], x[test], y[test], ridge=0.05)
    mean, scale = x[train].mean(0), x[train].std(0) + 1e-8
    reference = Ridge(alpha=0.05 * 200).fit((x[train] - mean) / scale, y[train])
    predicted = reference.predict((x[test] - mean) / scale)
    want = 1 - ((predicted - y[test]) ** 2).sum(0) / ((y[test] - y[test].mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert got[0] > 0.8 and got[1] < got[0]  # the linear target is read out (0.89), the sine less so
    with pytest.raises(UsageError, match="do not pair up"):
        linear_probe(x[train], y[:10], x[test], y[test])


def test_teacher_frames_hold_m_s_memory_and_the_action_before():
    """h at each row is M's LSTM replayed over the episode's z and actions; the action before is the
    teacher's action one row earlier in the same episode (zeros at its first step)."""
    torch.manual_seed(0)
    model = WorldModel(gym.make(CAR).action_space, latent_dim=8, hidden=16, n_mixtures=2, env_id=CAR)

    def speed(env):
        return np.array([np.hypot(*env.unwrapped.car.hull.linearVelocity)])

    frames = teacher_frames(model, CAR, TrackFollower(), speed, [3, 4], max_steps=40)
    assert frames.z.shape == (80, 8) and frames.h.shape == (80, 16) and frames.measures.shape == (80, 1)
    for e in (0, 1):
        rows = np.flatnonzero(frames.episode == e)
        assert len(rows) == 40
        np.testing.assert_array_equal(frames.previous_action[rows[0]], 0.0)
        np.testing.assert_array_equal(frames.previous_action[rows[1:]], frames.action[rows[:-1]])
        with torch.no_grad():
            h, _ = model.mdn.memory(torch.from_numpy(frames.z[rows]).float()[None],
                                    torch.from_numpy(frames.action[rows]).float()[None])
        np.testing.assert_allclose(frames.h[rows[1:]], h[0, :-1].numpy(), atol=1e-5)
        np.testing.assert_array_equal(frames.h[rows[0]], 0.0)
        assert frames.measures[rows[0], 0] < 1.0 < frames.measures[rows[-1], 0]  # from standstill, then moving
