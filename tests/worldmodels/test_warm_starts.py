"""Dreams that start inside real episodes: M's memory warmed on the real steps before, checked against
M stepped one step at a time; the controller's search and the iterative procedure in them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gailkit.errors import UsageError
from gailkit.nn.checkpoint import read_json
from gailkit.worldmodels.controller import DreamTrainingConfig, dream_fitness, train_controller_in_dream
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.dream import BatchedDream
from gailkit.worldmodels.iterative import IterativeConfig, train_iteratively
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.train import train_mdn, train_vae, warm_starts

ENV = "gailkit/CartPoleCentredPixels-v1"
START = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    collect_chunks(ENV, root / "data", 6, progress=False)  # random play: episodes of 8 to 40 steps
    train_vae(root / "data", root / "model", latent_dim=8, epochs=0, progress=False)  # V as initialised will do
    return root, train_mdn(root / "data", root / "model", epochs=1, hidden=16, progress=False)


def test_warm_starts_are_m_stepped_over_each_episode_s_first_steps(run):
    root, model = run
    z, (h, c) = warm_starts(model, root / "data", START, latent_noise=0.0)  # V's means: no draw to match
    chunk = load_chunk(chunk_paths(root / "data")[0])
    f0 = a0 = 0
    ref_z, ref_h, ref_c = [], [], []
    with torch.no_grad():
        for length in chunk["lengths"]:
            mu, _ = model.posterior(chunk["frames"][f0 : f0 + length + 1])
            if length > START:  # an episode that ends before the start gives none
                state = None
                for t in range(START):
                    *_, state, _ = model.mdn.step(mu[t : t + 1], torch.as_tensor(chunk["actions"][a0 + t : a0 + t + 1]),
                                                  state)
                ref_z.append(mu[START])
                ref_h.append(state[0][0, 0])
                ref_c.append(state[1][0, 0])
            f0, a0 = f0 + length + 1, a0 + length
    assert len(ref_z) == len(z) >= 3, (len(ref_z), len(z))
    torch.testing.assert_close(z, torch.stack(ref_z), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h[0], torch.stack(ref_h), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c[0], torch.stack(ref_c), rtol=1e-4, atol=1e-5)
    with pytest.raises(UsageError, match="lasts more than 500 steps"):
        warm_starts(model, root / "data", 500)


def test_dream_fitness_from_warm_starts_is_the_controller_in_m_s_dream_from_there(run):
    root, model = run
    z0, state = warm_starts(model, root / "data", START, latent_noise=0.0)
    controller = controller_for(model)
    params = np.random.default_rng(0).normal(size=(2, controller.n_params))
    rollouts, steps, seed = 3, 20, 5
    got = dream_fitness(model, controller, params, rollouts=rollouts, max_steps=steps, tau=1.0, seed=seed,
                        start_z=z0, start_state=state, latent_noise=0.0)

    gen = torch.Generator().manual_seed(seed)  # the reference: one dream at a time, M stepped by hand
    n = len(params) * rollouts
    pick = torch.randint(len(z0), (n,), generator=gen)
    z, hc = z0[pick], (state[0][:, pick], state[1][:, pick])
    h = hc[0][0]
    ret, alive = np.zeros(n), np.ones(n, bool)
    with torch.no_grad():
        for _ in range(steps):
            a = controller.act(np.repeat(params, rollouts, 0), torch.cat([z, h], 1).numpy())
            z, r, p_done, hc, h = model.mdn.step(z, torch.as_tensor(a), hc, latent_noise=0.0)
            ret += r.numpy().astype(np.float32) * alive
            alive &= ~(torch.rand(n, generator=gen) < p_done).numpy()
    np.testing.assert_allclose(got, ret.reshape(2, rollouts).mean(1), rtol=1e-4, atol=1e-4)
    cold = dream_fitness(model, controller, params, rollouts=rollouts, max_steps=steps, tau=1.0, seed=seed,
                         start_z=z0, latent_noise=0.0)
    assert not np.allclose(cold, got), "M's memory of the real steps changes the dream"


def test_a_dream_start_needs_its_states_and_a_step_inside_the_horizon(run, tmp_path):
    root, model = run
    z0, state = warm_starts(model, root / "data", START)
    with pytest.raises(UsageError, match="dream start 30"):
        DreamTrainingConfig(max_steps=30, dream_start=30)
    with pytest.raises(ValueError, match="needs its start latents"):
        BatchedDream(model, 2).reset(state=state)
    with pytest.raises(ValueError, match="dream_start 6 without a start state"):
        train_controller_in_dream(model, DreamTrainingConfig(generations=1, popsize=4, max_steps=30, dream_start=START),
                                  tmp_path / "c", start_z=z0, progress=False)
    with pytest.raises(ValueError, match="dream_start 0 with a start state"):
        train_controller_in_dream(model, DreamTrainingConfig(generations=1, popsize=4, max_steps=30), tmp_path / "c",
                                  start_z=z0, start_state=state, progress=False)
    assert not (tmp_path / "c").exists()


def test_iterations_in_dreams_started_inside_the_newest_episodes(run, tmp_path):
    root, model = run
    collect_chunks(ENV, tmp_path / "newest", 2, seed=100, progress=False)
    cfg = IterativeConfig(iterations=2, episodes=3, mdn_epochs=1, eval_episodes=1)
    ctrl = DreamTrainingConfig(generations=1, popsize=4, rollouts=1, max_steps=30, tau=1.0, dream_start=2,
                               sigma0=1e-6, solution="mean")  # a search that stays where it starts
    x0 = np.random.default_rng(1).normal(size=controller_for(model).n_params)
    records = train_iteratively(root / "model", [root / "data", tmp_path / "newest"], ENV, cfg, ctrl, tmp_path / "it",
                                mdn_options={"hidden": 16}, x0=x0, progress=False)
    assert [r["episodes"] for r in records] == [8, 11]
    assert all(np.isfinite(r["dream_return"]) and 1 <= r["real_return"] <= 30 for r in records), records
    for saved in read_json(tmp_path / "it" / "iterations.json", what="test")["records"]:
        np.testing.assert_allclose(saved["best_x"], x0, atol=1e-4)  # the search started from x0, then went on
    with pytest.raises(UsageError, match="lasts more than 40 steps"):  # the newest folder's episodes are too short
        train_iteratively(root / "model", [root / "data", tmp_path / "newest"], ENV, cfg,
                          DreamTrainingConfig(generations=1, popsize=4, max_steps=200, dream_start=40),
                          tmp_path / "it40", mdn_options={"hidden": 16}, progress=False)


def test_cli_trains_c_in_dreams_started_inside_the_episodes_and_refuses_it_in_the_real_env(run, tmp_path, capsys):
    import shutil

    from gailkit.cli import main
    from gailkit.worldmodels.controller import load_config

    root, _ = run
    for name in ("data", "model"):
        shutil.copytree(root / name, tmp_path / name)
    common = ["--dir", str(tmp_path), "--env", ENV, "--generations", "1", "--popsize", "4", "--rollouts", "2"]
    assert main(["worldmodel", "train-controller", *common, "--dream-start", str(START)]) == 0
    assert load_config(tmp_path / "controller_dream").dream_start == START
    assert main(["worldmodel", "train-controller", *common, "--where", "real", "--dream-start", "5"]) == 2
    assert "--dream-start starts dreams inside the data's episodes" in capsys.readouterr().err
    assert not (tmp_path / "controller_real").exists()
