"""Iterative training: collect with the controller, refit M on all data, continue C; resumes."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from gailkit.worldmodels.controller import DreamTrainingConfig
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.iterative import IterativeConfig, train_iteratively
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import ControllerPolicy
from gailkit.worldmodels.train import train_mdn, train_vae

ENV = "gailkit/CartPoleCentredPixels-v1"


def test_controller_policy_records_what_it_does(tmp_path):
    collect_chunks(ENV, tmp_path / "data", 2, progress=False)
    train_vae(tmp_path / "data", tmp_path / "model", latent_dim=8, epochs=0, progress=False)
    model = train_mdn(tmp_path / "data", tmp_path / "model", epochs=1, hidden=16, progress=False)
    c = controller_for(model)
    left = np.zeros(c.n_params)
    left[-2] = 1.0  # bias only: always push left (action 0)
    collect_chunks(ENV, tmp_path / "left", 3, policy=ControllerPolicy(model, left), progress=False)
    actions = load_chunk(chunk_paths(tmp_path / "left")[0])["actions"]
    assert set(actions.tolist()) == {0}, "the recorded actions are the controller's"


def test_iterations_run_record_the_gap_and_resume(tmp_path):
    collect_chunks(ENV, tmp_path / "data", 4, progress=False)
    train_vae(tmp_path / "data", tmp_path / "model", latent_dim=8, epochs=1, progress=False)
    train_mdn(tmp_path / "data", tmp_path / "model", epochs=1, hidden=16, progress=False)
    cfg = IterativeConfig(iterations=2, episodes=3, mdn_epochs=2, eval_episodes=2)
    ctrl = DreamTrainingConfig(generations=2, popsize=4, rollouts=1, max_steps=30)
    kw = dict(mdn_options={"hidden": 16}, progress=False)
    records = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, cfg, ctrl, tmp_path / "it", **kw)
    assert [r["iteration"] for r in records] == [0, 1]
    assert [r["episodes"] for r in records] == [4, 7]  # the controller's 3 episodes joined the data
    for r in records:
        assert np.isfinite(r["gap"]) and r["gap"] == r["dream_return"] - r["real_return"]
        assert 1 <= r["real_return"] <= 30
        assert np.isfinite(r["dream_return_at_tau"])  # C trained at tau 1.15: scored in that dream too
    assert len(chunk_paths(tmp_path / "it" / "iter_1" / "data")) == 1
    assert WorldModel.load(tmp_path / "it" / "iter_1" / "model").env_id == ENV
    again = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, cfg, ctrl, tmp_path / "it", **kw)
    assert again == records  # finished iterations are read back, not redone
    first = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, dataclasses.replace(cfg, iterations=1), ctrl,
                              tmp_path / "it", **kw)
    assert first == records[:1]  # a folder that holds more iterations gives the ones asked for


def test_controller_demos_are_pixel_demos_with_a_card(tmp_path, capsys):
    from gailkit.cli import main
    from gailkit.data import load_demos
    from gailkit.worldmodels.real import record_controller_demos

    model = WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2, env_id=ENV)
    params = np.zeros(controller_for(model).n_params)
    params[-1] = 1.0  # bias only: always push right
    record_controller_demos(model, params, ENV, 2, tmp_path / "wm_demos.npz", random_episodes=3)
    demos = load_demos(tmp_path / "wm_demos.npz", env=ENV)
    card = demos.metadata["expert_card"]
    assert len(demos) == 2 and demos.trajectories[0].obs.shape[1:] == (64, 64, 3)
    assert set(np.concatenate([t.acts for t in demos.trajectories]).tolist()) == {1}
    assert card["return_mean"] == float(np.mean(demos.returns)) and card["algo"] == "world model (V+M+C)"
    assert main(["worldmodel", "demos", "--dir", str(tmp_path)]) == 2  # no --out: a one-line error
    assert "needs --out" in capsys.readouterr().err


def test_iterations_start_from_several_data_folders(tmp_path):
    collect_chunks(ENV, tmp_path / "data", 2, progress=False)
    collect_chunks(ENV, tmp_path / "more", 3, seed=100, progress=False)
    train_vae(tmp_path / "data", tmp_path / "model", latent_dim=8, epochs=1, progress=False)
    cfg = IterativeConfig(iterations=1, mdn_epochs=1, eval_episodes=1)
    ctrl = DreamTrainingConfig(generations=1, popsize=4, rollouts=1, max_steps=10, tau=1.0)
    records = train_iteratively(tmp_path / "model", [tmp_path / "data", tmp_path / "more"], ENV, cfg, ctrl,
                                tmp_path / "it", mdn_options={"hidden": 16}, progress=False)
    assert records[0]["episodes"] == 5  # M was fitted on both folders
    assert "dream_return_at_tau" not in records[0]  # trained at tau 1: the dream return is that dream's
    fitted_on = (tmp_path / "it" / "iter_0" / "m_done").read_text()
    assert str(tmp_path / "data") in fitted_on and str(tmp_path / "more") in fitted_on
