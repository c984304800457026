"""An ensemble of M's: fitted from their own seeds, saved and loaded with the world model, and dreamt
with a member drawn per dream and step, checked against each member stepped by hand."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from gailkit.errors import UsageError
from gailkit.nn.checkpoint import CheckpointError
from gailkit.worldmodels.controller import DreamTrainingConfig
from gailkit.worldmodels.data import collect_chunks
from gailkit.worldmodels.dream import BatchedDream
from gailkit.worldmodels.iterative import IterativeConfig, train_iteratively
from gailkit.worldmodels.mdn_rnn import next_latent
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.train import start_latents, train_mdn, train_vae, warm_starts

ENV = "gailkit/CartPoleCentredPixels-v1"
M = {"epochs": 1, "hidden": 16, "progress": False}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    collect_chunks(ENV, root / "data", 6, progress=False)
    train_vae(root / "data", root / "model", latent_dim=8, epochs=0, progress=False)  # V as initialised will do
    single = copy.deepcopy(train_mdn(root / "data", root / "model", **M))
    return root, single, train_mdn(root / "data", root / "model", ensemble=3, **M)


def test_the_first_member_is_the_single_m_and_the_others_differ(run):
    root, single, model = run
    assert len(model.mdns) == 3
    for name, value in single.mdn.state_dict().items():
        torch.testing.assert_close(model.mdn.state_dict()[name], value, rtol=0, atol=0)
    for member in model.members:
        assert not torch.equal(member.lstm.weight_ih_l0, model.mdn.lstm.weight_ih_l0)
    assert not torch.equal(model.members[0].lstm.weight_ih_l0, model.members[1].lstm.weight_ih_l0)


def test_an_ensemble_is_saved_and_loaded_with_its_world_model(run):
    root, _, model = run
    loaded = WorldModel.load(root / "model")
    assert len(loaded.mdns) == 3
    for ours, theirs in zip(model.mdns, loaded.mdns):
        for name, value in ours.state_dict().items():
            torch.testing.assert_close(theirs.state_dict()[name], value, rtol=0, atol=0)
    (root / "model" / "mdn_rnn_2.safetensors").rename(root / "gone.safetensors")
    try:
        with pytest.raises(CheckpointError, match="mdn_rnn_2.safetensors"):
            WorldModel.load(root / "model")
    finally:
        (root / "gone.safetensors").rename(root / "model" / "mdn_rnn_2.safetensors")
    with pytest.raises(UsageError, match="at least 1"):
        train_mdn(root / "data", root / "model", ensemble=0, **M)


def test_each_dream_step_comes_from_one_member_and_c_sees_the_first_one_s_h(run):
    root, _, model = run
    n, steps = 64, 5
    z0 = start_latents(model, root / "data", latent_noise=0.0)[:1].repeat(n, 1)
    dream = BatchedDream(model, n, tau=1.0, seed=3, latent_noise=0.0, ensemble_draw="step")  # means: no draw
    obs = dream.reset(z0)
    states = [None] * 3
    z = z0
    chosen = []
    with torch.no_grad():
        for t in range(steps):
            a = np.random.default_rng(t).uniform(0, 1, (n, model.mdn_config.action_dim)).argmax(1)
            outs = [mdn(z.unsqueeze(1), torch.as_tensor(a).unsqueeze(1), s) for mdn, s in zip(model.mdns, states)]
            states = [out.state for out in outs]
            means = torch.stack([next_latent(o.logit_pi[:, 0], o.mu[:, 0], o.log_sigma[:, 0], latent_noise=0.0)
                                 for o in outs])  # (3, n, Z)
            rewards = torch.stack([o.reward[:, 0] for o in outs])  # (3, n)
            obs, r, _, _ = dream.step(a)
            # the reference, member by member: each dream's z and reward are one member's, the same one
            which = (dream.z[None] - means).abs().amax(-1).argmin(0)
            torch.testing.assert_close(dream.z, means[which, torch.arange(n)], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(r, rewards[which, torch.arange(n)].numpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(obs[:, model.latent_dim:], states[0][0][0].numpy(), rtol=1e-5, atol=1e-5)
            chosen.append(which)
            z = dream.z
    counts = torch.bincount(torch.cat(chosen), minlength=3)
    assert (counts > 0.2 * n * steps).all(), f"members drawn {counts.tolist()} times in {n * steps} steps"


def test_warm_starts_hold_each_member_s_memory_and_the_dream_checks_them(run):
    root, _, model = run
    z, (h, c) = warm_starts(model, root / "data", 6, latent_noise=0.0)
    assert h.shape == c.shape == (3, len(z), 16)
    for j, mdn in enumerate(model.mdns):
        alone = copy.copy(model)
        alone.mdn, alone.members = mdn, []
        zj, (hj, cj) = warm_starts(alone, root / "data", 6, latent_noise=0.0)
        torch.testing.assert_close(zj, z, rtol=0, atol=0)
        torch.testing.assert_close(hj[0], h[j], rtol=0, atol=0)
        torch.testing.assert_close(cj[0], c[j], rtol=0, atol=0)
    dream = BatchedDream(model, len(z), seed=0)
    obs = dream.reset(z, (h, c))
    np.testing.assert_array_equal(obs[:, model.latent_dim:], h[0].numpy())
    with pytest.raises(ValueError, match="holds 1 M's memories, the world model has 3"):
        dream.reset(z, (h[:1], c[:1]))


def test_iterations_refuse_a_folder_whose_model_holds_another_ensemble(run, tmp_path):
    root, _, _ = run
    it = IterativeConfig(iterations=1, mdn_epochs=1, eval_episodes=1)
    ctrl = DreamTrainingConfig(generations=1, popsize=4, rollouts=1, max_steps=10)
    options = {"hidden": 16}
    train_iteratively(root / "model", root / "data", ENV, it, ctrl, tmp_path / "it", progress=False,
                      mdn_options=options | {"ensemble": 2})
    assert len(WorldModel.load(tmp_path / "it" / "iter_0" / "model").mdns) == 2
    (tmp_path / "it" / "iterations.json").unlink()  # the iteration unfinished, its M fitted
    with pytest.raises(CheckpointError, match="holds 2 M's, this run fits 1"):
        train_iteratively(root / "model", root / "data", ENV, it, ctrl, tmp_path / "it", progress=False,
                          mdn_options=options)


def test_sb3_s_dream_vec_env_restarts_every_member_s_memory(run):
    from gailkit.worldmodels.vec_dream import DreamVecEnv

    _, _, model = run
    env = DreamVecEnv(model, 8, max_steps=3, seed=0)
    env.reset()
    ended = np.zeros(8, bool)
    for _ in range(3):  # the time limit ends every dream by the third step; M's done head may end some before
        _, _, dones, _ = env.step(np.zeros(8, dtype=np.int64))
        for h, c in env._dream.states:  # restarted dreams start from a zero memory in every M, the others do not
            assert (h[0, dones].abs().sum(1) == 0).all() and (c[0, dones].abs().sum(1) == 0).all()
            assert (h[0, ~dones].abs().sum(1) > 0).all()
        ended |= dones
    assert ended.all()


def test_sb3_s_dream_vec_env_draws_a_member_per_dream_again_at_each_restart(run):
    from gailkit.worldmodels.vec_dream import DreamVecEnv

    _, _, model = run
    env = DreamVecEnv(model, 64, max_steps=2, seed=0)  # per dream, the default
    env.reset()
    member, changed = env._dream.member.clone(), torch.zeros(64, dtype=torch.bool)
    assert len(torch.unique(member)) == 3
    for _ in range(6):
        _, _, dones, _ = env.step(np.zeros(64, dtype=np.int64))
        now = env._dream.member
        assert torch.equal(now[~torch.as_tensor(dones)], member[~torch.as_tensor(dones)])  # a dream keeps its M
        changed |= now != member
        member = now.clone()
    assert changed.sum() > 32, f"{int(changed.sum())} of 64 dreams drew another M at a restart"


def test_a_dream_drawn_per_dream_follows_one_member_from_start_to_end(run):
    root, _, model = run
    n, steps = 48, 6
    z0 = start_latents(model, root / "data", latent_noise=0.0)[:1].repeat(n, 1)
    dream = BatchedDream(model, n, tau=1.0, seed=4, latent_noise=0.0, ensemble_draw="dream")
    dream.reset(z0)
    states, z, followed = [None] * 3, z0, None
    with torch.no_grad():
        for t in range(steps):
            a = np.random.default_rng(t).integers(0, model.mdn_config.action_dim, n)
            outs = [mdn(z.unsqueeze(1), torch.as_tensor(a).unsqueeze(1), s) for mdn, s in zip(model.mdns, states)]
            states = [out.state for out in outs]
            means = torch.stack([next_latent(o.logit_pi[:, 0], o.mu[:, 0], o.log_sigma[:, 0], latent_noise=0.0)
                                 for o in outs])
            dream.step(a)
            which = (dream.z[None] - means).abs().amax(-1).argmin(0)
            torch.testing.assert_close(dream.z, means[which, torch.arange(n)], rtol=1e-5, atol=1e-5)
            followed = which if followed is None else followed
            assert torch.equal(which, followed), f"step {t}: a dream changed member"
            z = dream.z
    assert len(torch.unique(followed)) == 3, followed.tolist()
    with pytest.raises(ValueError, match="ensemble_draw must be one of"):
        BatchedDream(model, 2, ensemble_draw="episode")
    with pytest.raises(UsageError, match="unknown ensemble draw 'episode'"):
        DreamTrainingConfig(ensemble_draw="episode")


def test_disagreement_is_the_farthest_member_from_the_members_average():
    from gailkit.worldmodels.dream import disagreement

    gen = torch.Generator().manual_seed(0)
    logit_pi, mu = torch.randn(3, 5, 4, 2, generator=gen), torch.randn(3, 5, 4, 2, generator=gen)  # (K, n, Z, mix)
    pi = np.exp(logit_pi.numpy()) / np.exp(logit_pi.numpy()).sum(-1, keepdims=True)
    means = (pi * mu.numpy()).sum(-1)  # (K, n, Z): each member's expected next z
    want = np.sqrt(((means - means.mean(0)) ** 2).mean(-1)).max(0)
    np.testing.assert_allclose(disagreement(logit_pi, mu).numpy(), want, rtol=1e-5)
    same = disagreement(logit_pi[:1].repeat(3, 1, 1, 1), mu[:1].repeat(3, 1, 1, 1))
    assert (same < 1e-6).all(), f"members that agree do not disagree: {same.tolist()}"


def test_a_dream_halts_where_its_members_disagree_and_pays_the_halt_reward(run):
    from gailkit.worldmodels.dream import disagreement

    root, _, model = run
    n = 64
    spread = torch.randn(n, 8, generator=torch.Generator().manual_seed(1))
    z0 = start_latents(model, root / "data", latent_noise=0.0)[:1] + spread
    a = np.zeros(n, dtype=np.int64)
    with torch.no_grad():
        outs = [mdn(z0.unsqueeze(1), torch.as_tensor(a).unsqueeze(1)) for mdn in model.mdns]
    first = disagreement(torch.stack([o.logit_pi[:, 0] for o in outs]), torch.stack([o.mu[:, 0] for o in outs]))
    threshold = float(first.median())
    free, halting = (BatchedDream(model, n, tau=1.0, seed=5, halt_above=h) for h in (None, threshold))
    free.reset(z0), halting.reset(z0)
    _, r_free, t_free, _ = free.step(a)
    _, r, terminated, _ = halting.step(a)
    halted = (first > threshold).numpy()
    torch.testing.assert_close(halting.disagreement, first)
    assert 0 < halted.sum() < n
    assert (r[halted] == -100).all() and terminated[halted].all()
    np.testing.assert_array_equal(r[~halted], r_free[~halted])  # the others step as if nothing halted
    np.testing.assert_array_equal(terminated[~halted], t_free[~halted])
    with pytest.raises(ValueError, match="has one M"):
        BatchedDream(WorldModel(model.action_space, latent_dim=8, hidden=16), 2, halt_above=1.0)
    with pytest.raises(UsageError, match="must be > 0"):
        DreamTrainingConfig(halt_above=0.0)


def test_the_data_s_disagreement_sets_each_iteration_s_halt(run, tmp_path):
    from gailkit.worldmodels.train import ensemble_disagreements

    root, single, model = run
    found = ensemble_disagreements(model, root / "data", latent_noise=0.0)
    assert len(found) == sum(np.load(p)["lengths"].sum() for p in sorted((root / "data").glob("chunk_*.npz")))
    assert (found > 0).all()
    with pytest.raises(UsageError, match="has one M"):
        ensemble_disagreements(single, root / "data")
    it = IterativeConfig(iterations=1, mdn_epochs=1, eval_episodes=1, select_episodes=1, halt_quantile=0.9)
    ctrl = DreamTrainingConfig(generations=1, popsize=4, rollouts=1, max_steps=10, latent_noise=0.0)
    records = train_iteratively(root / "model", root / "data", ENV, it, ctrl, tmp_path / "it", progress=False,
                                mdn_options={"hidden": 16, "ensemble": 2})
    fitted = WorldModel.load(tmp_path / "it" / "iter_0" / "model")
    want = np.quantile(ensemble_disagreements(fitted, root / "data", latent_noise=0.0), 0.9)
    assert records[0]["halt_above"] == pytest.approx(want, rel=1e-6)
    with pytest.raises(UsageError, match="give one of them"):
        train_iteratively(root / "model", root / "data", ENV, it, dataclasses.replace(ctrl, halt_above=1.0),
                          tmp_path / "other", progress=False)


def test_searches_saved_before_the_per_dream_default_resume_as_they_ran(run, tmp_path):
    """Dreams follow one member per dream by default. A search saved drawing per step resumes without the
    option where there is one M (nothing to draw), is refused where there is an ensemble, and a checkpoint
    older than the option is read as drawing per step, as its search did."""
    import json

    from gailkit.worldmodels.controller import load_config, train_controller_in_dream

    root, single, model = run
    z0 = start_latents(model, root / "data")
    assert DreamTrainingConfig().ensemble_draw == "dream"
    step = DreamTrainingConfig(generations=1, popsize=4, rollouts=1, max_steps=5, ensemble_draw="step")
    again = dataclasses.replace(step, generations=2, ensemble_draw="dream")
    train_controller_in_dream(single, step, tmp_path / "one", start_z=z0, progress=False)
    _, history = train_controller_in_dream(single, again, tmp_path / "one", start_z=z0, resume=True, progress=False)
    assert len(history) == 2
    train_controller_in_dream(model, step, tmp_path / "three", start_z=z0, progress=False)
    with pytest.raises(CheckpointError, match="ensemble_draw: 'step' -> 'dream'"):
        train_controller_in_dream(model, again, tmp_path / "three", start_z=z0, resume=True, progress=False)
    saved = json.loads((tmp_path / "three" / "history.json").read_text())
    del saved["config"]["ensemble_draw"]  # as written before the option existed
    (tmp_path / "three" / "history.json").write_text(json.dumps(saved))
    assert load_config(tmp_path / "three").ensemble_draw == "step"
    _, history = train_controller_in_dream(model, dataclasses.replace(step, generations=2), tmp_path / "three",
                                           start_z=z0, resume=True, progress=False)
    assert len(history) == 2
