"""Score, Frechet distance, nearest-neighbour ratio and the judge."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gailkit.generators.digits import load_data
from gailkit.generators.metrics import (
    frechet_distance,
    frechet_from_features,
    inception_score,
    judge_for,
    nn_distances,
    nn_ratio,
    sample_metrics,
)


def test_inception_score_extremes():
    assert inception_score(np.eye(10)[np.arange(100) % 10]) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
    assert inception_score(np.eye(10)[np.zeros(30, int)]) == pytest.approx(1.0)  # confident but one class
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=20)
    marginal = probs.mean(0)
    kl = (probs * np.log(probs / marginal)).sum(1)
    assert inception_score(probs) == pytest.approx(np.exp(kl.mean()))


def _random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_matches_closed_forms_and_scipy():
    rng = np.random.default_rng(0)
    # diagonal covariances: sum (mu1-mu2)^2 + sum (sqrt(s1) - sqrt(s2))^2
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.random(5) + 0.1, rng.random(5) + 0.1
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # general covariances: the textbook formula with scipy's sqrtm
    c1, c2 = _random_spd(6, rng), _random_spd(6, rng)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    direct = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(direct, rel=1e-8)
    assert frechet_distance(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(m1, c1, m2[:3], c2)


def test_frechet_of_samples_from_known_gaussians():
    rng = np.random.default_rng(1)
    cov = np.diag([1.0, 4.0, 0.25])
    a = rng.multivariate_normal(np.zeros(3), cov, size=20000)
    b = rng.multivariate_normal(np.array([1.0, 0.0, 0.0]), 4 * cov, size=20000)
    # ||mu||^2 = 1; tr(S + 4S - 2*2S) = tr(S) = 5.25
    assert frechet_from_features(a, b) == pytest.approx(6.25, rel=0.05)


def test_nn_distances_and_ratio():
    rng = np.random.default_rng(0)
    train, test = rng.random((50, 1, 4, 4)), rng.random((20, 1, 4, 4))
    brute = np.array([min(np.linalg.norm(q - r) for r in train) for q in test])
    np.testing.assert_allclose(nn_distances(test, train, chunk=7), brute, rtol=1e-9)
    assert nn_ratio(train[:20], train, test) == pytest.approx(0.0, abs=1e-6)  # copies
    assert nn_ratio(train[:20] + 0.5 * rng.normal(size=(20, 1, 4, 4)), train, test) > 0.5


@pytest.fixture(scope="module")
def digits():
    return load_data(None, split="train"), load_data(None, split="test")


def test_judge_scores_real_high_and_noise_low(digits):
    train, test = digits
    judge = judge_for(train, holdout=test)
    # measured with judge seeds 0 / 1 / 2: held-out accuracy 0.972 / 0.967 / 0.975 (0.1 by chance)
    assert judge.accuracy > 0.9, f"judge accuracy {judge.accuracy:.3f} on the test split"
    assert judge.features(test.images).shape == (len(test), 64)
    real = sample_metrics(test.images, judge=judge, train=train, test=test)
    noise = np.random.default_rng(0).random((len(test), 1, 8, 8)).astype(np.float32)
    fake = sample_metrics(noise, judge=judge, train=train, test=test)
    # seeds 0 / 1 / 2: score real 9.44 / 9.54 / 9.52, noise 3.11 / 2.91 / 3.21; Frechet real 0.70 / 0.73 / 0.88,
    # noise 99 / 115 / 103
    assert real["score"] > 8.5 and fake["score"] < 5, (real, fake)
    assert real["frechet"] < 2 and fake["frechet"] > 10 * real["frechet"], (real, fake)
    assert real["nn_ratio"] == pytest.approx(1.0)
    copies = sample_metrics(train.images[:300], judge=judge, train=train, test=test)
    assert copies["nn_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert judge_for(train) is judge  # memoised
    with pytest.raises(ValueError, match="shape"):
        judge.probs(np.zeros((2, 1, 4, 4)))
