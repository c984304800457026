"""Discriminator numerics: reward signs, penalties by hand, AIRL's form, VAIL, checkpoints."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gailkit.discriminators import DiscBatch, Discriminator, DiscriminatorConfig
from gailkit.nn.adversarial import r1_penalty, wgan_gradient_penalty
from gailkit.nn.checkpoint import CheckpointError

OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACT = gym.spaces.Discrete(2)


def batch(seed, n=64, shift=0.0, log_probs=True):
    rng = np.random.default_rng(seed)
    return DiscBatch.from_numpy(rng.normal(size=(n, 4)) + shift, rng.integers(0, 2, n),
                                rng.normal(size=(n, 4)) + shift, (rng.random(n) < 0.2).astype(float),
                                rng.normal(size=n) - 1 if log_probs else None)


def numpy_args(b):
    return [None if t is None else t.numpy() for t in b]


@pytest.mark.parametrize("c", [-2.0, 0.5, 3.0])
def test_reward_sign_conventions(c):
    rewards = {}
    for kind in ("gail", "log_d", "logit"):
        d = Discriminator(OBS, ACT, DiscriminatorConfig(reward=kind, hidden=""))
        with torch.no_grad():
            d.net[0].weight.zero_()
            d.net[0].bias.fill_(c)  # logit = c everywhere, so D = sigmoid(c)
        rewards[kind] = d.reward(*numpy_args(batch(0))[:4])
    D = 1 / (1 + np.exp(-c))
    np.testing.assert_allclose(rewards["gail"], -np.log(1 - D), rtol=1e-5)  # -log(1 - D) > 0
    np.testing.assert_allclose(rewards["log_d"], np.log(D), rtol=1e-5)  # log D < 0
    np.testing.assert_allclose(rewards["logit"], c, rtol=1e-5)
    assert (rewards["gail"] > 0).all() and (rewards["log_d"] < 0).all()


@pytest.mark.parametrize("kind", ["gail", "log_d", "logit"])
def test_training_rewards_expert_like_samples_more(kind):
    d = Discriminator(OBS, ACT, DiscriminatorConfig(reward=kind, lr=3e-3))
    expert, policy = batch(1), batch(2, shift=1.5)
    for _ in range(150):
        stats = d.train_step(expert, policy)
    gap = d.reward(*numpy_args(expert)[:4]).mean() - d.reward(*numpy_args(policy)[:4]).mean()
    # measured with seeds 0 / 1 / 2 (weights and data), every kind: accuracy 0.94 / 0.92 / 0.95; reward gap
    # gail 1.33 / 1.27 / 1.28, log_d 1.63 / 1.81 / 1.73, logit 2.95 / 3.08 / 3.02
    assert stats["accuracy"] > 0.8, f"accuracy {stats['accuracy']:.3f}"
    assert gap > 0.5, f"expert reward above policy reward by {gap:.3f}"


def test_linear_discriminator_penalties_and_loss_by_hand():
    expert, policy = batch(3), batch(4, shift=1.0)
    for penalty, weight in (("wgan-gp", 10.0), ("r1", 2.0)):
        d = Discriminator(OBS, ACT, DiscriminatorConfig(hidden="", gradient_penalty=penalty, gp_weight=weight,
                                                        normalize_inputs=False))
        w, b = d.net[0].weight.detach()[0], d.net[0].bias.detach()[0]
        loss, stats = d.loss(expert, policy)
        # a linear score has gradient w everywhere
        norm = w.norm().item()
        gp = (norm - 1) ** 2 if penalty == "wgan-gp" else norm**2
        assert stats["gradient_penalty"] == pytest.approx(gp, rel=1e-5)
        x_e = torch.cat([expert.obs, F.one_hot(expert.acts.long(), 2).float()], 1)
        x_p = torch.cat([policy.obs, F.one_hot(policy.acts.long(), 2).float()], 1)
        le, lp = x_e @ w + b, x_p @ w + b
        bce = -F.logsigmoid(le).mean() - F.logsigmoid(-lp).mean()
        want = bce + (weight * gp if penalty == "wgan-gp" else 0.5 * weight * gp)
        assert loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_gradient_penalties_against_finite_differences():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    score = lambda x: net(x).squeeze(-1)  # noqa: E731
    real, fake = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)

    def fd_grad(x, eps=1e-6):
        g = torch.zeros_like(x)
        for i in range(x.shape[1]):
            e = torch.zeros_like(x)
            e[:, i] = eps
            g[:, i] = (score(x + e) - score(x - e)) / (2 * eps)
        return g

    gen = torch.Generator().manual_seed(7)
    got = wgan_gradient_penalty(score, real, fake, generator=gen)
    u = torch.rand(5, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x_hat = u * real + (1 - u) * fake
    want = ((fd_grad(x_hat).norm(dim=1) - 1) ** 2).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert r1_penalty(score, real).item() == pytest.approx(fd_grad(real).pow(2).sum(1).mean().item(), rel=1e-6)


def test_airl_logit_is_shaped_reward_minus_log_pi():
    cfg = DiscriminatorConfig(airl=True, reward="logit", gamma=0.9, normalize_inputs=False)
    d = Discriminator(OBS, ACT, cfg)
    b = batch(5)
    with torch.no_grad():
        g = d.g(torch.cat([b.obs, F.one_hot(b.acts.long(), 2).float()], 1)).squeeze(-1)
        h, h2 = d.h(b.obs).squeeze(-1), d.h(b.next_obs).squeeze(-1)
    want = g + 0.9 * (1 - b.dones) * h2 - h - b.log_probs
    np.testing.assert_allclose(d.reward(*numpy_args(b)), want.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="log pi"):
        d.reward(*numpy_args(b)[:4])


def test_airl_potential_is_zero_in_the_absorbing_state():
    cfg = DiscriminatorConfig(airl=True, reward="shaped", gamma=0.9, normalize_inputs=False, absorbing=True)
    d = Discriminator(OBS, ACT, cfg)
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(size=(3, 3)), np.zeros((3, 1))], 1)
    absorbing = np.tile([0.0, 0.0, 0.0, 1.0], (3, 1))
    # real -> real, real -> absorbing (the step into it), absorbing -> absorbing
    obs, nxt = np.concatenate([real, real, absorbing]), np.concatenate([real[::-1], absorbing, absorbing])
    acts, zeros = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0]), np.zeros(9)
    t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        g = d.g(torch.cat([t(obs), F.one_hot(t(acts).long(), 2).float()], 1)).squeeze(-1)
        h, h2 = d.h(t(obs)).squeeze(-1), d.h(t(nxt)).squeeze(-1)
    keep, keep2 = 1 - t(obs[:, -1]), 1 - t(nxt[:, -1])
    want = g + 0.9 * keep2 * h2 - keep * h
    np.testing.assert_allclose(d.reward(obs, acts, nxt, zeros, zeros), want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.reward(obs[6:], acts[6:], nxt[6:], zeros[6:], zeros[6:]), g[6:].numpy(), rtol=1e-5)


def test_vail_beta_rises_while_kl_exceeds_target():
    d = Discriminator(OBS, ACT, DiscriminatorConfig(vail=True, vail_target_kl=0.01, vail_beta_lr=0.1))
    for _ in range(20):
        stats = d.train_step(batch(6), batch(7, shift=1.0))
    # beta starts at 0; measured with seeds 0 / 1 / 2: kl 0.21 / 0.21 / 0.19, beta 0.29 / 0.31 / 0.25
    assert stats["kl"] > 0.05 and stats["beta"] > 0.1, stats


def test_input_normalisation_tracks_data():
    d = Discriminator(OBS, ACT, DiscriminatorConfig())
    d.train_step(batch(8, n=512, shift=5.0), batch(9, n=512, shift=5.0))
    np.testing.assert_allclose(d.obs_norm.mean.numpy(), 5.0, atol=0.15)


@pytest.mark.parametrize("cfg", [
    DiscriminatorConfig(),
    DiscriminatorConfig(vail=True, spectral_norm=True, gradient_penalty="wgan-gp"),
    DiscriminatorConfig(airl=True, reward="logit", gradient_penalty="r1"),
    DiscriminatorConfig(inputs="ss", label_smoothing=0.1, entropy_weight=0.01),
])
def test_save_load_round_trip_continues_identically(tmp_path, cfg):
    d = Discriminator(OBS, ACT, cfg)
    for i in range(5):
        d.train_step(batch(10 + i), batch(20 + i, shift=1.0))
    d.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "discriminator.json", "discriminator.safetensors", "discriminator_optim.safetensors"]
    e = Discriminator.load(tmp_path)
    torch.testing.assert_close(e.logits(batch(30)), d.logits(batch(30)))
    s1, s2 = d.train_step(batch(31), batch(32, shift=1.0)), e.train_step(batch(31), batch(32, shift=1.0))
    assert s1 == s2  # optimiser state and noise generator restored too
    torch.testing.assert_close(e.logits(batch(30)), d.logits(batch(30)))


def test_bad_config_and_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        DiscriminatorConfig(reward="wasserstein")
    with pytest.raises(ValueError, match="cannot be combined"):
        DiscriminatorConfig(airl=True, vail=True)
    with pytest.raises(ValueError, match="needs airl=True"):
        Discriminator(OBS, ACT, DiscriminatorConfig(reward="shaped"))
    assert DiscriminatorConfig(airl=True).reward_kind == "shaped"
    with pytest.raises(ValueError, match="comma-separated integers"):
        DiscriminatorConfig(hidden="64,x")
    with pytest.raises(CheckpointError, match="discriminator.json is missing"):
        Discriminator.load(tmp_path)
    d = Discriminator(OBS, ACT)
    d.save(tmp_path)
    (tmp_path / "discriminator.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        Discriminator.load(tmp_path)
