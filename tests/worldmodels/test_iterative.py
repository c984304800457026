"""Iterative training: collect with the controller, refit M on all data, continue C; resumes."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from gailkit.errors import UsageError
from gailkit.nn.checkpoint import read_json, write_json
from gailkit.worldmodels.controller import DreamTrainingConfig
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.iterative import SELECT_SEED, IterativeConfig, kept_iteration, train_iteratively
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import ControllerPolicy, evaluate_controller
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
    state = read_json(tmp_path / "it" / "iterations.json")
    def selected(r: dict, episodes: int, max_steps: int | None) -> float:
        model = WorldModel.load(tmp_path / "it" / f"iter_{r['iteration']}" / "model")
        return float(evaluate_controller(model, np.asarray(r["best_x"]), ENV, episodes, seed=SELECT_SEED,
                                         max_steps=max_steps).mean())

    for r in state["records"]:  # each controller scored on the selection tracks, apart from the evaluation ones,
        # in whole episodes (as the evaluation runs them), not cut at C's 30 training steps
        assert r["select_return"] == selected(r, cfg.select_episodes, None) and r["select_max_steps"] is None
    for r in state["records"]:  # a folder from before the selection tracks: resuming measures them
        del r["select_return"], r["select_episodes"], r["select_max_steps"]
    write_json(tmp_path / "it" / "iterations.json", state)
    with pytest.raises(UsageError, match="no return on the selection tracks"):
        kept_iteration(tmp_path / "it")
    again = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, cfg, ctrl, tmp_path / "it", **kw)
    assert again == records
    cut = dataclasses.replace(cfg, select_episodes=3, select_max_steps=ctrl.max_steps)
    more = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, cut, ctrl, tmp_path / "it", **kw)
    for r, before, x in zip(more, records, state["records"], strict=True):  # measured again: on 3, cut at 30
        assert r == before | {"select_return": selected(x, 3, 30), "select_episodes": 3, "select_max_steps": 30}
    # a folder from before select_max_steps was cut at C's max_steps: kept where that is the cut asked for,
    # measured again in whole episodes where those are
    state = read_json(tmp_path / "it" / "iterations.json")
    for r in state["records"]:
        r |= {"select_return": -1.0}
        del r["select_max_steps"]
    write_json(tmp_path / "it" / "iterations.json", state)
    kept = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, cut, ctrl, tmp_path / "it", **kw)
    assert [r["select_return"] for r in kept] == [-1.0, -1.0]
    whole = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, dataclasses.replace(cfg, select_episodes=3),
                              ctrl, tmp_path / "it", **kw)
    assert [r["select_return"] for r in whole] == [selected(x, 3, None) for x in state["records"]]
    state = read_json(tmp_path / "it" / "iterations.json")
    for r in state["records"]:
        r |= {"select_return": -1.0}
    write_json(tmp_path / "it" / "iterations.json", state)
    at_horizon = dataclasses.replace(cfg, select_episodes=3, select_max_steps=gym.spec(ENV).max_episode_steps)
    kept = train_iteratively(tmp_path / "model", tmp_path / "data", ENV, at_horizon, ctrl, tmp_path / "it", **kw)
    assert [r["select_return"] for r in kept] == [-1.0, -1.0]  # a cut at the env's horizon is whole episodes
    with pytest.raises(UsageError, match="select_max_steps=0: must be >= 1"):
        train_iteratively(tmp_path / "model", tmp_path / "data", ENV, dataclasses.replace(cfg, select_max_steps=0),
                          ctrl, tmp_path / "it", **kw)
    with pytest.raises(UsageError, match="multiple of the frame skip"):
        train_iteratively(tmp_path / "model", tmp_path / "data", ENV, dataclasses.replace(cfg, select_max_steps=31),
                          dataclasses.replace(ctrl, frame_skip=2), tmp_path / "it", **kw)
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


def test_kept_iteration_picks_on_the_selection_tracks(tmp_path, capsys):
    from gailkit.cli import main

    collect_chunks(ENV, tmp_path / "data", 3, progress=False)
    train_vae(tmp_path / "data", tmp_path / "model", latent_dim=8, epochs=1, progress=False)
    cfg = IterativeConfig(iterations=3, episodes=2, mdn_epochs=1, eval_episodes=1, select_episodes=2)
    ctrl = DreamTrainingConfig(generations=1, popsize=4, rollouts=1, max_steps=20, tau=1.0)
    train_iteratively(tmp_path / "model", tmp_path / "data", ENV, cfg, ctrl, tmp_path / "iterations",
                      mdn_options={"hidden": 16}, progress=False)
    state = read_json(tmp_path / "iterations" / "iterations.json")
    for r, select in zip(state["records"], (5.0, 12.0, 7.0), strict=True):  # iteration 1 best, 2 last
        r |= {"select_return": select, "select_episodes": 8}  # on as many tracks as the command line's iterate
    write_json(tmp_path / "iterations" / "iterations.json", state)
    best = kept_iteration(tmp_path / "iterations")
    assert best["iteration"] == 1 and best["best_x"] == state["records"][1]["best_x"]
    assert best["model_dir"] == tmp_path / "iterations" / "iter_1" / "model"
    assert best["controller_dir"] == tmp_path / "iterations" / "iter_1" / "controller"
    assert kept_iteration(tmp_path / "iterations", "last")["iteration"] == 2
    assert kept_iteration(tmp_path / "iterations", 0)["iteration"] == 0
    assert kept_iteration(tmp_path / "iterations", iterations=1)["iteration"] == 0  # among the first only
    with pytest.raises(UsageError, match="0 to 2"):
        kept_iteration(tmp_path / "iterations", 3)
    with pytest.raises(UsageError, match="no iterative run"):
        kept_iteration(tmp_path / "elsewhere")

    # the command line: iterate reads the finished iterations back and names the best; eval drives its M and C
    assert main(["worldmodel", "iterate", "--dir", str(tmp_path), "--env", ENV, "--iterations", "3"]) in (0, None)
    out = capsys.readouterr().out
    assert "| 12.0 |" in out and "the best on the selection tracks is iteration 1" in out, out
    assert main(["worldmodel", "eval", "--dir", str(tmp_path), "--env", ENV, "--iteration", "best",
                 "--eval-episodes", "2"]) in (0, None)
    out = capsys.readouterr().out
    model = WorldModel.load(tmp_path / "iterations" / "iter_1" / "model")
    want = evaluate_controller(model, np.asarray(best["best_x"]), ENV, 2, latent_noise=ctrl.latent_noise)
    assert "iteration 1 of" in out and f"{want.mean():.1f} +/- {want.std():.1f}" in out, out
    assert main(["worldmodel", "eval", "--dir", str(tmp_path), "--env", ENV, "--iteration", "3"]) == 2
    assert "0 to 2" in capsys.readouterr().err
    assert main(["worldmodel", "train-mdn", "--dir", str(tmp_path), "--env", ENV, "--iteration", "best"]) == 2
    assert "--iteration picks an iterate round" in capsys.readouterr().err
    # dreams that halt where M's disagree need an ensemble of them, in the dream
    halting = ["--dir", str(tmp_path), "--env", ENV, "--where", "dream", "--halt-quantile", "0.99"]
    assert main(["worldmodel", "train-controller", *halting]) == 2
    assert "this world model has one M (train M with --m-ensemble K" in capsys.readouterr().err
    assert main(["worldmodel", "iterate", *halting, "--dir", str(tmp_path / "fresh")]) == 2
    assert "halts dreams where an ensemble's M's disagree: fit one" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()
    assert main(["worldmodel", "train-controller", *halting[:-3], "real", *halting[-2:]]) == 2
    assert "in the real env nothing halts" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["worldmodel", "train-controller", *halting[:-1], "2"])
    assert stop.value.code == 2 and "a quantile is at most 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["worldmodel", "eval", "--dir", str(tmp_path), "--iteration", "first"])
    assert stop.value.code == 2 and "use best, last or an iteration's number" in capsys.readouterr().err
    # more selection tracks: iterate measures every round again on them, in whole episodes
    assert main(["worldmodel", "iterate", "--dir", str(tmp_path), "--env", ENV, "--iterations", "3",
                 "--select-tracks", "3"]) in (0, None)
    assert "| 12.0 |" not in capsys.readouterr().out
    state = read_json(tmp_path / "iterations" / "iterations.json")
    assert [(r["select_episodes"], r["select_max_steps"]) for r in state["records"]] == [(3, None)] * 3
    model = WorldModel.load(tmp_path / "iterations" / "iter_1" / "model")
    want = evaluate_controller(model, np.asarray(best["best_x"]), ENV, 3, seed=SELECT_SEED,
                               latent_noise=ctrl.latent_noise)
    assert state["records"][1]["select_return"] == float(want.mean())
