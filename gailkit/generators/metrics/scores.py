"""Sample-quality scores computed from a judge's outputs and from pixel distances.

* :func:`inception_score`: ``exp(E_x KL(p(y|x) || p(y)))``; between 1 and the number of classes,
  high when each sample is confidently one class and the classes are balanced.
* :func:`frechet_distance`: the squared 2-Wasserstein distance between Gaussian fits of two
  feature sets (FID, Heusel et al. 2017, with the judge's features in place of Inception's).
* :func:`nn_ratio`: mean nearest-training-image distance of samples over that of held-out
  real images; below 1 the model sits closer to its training set than new real data does
  (it copies), and exact copies score 0.
"""

from __future__ import annotations

import numpy as np
import torch

from gailkit.errors import UsageError

__all__ = [
    "frechet_distance",
    "frechet_from_features",
    "gaussian_fit",
    "inception_score",
    "nn_distances",
    "nn_ratio",
]


def inception_score(probs: np.ndarray, *, eps: float = 1e-12) -> float:
    """``exp(mean_i KL(p_i || mean_j p_j))`` for class probabilities ``probs`` (N, K)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"inception_score takes class probabilities (N, K) with N >= 1, got {probs.shape}")
    marginal = probs.mean(0, keepdims=True)
    kl = (probs * (np.log(probs + eps) - np.log(marginal + eps))).sum(1)
    return float(np.exp(kl.mean()))


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of ``features`` (N, D), N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"a Gaussian fit needs features (N, D) with N >= 2, got {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``.

    ``tr((S1 S2)^1/2)`` equals the trace of the square root of the symmetric PSD matrix
    ``S1^1/2 S2 S1^1/2`` (same eigenvalues), so two symmetric eigen-decompositions replace the
    general (complex, sometimes unstable) ``sqrtm``.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(f"frechet_distance: shapes do not match ({mu1.shape}, {cov1.shape}) vs "
                         f"({mu2.shape}, {cov2.shape})")
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    eig = np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.sqrt(eig).sum(), 0.0))


def frechet_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`frechet_distance` between Gaussian fits of feature sets ``a`` (N, D) and ``b`` (M, D)."""
    return frechet_distance(*gaussian_fit(a), *gaussian_fit(b))


def nn_distances(queries: np.ndarray, reference: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from each query to its nearest reference row.

    Args:
        queries: (N, ...) images or vectors, flattened per row.
        reference: (M, ...) with the same per-row size.

    Returns:
        (N,) float64.
    """
    q = torch.from_numpy(np.array(queries, dtype=np.float64)).flatten(1)
    r = torch.from_numpy(np.array(reference, dtype=np.float64)).flatten(1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"nn_distances: queries have {q.shape[1]} values per row, reference {r.shape[1]}")
    # the direct formula, not the matmul expansion: exact copies must measure 0, not ~1e-7
    return torch.cat([torch.cdist(q[i:i + chunk], r, compute_mode="donot_use_mm_for_euclid_dist").amin(1)
                      for i in range(0, len(q), chunk)]).numpy()


def nn_ratio(samples: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """``mean NN(samples -> train) / mean NN(test -> train)`` (see the module docstring)."""
    baseline = nn_distances(test, train).mean()
    if baseline <= 0:
        raise UsageError("nn_ratio: every held-out image also appears in the training set; the ratio is undefined")
    return float(nn_distances(samples, train).mean() / baseline)
