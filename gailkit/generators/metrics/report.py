"""The judge-based metrics of a set of samples, in the form every digit model's ``evaluate`` returns."""

from __future__ import annotations

import numpy as np

from gailkit.data.images import ImageData
from gailkit.generators.metrics.judge import Judge
from gailkit.generators.metrics.scores import frechet_from_features, inception_score, nn_ratio

__all__ = ["sample_metrics"]


def sample_metrics(samples: np.ndarray, *, judge: Judge, train: ImageData, test: ImageData | None = None
                   ) -> dict[str, float]:
    """Score, Frechet distance to the training images and (with ``test``) the NN ratio.

    Args:
        samples: (N, C, H, W) in [0, 1].
        judge: trained on ``train``.
        train: the real training images (the Frechet reference and the NN reference).
        test: held-out real images for the NN ratio's denominator.

    Returns:
        ``{"score", "frechet", "nn_ratio"}`` (``nn_ratio`` only with ``test``).
    """
    out = {
        "score": inception_score(judge.probs(samples)),
        "frechet": frechet_from_features(judge.features(samples), judge.features(train.images)),
    }
    if test is not None:
        out["nn_ratio"] = nn_ratio(samples, train.images, test.images)
    return out
