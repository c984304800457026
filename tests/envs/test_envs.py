"""Every registered gailkit/ id passes Gymnasium's checker; fixed horizons do not leak reward."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import gailkit
from gailkit.envs import NEEDS_ARGUMENTS, AbsorbingStateWrapper, registered_ids


def test_import_registers_ids():
    ids = registered_ids()
    assert "gailkit/CartPoleFixedHorizon-v1" in ids and "gailkit/HopperAbsorbing-v5" in ids
    assert all(i in gailkit.envs.REGISTRY for i in ids)


@pytest.mark.parametrize("env_id", sorted(set(registered_ids()) - NEEDS_ARGUMENTS))
def test_check_env(env_id):  # gailkit/Dream-v0 is checked in tests/worldmodels with a saved model
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "env is wrapped" and infinite-bounds notices
        check_env(env.unwrapped if "FixedHorizon" in env_id else env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id, horizon", [
    ("gailkit/CartPoleFixedHorizon-v1", 500),
    ("gailkit/AcrobotFixedHorizon-v1", 500),
    ("gailkit/MountainCarFixedHorizon-v0", 200),
])
def test_fixed_horizon_never_terminates(env_id, horizon):
    env = gym.make(env_id)
    env.reset(seed=0)
    for t in range(horizon):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (t == horizon - 1)


def test_fixed_cartpole_reward_is_the_old_termination_signal():
    fixed, plain = gym.make("gailkit/CartPoleFixedHorizon-v1"), gym.make("CartPole-v1")
    fixed.reset(seed=3), plain.reset(seed=3)
    rewards = []
    for _ in range(500):
        _, r, *_ = fixed.step(0)  # always push left: falls quickly
        rewards.append(r)
    t = 0
    while True:
        _, _, terminated, _, _ = plain.step(0)
        t += 1
        if terminated:
            break
    assert rewards[: t - 1] == [1.0] * (t - 1) and rewards[t - 1] == 0.0  # same dynamics, same end step
    assert sum(rewards) < 500 and rewards[-1] == 0.0


def test_absorbing_state_wrapper():
    env = AbsorbingStateWrapper(gym.make("CartPole-v1"), horizon=60)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and obs[-1] == 0.0
    seen_absorbing, steps = 0, 0
    while True:
        obs, r, terminated, truncated, info = env.step(0)
        steps += 1
        assert not terminated
        if info.get("absorbing"):
            np.testing.assert_array_equal(obs, [0, 0, 0, 0, 1])
            assert r == 0.0
            seen_absorbing += 1
        if truncated:
            break
    assert steps == 60 and seen_absorbing > 40  # CartPole falls in ~10 steps when pushed left
    with pytest.raises(ValueError, match="needs a horizon"):
        AbsorbingStateWrapper(gym.make("CartPole-v1", max_episode_steps=None).unwrapped)


def test_half_cheetah_with_position_is_half_cheetah_v5_with_the_x_position_first():
    plain, with_x = gym.make("HalfCheetah-v5"), gym.make("gailkit/HalfCheetahWithPosition-v5")
    a, _ = plain.reset(seed=3)
    b, _ = with_x.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(50):
        np.testing.assert_array_equal(b[1:], a)
        assert b[0] == with_x.unwrapped.data.qpos[0]  # the torso's x, which HalfCheetah-v5 leaves out
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        a, ra, *_ = plain.step(action)
        b, rb, *_ = with_x.step(action)
        assert ra == rb
    assert b[0] != 0.0, "the torso never moved: the check of x shows nothing"
    assert with_x.spec.max_episode_steps == plain.spec.max_episode_steps == 1000
