"""Batched real-environment evaluation equals one-by-one evaluation, whatever the batching."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from gailkit.errors import UsageError
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import evaluate_controller, evaluate_controllers

ENV = "gailkit/CartPoleCentredPixels-v1"  # 64x64 frames, cheap


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2)  # random V and M


@pytest.mark.parametrize("memory", [True, False], ids=["z+h", "z only"])
def test_batched_equals_one_by_one(model, memory):
    c = controller_for(model, memory=memory)
    params = np.random.default_rng(0).normal(0, 1.0, (3, c.n_params))
    batched = evaluate_controllers(model, params, ENV, 4, seed=7, max_steps=60)
    assert batched.shape == (3, 4)
    one_by_one = np.stack([evaluate_controller(model, p, ENV, 4, seed=7, max_steps=60) for p in params])
    np.testing.assert_array_equal(batched, one_by_one)
    few_envs = evaluate_controllers(model, params, ENV, 4, seed=7, max_steps=60, n_envs=2)  # slots reuse envs
    np.testing.assert_array_equal(batched, few_envs)
    assert len(np.unique(batched)) > 2, f"controllers should differ: {batched}"


def test_random_policy_and_tracks(model):
    a = evaluate_controller(model, None, ENV, 6, seed=3)
    np.testing.assert_array_equal(a, evaluate_controller(model, None, ENV, 6, seed=3))  # same seed, same numbers
    assert not np.array_equal(a, evaluate_controller(model, None, ENV, 6, seed=4))
    assert 10 < a.mean() < 60, f"random CartPole lasts ~22 steps, got {a}"


def test_frame_skip(model):
    c = controller_for(model)
    push = np.zeros((1, c.n_params))
    push[0, -1] = 1.0  # bias only: always the same action, so holding it changes nothing
    for skip in (2, 4):
        np.testing.assert_array_equal(evaluate_controllers(model, push, ENV, 3, frame_skip=skip),
                                      evaluate_controllers(model, push, ENV, 3))
    with pytest.raises(UsageError, match="does not divide .*500"):  # CartPole's 500 steps
        evaluate_controllers(model, push, ENV, 1, frame_skip=3)
    with pytest.raises(UsageError, match="does not divide --max-steps"):
        evaluate_controllers(model, push, ENV, 1, frame_skip=4, max_steps=50)


def test_env_with_other_frames_is_refused(model):
    with pytest.raises(UsageError, match="64x64"):
        evaluate_controllers(model, None, "gailkit/FastCarRacing96-v3", 1)


def test_world_model_of_another_env_is_refused(tmp_path):
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2, env_id=ENV)
    model.save(tmp_path / "m")
    loaded = WorldModel.load(tmp_path / "m")
    assert loaded.env_id == ENV
    with pytest.raises(UsageError, match="trained on gailkit/CartPoleCentredPixels-v1 frames, not"):
        evaluate_controllers(loaded, None, "gailkit/PendulumPixels-v1", 1)
    racing = WorldModel(gym.spaces.Box(-1, 1, (3,)), env_id="gailkit/CarRacing64-v3")
    racing.check_env("gailkit/FastCarRacing64-v3")  # the same pictures: accepted


@pytest.mark.parametrize("memory", [True, False], ids=["z+h", "z only"])
def test_latent_noise_zero_feeds_v_s_mean(model, memory):
    """``latent_noise=0``: C and M see V's posterior mean, so V's variance no longer matters (it does with
    draws); the default draws, and the random policy's actions do not depend on the scale."""
    import copy

    wide = copy.deepcopy(model)
    with torch.no_grad():
        wide.vae.logvar.bias += 3.0  # the same means, a wider posterior
    params = np.random.default_rng(1).normal(0, 1.0, (3, controller_for(model, memory=memory).n_params))

    def returns(m, noise):
        return evaluate_controllers(m, params, ENV, 4, seed=7, max_steps=60, latent_noise=noise)

    np.testing.assert_array_equal(returns(model, 0.0), returns(wide, 0.0))
    assert not np.array_equal(returns(model, 1.0), returns(wide, 1.0))
    default = evaluate_controllers(model, params, ENV, 4, seed=7, max_steps=60)
    np.testing.assert_array_equal(returns(model, 1.0), default)
    np.testing.assert_array_equal(evaluate_controllers(model, None, ENV, 4, seed=7, latent_noise=0.0),
                                  evaluate_controllers(model, None, ENV, 4, seed=7))
    # one scale per dimension: widening V's posterior where the scale is 0 changes nothing, elsewhere it does
    half = np.r_[np.zeros(4), np.ones(4)]
    wide_first = copy.deepcopy(model)
    with torch.no_grad():
        wide_first.vae.logvar.bias[:4] += 3.0
    np.testing.assert_array_equal(returns(model, half), returns(wide_first, half))
    assert not np.array_equal(returns(model, half[::-1]), returns(wide_first, half[::-1]))
    np.testing.assert_array_equal(returns(model, np.zeros(8)), returns(model, 0.0))
    np.testing.assert_array_equal(returns(model, np.ones(8)), default)
    with pytest.raises(ValueError, match=r"shape \(3,\): give one scale, or one per dimension of z \(8,\)"):
        returns(model, np.ones(3))
    with pytest.raises(ValueError, match="must be >= 0"):
        returns(model, -half)


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_controller_policy_drives_as_the_batched_evaluation(model, noise):
    """One frame at a time (GIFs, demonstrations, M's refit data), a controller sees the z it is evaluated on:
    the same V draw, or V's mean at ``latent_noise=0``, so the same episode's return."""
    from gailkit.envs.make import make_env
    from gailkit.worldmodels.real import ControllerPolicy

    params = np.random.default_rng(2).normal(0, 1.0, controller_for(model).n_params)
    batched = evaluate_controller(model, params, ENV, 2, seed=7, latent_noise=noise)
    env, policy = make_env(ENV), ControllerPolicy(model, params, latent_noise=noise)
    one_at_a_time = []
    for episode in range(2):
        obs, _ = env.reset(seed=7 + episode)
        rng, total, done = np.random.default_rng([7, episode]), 0.0, False
        policy.reset()
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs, rng))
            total, done = total + float(reward), terminated or truncated
        one_at_a_time.append(total)
    np.testing.assert_array_equal(batched, one_at_a_time)
    assert len(set(one_at_a_time)) == 2, one_at_a_time  # two episodes that differ: the comparison has teeth


def test_a_controller_trained_on_v_s_mean(tmp_path):
    """``DreamTrainingConfig(latent_noise=0)``: every candidate of the real-env search is scored fed V's mean,
    the config is saved with the controller (CLI evaluation reads it), and resuming with draws is refused;
    in the dream, every candidate is fed M's mixture mean."""
    import dataclasses

    from gailkit.nn.checkpoint import CheckpointError
    from gailkit.worldmodels.cmaes import CMAES
    from gailkit.worldmodels.controller import (
        DreamTrainingConfig,
        dream_fitness,
        load_config,
        train_controller_in_dream,
        train_controller_in_real,
    )

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2, env_id=ENV)
    with torch.no_grad():
        model.vae.logvar.bias += 2.0  # a wide posterior: draws and means give other returns
    model.save(tmp_path / "model")
    cfg = DreamTrainingConfig(generations=1, popsize=4, rollouts=2, max_steps=40, seed=3, memory=False,
                              latent_noise=0.0)
    _, history = train_controller_in_real(tmp_path / "model", ENV, cfg, tmp_path / "c", workers=1, progress=False)
    candidates = CMAES(np.zeros(controller_for(model, memory=False).n_params), cfg.sigma0, popsize=4, seed=3).ask()

    def fitness(noise):
        return evaluate_controllers(model, candidates, ENV, 2, seed=3 * 100_003, max_steps=40,
                                    latent_noise=noise).mean()

    assert history[0]["mean"] == fitness(0.0) != fitness(1.0), (history[0]["mean"], fitness(0.0), fitness(1.0))
    assert load_config(tmp_path / "c").latent_noise == 0.0
    with pytest.raises(CheckpointError, match="latent_noise: 0.0 -> 1.0"):
        train_controller_in_real(tmp_path / "model", ENV, dataclasses.replace(cfg, generations=2, latent_noise=1.0),
                                 tmp_path / "c", workers=1, resume=True, progress=False)
    # in the dream, C fed the mean is fed M's mixture mean: its search scores what dream_fitness does so
    _, dreamt = train_controller_in_dream(model, cfg, tmp_path / "dream", progress=False)
    controller = controller_for(model, memory=False)

    def dreamt_fitness(noise):
        return dream_fitness(model, controller, candidates, rollouts=2, max_steps=40, tau=cfg.tau, seed=3 * 100_003,
                             latent_noise=noise).mean()

    assert dreamt[0]["mean"] == dreamt_fitness(0.0) != dreamt_fitness(1.0), (dreamt, dreamt_fitness(1.0))
    with pytest.raises(UsageError, match="must be >= 0"):
        DreamTrainingConfig(latent_noise=-1.0)


def test_cli_trains_on_v_s_mean_on_request_and_evaluates_as_trained(tmp_path, monkeypatch, capsys):
    """``gailkit worldmodel train-controller --latent-noise 0`` trains C fed V's mean; ``eval`` then feeds it
    V's mean too, without being told; a negative scale is a usage error."""
    import gailkit.worldmodels.real as real
    from gailkit.cli import main
    from gailkit.worldmodels.controller import load_config

    torch.manual_seed(0)
    WorldModel(gym.spaces.Discrete(2), latent_dim=16, hidden=256, n_mixtures=5, env_id=ENV).save(tmp_path / "model")
    common = ["--preset", "quick", "--dir", str(tmp_path), "--where", "real"]
    main(["worldmodel", "train-controller", *common, "--latent-noise", "0", "--generations", "1", "--popsize", "4",
          "--rollouts", "1", "--workers", "1"])
    assert load_config(tmp_path / "controller_real").latent_noise == 0.0
    seen = []
    evaluate = real.evaluate_controller
    monkeypatch.setattr(real, "evaluate_controller",
                        lambda *a, **kw: seen.append(kw["latent_noise"]) or evaluate(*a, **kw))
    main(["worldmodel", "eval", *common, "--eval-episodes", "2"])
    assert seen == [0.0, 0.0], seen
    assert "controller" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["worldmodel", "train-controller", *common, "--latent-noise", "-0.5"])
    assert exit_info.value.code == 2
    assert "--latent-noise: -0.5: must be >= 0" in capsys.readouterr().err
