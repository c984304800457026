"""AIRL's logit against a hand computation: g(s, a) + gamma * (1 - done) * h(s') - h(s) - log pi."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gailkit.discriminators import DiscBatch, Discriminator, DiscriminatorConfig

GAMMA = 0.9


def by_hand(net: torch.nn.Sequential, x: np.ndarray) -> np.ndarray:
    """The MLP's output from its weights in NumPy: Linear, ReLU, ..., Linear."""
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    for k, layer in enumerate(linears):
        x = x @ layer.weight.detach().numpy().T.astype(np.float64) + layer.bias.detach().numpy()
        if k < len(linears) - 1:
            x = np.maximum(x, 0.0)
    return x[:, 0]


def batch(obs_dim: int, action_space, n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    next_obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    if isinstance(action_space, spaces.Discrete):
        acts = rng.integers(0, action_space.n, size=n)
        acts_in = np.eye(action_space.n)[acts]
    else:
        acts = rng.uniform(-1, 1, size=(n, action_space.shape[0])).astype(np.float32)
        acts_in = acts
    dones = (np.arange(n) % 3 == 0).astype(np.float32)
    log_probs = rng.normal(-1.0, 0.3, size=n).astype(np.float32)
    return obs, acts, acts_in, next_obs, dones, log_probs


@pytest.mark.parametrize("action_space, inputs", [(spaces.Discrete(3), "sa"), (spaces.Box(-1, 1, (2,)), "sa"),
                                                   (spaces.Discrete(3), "s")])
def test_airl_logit_is_g_plus_discounted_h_difference_minus_log_pi(action_space, inputs):
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    disc = Discriminator(obs_space, action_space, DiscriminatorConfig(
        airl=True, gamma=GAMMA, inputs=inputs, hidden="8,8", normalize_inputs=False, seed=1))
    obs, acts, acts_in, next_obs, dones, log_probs = batch(4, action_space)
    logits = disc.logits(DiscBatch.from_numpy(obs, acts, next_obs, dones, log_probs)).numpy()

    g_in = np.concatenate([obs, acts_in], 1) if inputs == "sa" else obs
    g = by_hand(disc.g, g_in.astype(np.float64))
    h, h_next = by_hand(disc.h, obs.astype(np.float64)), by_hand(disc.h, next_obs.astype(np.float64))
    want = g + GAMMA * (1 - dones) * h_next - h - log_probs
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
    assert np.abs(h_next[dones == 1]).min() > 1e-4, "h(s') of terminal rows must be non-zero for the test to bite"

    # the rewards built on it: shaped (AIRL's default) = f without -log pi, logit = f - log pi,
    # transfer = g alone
    assert disc.config.reward_kind == "shaped"
    np.testing.assert_allclose(disc.reward(obs, acts, next_obs, dones, log_probs), want + log_probs,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(disc.transfer_reward(obs, acts, next_obs, dones), g, rtol=1e-5, atol=1e-5)
    logit = Discriminator(obs_space, action_space, dataclasses.replace(disc.config, reward="logit"))
    logit.load_state_dict(disc.state_dict())
    np.testing.assert_allclose(logit.reward(obs, acts, next_obs, dones, log_probs), want, rtol=1e-5, atol=1e-5)


def test_airl_logit_normalises_its_inputs_with_the_running_statistics():
    obs_space, act_space = spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Box(-1, 1, (2,))
    disc = Discriminator(obs_space, act_space, DiscriminatorConfig(airl=True, gamma=GAMMA, hidden="8", seed=2))
    obs, acts, _, next_obs, dones, log_probs = batch(4, act_space, n=64, seed=3)
    b = DiscBatch.from_numpy(obs * 3 + 1, acts, next_obs * 3 + 1, dones, log_probs)
    disc.train_step(b, b)  # moves the input statistics (and the weights)
    mean, std = disc.obs_norm.mean.numpy(), np.sqrt(disc.obs_norm.var.numpy())
    assert np.abs(mean).max() > 0.1, "the statistics did not move"

    def norm(x, m, s):
        return np.clip((x - m) / np.sqrt(s**2 + 1e-8), -10, 10)

    o, o2 = norm(obs, mean, std), norm(next_obs, mean, std)
    a = norm(acts, disc.act_norm.mean.numpy(), np.sqrt(disc.act_norm.var.numpy()))
    g = by_hand(disc.g, np.concatenate([o, a], 1).astype(np.float64))
    want = g + GAMMA * (1 - dones) * by_hand(disc.h, o2.astype(np.float64)) - by_hand(disc.h, o.astype(np.float64))
    got = disc.logits(DiscBatch.from_numpy(obs, acts, next_obs, dones, np.zeros(64))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_airl_potential_is_zero_in_the_absorbing_state():
    """With ``DiscriminatorConfig.absorbing`` (h := 0 where the observation's trailing absorbing
    flag is 1), the shaping term telescopes within an episode that ends in the absorbing state."""
    if "absorbing" not in {f.name for f in dataclasses.fields(DiscriminatorConfig)}:
        pytest.skip("DiscriminatorConfig has no absorbing field yet")
    obs_space, act_space = spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Discrete(2)  # 3 + flag
    disc = Discriminator(obs_space, act_space, DiscriminatorConfig(
        airl=True, gamma=GAMMA, hidden="8", normalize_inputs=False, absorbing=True, seed=4))
    obs, acts, acts_in, next_obs, _, log_probs = batch(4, act_space, n=8, seed=5)
    obs[:, 3] = next_obs[:, 3] = 0.0
    obs[6:, :] = [0, 0, 0, 1]  # rows 6, 7: in the absorbing state
    next_obs[4:, :] = [0, 0, 0, 1]  # rows 4..7 lead to it
    dones = np.zeros(8, np.float32)  # absorbing episodes never terminate
    got = disc.logits(DiscBatch.from_numpy(obs, acts, next_obs, dones, log_probs)).numpy()
    h = np.where(obs[:, 3] == 1, 0.0, by_hand(disc.h, obs.astype(np.float64)))
    h_next = np.where(next_obs[:, 3] == 1, 0.0, by_hand(disc.h, next_obs.astype(np.float64)))
    g = by_hand(disc.g, np.concatenate([obs, acts_in], 1).astype(np.float64))
    np.testing.assert_allclose(got, g + GAMMA * h_next - h - log_probs, rtol=1e-5, atol=1e-5)
    assert np.abs(by_hand(disc.h, next_obs[4:].astype(np.float64))).min() > 1e-4  # the mask matters
