"""CMA-ES: converges on standard test functions and resumes exactly from a checkpoint."""

import dataclasses

import numpy as np
import pytest

from gailkit.worldmodels.cmaes import CMAES


def run(es, f, generations):
    for _ in range(generations):
        xs = es.ask()
        es.tell(np.array([f(x) for x in xs]))
    return es


def test_sphere_and_rosenbrock():
    sphere = run(CMAES(np.full(10, 3.0), 1.0, seed=0), lambda x: float(x @ x), 250)
    assert sphere.best_f < 1e-10
    rosen = run(CMAES(np.zeros(5), 0.5, seed=0),
                lambda x: float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)), 600)
    assert rosen.best_f < 1e-6 and np.allclose(rosen.best_x, 1.0, atol=1e-2)


def test_ill_conditioned_ellipsoid_learns_the_covariance():
    scales = 10.0 ** np.linspace(0, 3, 6)
    es = run(CMAES(np.ones(6), 1.0, seed=1), lambda x: float(np.sum((scales * x) ** 2)), 400)
    assert es.best_f < 1e-8


def test_checkpoint_resumes_identically(tmp_path):
    f = lambda x: float(np.sum((x - 2.0) ** 2))  # noqa: E731
    straight = run(CMAES(np.zeros(4), 1.0, seed=3), f, 30)
    half = run(CMAES(np.zeros(4), 1.0, seed=3), f, 15)
    half.save(tmp_path)
    resumed = run(CMAES.load(tmp_path), f, 15)
    np.testing.assert_array_equal(resumed.mean, straight.mean)
    assert resumed.sigma == straight.sigma and resumed.generation == 30


def test_tell_checks_its_input():
    es = CMAES(np.zeros(3), 1.0)
    with pytest.raises(RuntimeError, match="without a preceding ask"):
        es.tell(np.zeros(es.lam))
    es.ask()
    with pytest.raises(ValueError, match="finite fitness"):
        es.tell(np.full(es.lam, np.nan))


def test_controller_improves_its_dream_return(tmp_path):
    import gymnasium as gym
    import torch

    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    with torch.no_grad():  # a world whose reward follows the action fed to M: action 1 pays
        model.mdn.reward_head.weight.zero_()
        model.mdn.reward_head.bias.zero_()
        model.mdn.lstm.weight_ih_l0[:, 4:].mul_(10.0)
        model.mdn.reward_head.weight.copy_(torch.randn(1, 8))
        model.mdn.done_head.bias.fill_(-20.0)  # dreams never end early
    cfg = DreamTrainingConfig(generations=12, popsize=10, rollouts=2, max_steps=30, seed=0)
    best, history = train_controller_in_dream(model, cfg, tmp_path, progress=False)
    assert history[-1]["mean"] > history[0]["mean"] + 0.1 * abs(history[0]["mean"]) + 1e-3
    resumed_cfg = dataclasses.replace(cfg, generations=14)
    _, more = train_controller_in_dream(model, resumed_cfg, tmp_path, resume=True, progress=False)
    assert [h["generation"] for h in more] == list(range(1, 15))
