"""The `quick` preset's pipeline on the pixel test bed: M predicts, C acts through V and M.

The fast tests use a few episodes and a small M: M's predicted next latent beats copying the
current one, and the controller's actions reach the real environment. Whether the whole preset
pays off (a controller trained only in M's dream against the random policy) takes minutes, so
it is measured by ``scripts/bench_worldmodel_quick.py`` (one JSON per seed in scripts/results/)
and repeated here only under ``-m slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gailkit.errors import UsageError
from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.real import evaluate_controller
from gailkit.worldmodels.train import start_latents, train_mdn, train_vae

ENV = WM_PRESETS["quick"].env


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """12 random episodes, V left untrained, a small M trained on V's latents: the machinery the
    controller tests below need. (Whether M learns the dynamics is only measurable with a trained
    V: `scripts/bench_worldmodel_quick.py` reports it, the slow tests below check the preset.)"""
    root = tmp_path_factory.mktemp("small")
    collect_chunks(ENV, root / "data", 12, progress=False)
    collect_chunks(ENV, root / "held_out", 4, seed=500, progress=False)
    train_vae(root / "data", root / "model", latent_dim=16, epochs=0, progress=False)
    model = train_mdn(root / "data", root / "model", epochs=300, seq_len=16, hidden=32, progress=False)
    return root, model


def test_controller_actions_reach_the_real_env(small_run):
    _, model = small_run
    c = controller_for(model)
    always = np.zeros((2, c.n_params))
    always[0, -2] = always[1, -1] = 1.0  # bias only: always push left / always push right
    cut = evaluate_controller(model, always[0], ENV, 3, max_steps=5)
    np.testing.assert_array_equal(cut, [5.0, 5.0, 5.0])  # no CartPole falls within 5 steps
    for params in always:
        one_side = evaluate_controller(model, params, ENV, 5)
        assert one_side.max() <= 15, f"a one-sided push kept the pole up for {one_side} steps"
    random = evaluate_controller(model, None, ENV, 10)
    assert random.mean() > 16, f"random play lasted {random} steps"  # ~22: longer than any one-sided push


def test_dream_training_runs_and_v_only_controller_sees_z_alone(small_run, tmp_path):
    root, model = small_run
    cfg = DreamTrainingConfig(generations=2, popsize=6, rollouts=2, max_steps=20)
    best, history = train_controller_in_dream(model, cfg, tmp_path / "c", start_z=start_latents(model, root / "data"),
                                              progress=False)
    assert [h["generation"] for h in history] == [1, 2] and best.shape == (controller_for(model).n_params,)
    with pytest.raises(UsageError, match="already holds a controller"):  # never overwritten silently
        train_controller_in_dream(model, cfg, tmp_path / "c", start_z=start_latents(model, root / "data"),
                                  progress=False)
    v_only = controller_for(model, memory=False)
    assert v_only.in_dim == model.latent_dim
    assert v_only.n_params == 2 * (model.latent_dim + 1)
    assert controller_for(model, n_params=v_only.n_params).in_dim == model.latent_dim
    np.testing.assert_array_equal(evaluate_controller(model, np.zeros(v_only.n_params), ENV, 2, max_steps=5), [5, 5])
    with pytest.raises(ValueError, match="fit neither"):
        evaluate_controller(model, np.zeros(7), ENV, 1)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The whole quick preset, seed 0 (3-10 minutes on one core)."""
    p = WM_PRESETS["quick"]
    root = tmp_path_factory.mktemp("quick")
    collect_chunks(p.env, root / "data", p.episodes, policy=p.collect_policy, progress=False)
    train_vae(root / "data", root / "model", **p.vae_options(), progress=False)
    model = train_mdn(root / "data", root / "model", **p.mdn_options(), progress=False)
    cfg = DreamTrainingConfig(**p.controller_options())
    best, history = train_controller_in_dream(model, cfg, root / "controller",
                                              start_z=start_latents(model, root / "data"),
                                              progress=False)
    return p, root, model, best, history


@pytest.mark.slow
def test_quick_preset_v_encodes_more_than_the_mean_frame(quick_run):
    _, root, model, _, _ = quick_run
    frames = load_chunk(chunk_paths(root / "data")[0])["frames"][:256]
    x = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        mean, _ = model.vae.encode(x)
        mse = ((model.vae.decode(mean) - x) ** 2).sum((1, 2, 3)).mean().item()
    mean_frame_mse = ((x.mean(0, keepdim=True) - x) ** 2).sum((1, 2, 3)).mean().item()
    # the pole's angle is in z, not averaged away; the script's held-out frames give 0.014 / 0.030 / 0.025 (seeds 0-2)
    assert mse < 0.5 * mean_frame_mse, f"V {mse:.1f} vs the mean frame {mean_frame_mse:.1f}"


@pytest.mark.slow
def test_quick_preset_dream_trained_controller_beats_random_in_the_real_env(quick_run):
    p, _, model, best, history = quick_run
    assert history[-1]["mean"] > history[0]["mean"], (f"CMA-ES dream return {history[0]['mean']} -> "
                                                      f"{history[-1]['mean']}")
    controller = evaluate_controller(model, best, p.env, 20)
    random = evaluate_controller(model, None, p.env, 20)
    # Random play lasts ~24 steps, a controller that ignores the frames (always one side) ~10.
    # scripts/bench_worldmodel_quick.py, seeds 0 / 1 / 2: 132.8 / 347.0 / 310.0 (5.0x / 13.2x / 11.8x random)
    assert controller.mean() > 2 * random.mean(), f"controller {controller.mean():.1f} vs random {random.mean():.1f}"
