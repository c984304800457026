"""RBM free energy, Gibbs steps and partition functions against NumPy and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from gailkit.generators.digits.rbm import BernoulliRBM
from gailkit.generators.metrics import (
    ais_log_partition,
    bernoulli_loglik,
    exact_log_partition,
    rbm_free_energy,
    rbm_loglik,
)


def _random_rbm(n_visible: int, n_hidden: int, *, scale: float, seed: int) -> BernoulliRBM:
    torch.manual_seed(seed)
    rbm = BernoulliRBM(n_visible, n_hidden)
    with torch.no_grad():
        rbm.W.normal_(0, scale)
        rbm.b.normal_(0, 1)
        rbm.c.normal_(0, 1)
    return rbm.double()


def _np(rbm: BernoulliRBM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(t.detach().numpy() for t in (rbm.W, rbm.b, rbm.c))


def test_free_energy_matches_numpy():
    rbm = _random_rbm(7, 5, scale=0.7, seed=0)
    W, b, c = _np(rbm)
    v = (np.random.default_rng(0).random((9, 7)) < 0.5).astype(np.float64)
    expected = -v @ b - np.log1p(np.exp(c + v @ W)).sum(1)
    np.testing.assert_allclose(rbm.free_energy(torch.from_numpy(v)).detach().numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(rbm_free_energy(torch.from_numpy(v), rbm.W, rbm.b, rbm.c).detach().numpy(),
                               expected, rtol=1e-12)


def test_gibbs_step_matches_numpy_with_the_same_uniforms():
    rbm = _random_rbm(6, 4, scale=1.0, seed=1)
    W, b, c = _np(rbm)
    v0 = (np.random.default_rng(1).random((50, 6)) < 0.5).astype(np.float64)
    v1, pv = rbm.gibbs_vhv(torch.from_numpy(v0), torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)  # the documented draw order: hidden uniforms, then visible
    u_h = torch.rand(50, 4, generator=gen, dtype=torch.float64).numpy()
    u_v = torch.rand(50, 6, generator=gen, dtype=torch.float64).numpy()
    sig = lambda x: 1 / (1 + np.exp(-x))
    h = (u_h < sig(c + v0 @ W)).astype(np.float64)
    p_v = sig(b + h @ W.T)
    np.testing.assert_allclose(pv.detach().numpy(), p_v, rtol=1e-12)
    np.testing.assert_array_equal(v1.detach().numpy(), (u_v < p_v).astype(np.float64))


def test_gibbs_chain_reaches_the_exact_distribution():
    rbm = _random_rbm(3, 2, scale=1.0, seed=2)
    W, b, c = _np(rbm)
    states = np.array(list(itertools.product([0, 1], repeat=3)), dtype=np.float64)
    p = np.exp(-(-states @ b - np.log1p(np.exp(c + states @ W)).sum(1)))
    p /= p.sum()
    gen = torch.Generator().manual_seed(0)
    v = torch.zeros(4000, 3, dtype=torch.float64)
    for _ in range(30):
        v, _ = rbm.gibbs_vhv(v, gen)
    idx = (v.numpy() @ np.array([4, 2, 1])).astype(int)
    freq = np.bincount(idx, minlength=8) / len(idx)
    np.testing.assert_allclose(freq, p, atol=0.03)


def test_exact_log_partition_matches_brute_force_over_visible_and_hidden():
    rbm = _random_rbm(6, 4, scale=1.0, seed=3)
    W, b, c = _np(rbm)
    energies = []
    for v in itertools.product([0, 1], repeat=6):
        for h in itertools.product([0, 1], repeat=4):
            v_, h_ = np.array(v, float), np.array(h, float)
            energies.append(b @ v_ + c @ h_ + v_ @ W @ h_)
    brute = float(np.log(np.exp(np.array(energies)).sum()))
    assert exact_log_partition(rbm.W, rbm.b, rbm.c, chunk=3) == pytest.approx(brute, abs=1e-10)
    # the log-likelihoods of all 64 visible states then sum to one
    states = torch.tensor(list(itertools.product([0, 1], repeat=6)), dtype=torch.float64)
    ll = rbm_loglik(states, rbm.W, rbm.b, rbm.c, brute)
    assert float(torch.logsumexp(ll, 0)) == pytest.approx(0.0, abs=1e-10)


def test_exact_log_partition_refuses_large_hidden_layers():
    rbm = _random_rbm(4, 30, scale=0.1, seed=0)
    with pytest.raises(ValueError, match="ais_log_partition"):
        exact_log_partition(rbm.W, rbm.b, rbm.c)


def test_ais_agrees_with_exact_enumeration():
    rbm = _random_rbm(64, 12, scale=0.3, seed=4)
    exact = exact_log_partition(rbm.W, rbm.b, rbm.c)
    estimate, stderr = ais_log_partition(rbm.W, rbm.b, rbm.c, n_chains=100, n_betas=2000, seed=0)
    # measured with AIS seeds 0 / 1 / 2: error +0.009 / +0.005 / +0.009, stderr 0.008 / 0.009 / 0.008
    assert abs(estimate - exact) < 0.1, f"AIS {estimate:.4f}, exact {exact:.4f}"
    assert stderr < 0.05, f"stderr {stderr:.4f}"
    # a wrong target is detected: the estimate tracks the RBM, not the base
    with torch.no_grad():
        shifted = exact_log_partition(rbm.W * 2, rbm.b, rbm.c)
    doubled = ais_log_partition(rbm.W * 2, rbm.b, rbm.c, n_chains=100, n_betas=2000)[0]
    assert abs(doubled - shifted) < 0.1, f"AIS {doubled:.4f}, exact {shifted:.4f}"  # seeds 0-2: |error| <= 0.003
    assert abs(shifted - exact) > 2, (shifted, exact)  # 11.3: the two targets are far apart


def test_bernoulli_loglik_matches_numpy():
    rng = np.random.default_rng(0)
    logits, x = rng.normal(size=(5, 1, 2, 3)), (rng.random((5, 1, 2, 3)) < 0.5).astype(float)
    p = 1 / (1 + np.exp(-logits))
    expected = (x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(5, -1).sum(1)
    np.testing.assert_allclose(bernoulli_loglik(torch.from_numpy(logits), torch.from_numpy(x)).numpy(), expected,
                               rtol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        bernoulli_loglik(torch.zeros(2, 3), torch.zeros(2, 4))
    assert math.isfinite(float(bernoulli_loglik(torch.full((1, 4), 30.0), torch.ones(1, 4))[0]))
