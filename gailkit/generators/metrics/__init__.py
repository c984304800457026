"""Offline metrics for generated images: a locally trained judge (score, Frechet distance),
nearest-neighbour copying checks, and exact or annealed likelihoods of binary-image models."""

from gailkit.generators.metrics.judge import Judge, judge_for, train_judge
from gailkit.generators.metrics.likelihood import (
    ais_log_partition,
    bernoulli_loglik,
    binary_states,
    exact_log_partition,
    rbm_free_energy,
    rbm_loglik,
)
from gailkit.generators.metrics.report import sample_metrics
from gailkit.generators.metrics.scores import (
    frechet_distance,
    frechet_from_features,
    gaussian_fit,
    inception_score,
    nn_distances,
    nn_ratio,
)

__all__ = [
    "Judge",
    "ais_log_partition",
    "bernoulli_loglik",
    "binary_states",
    "exact_log_partition",
    "frechet_distance",
    "frechet_from_features",
    "gaussian_fit",
    "inception_score",
    "judge_for",
    "nn_distances",
    "nn_ratio",
    "rbm_free_energy",
    "rbm_loglik",
    "sample_metrics",
    "train_judge",
]
