"""What every digit model shares: input checks against the shape it was built for, PNG sample
grids, and ``evaluate`` = the judge's metrics on fresh samples plus the model's own likelihood."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gailkit.data.images import ImageData
from gailkit.errors import UsageError
from gailkit.generators.pictures import save_grid

__all__ = ["DigitModel", "as_image_data", "hidden_sizes", "reference_train"]

# a pixel is on at >= 8/16 on the 8x8 digits: the convention of the reference likelihoods
# (independent pixels -25.17 nats); ImageData.binarized uses a strict > and gives -24.70
BINARY_THRESHOLD = 0.5


def as_image_data(data: Any, *, what: str = "images") -> ImageData:
    """``data`` as :class:`ImageData`: ImageData passes through, arrays (N, C, H, W) or (N, H, W)
    are checked (finite, in [0, 1]) by ImageData itself."""
    if isinstance(data, ImageData):
        return data
    array = np.asarray(data, dtype=np.float32)
    if array.ndim == 3:
        array = array[:, None]
    return ImageData(array, name=what)


def reference_train(test: ImageData) -> ImageData | None:
    """The training split that belongs with a held-out split of a known dataset (by its name:
    ``sklearn-digits`` or ``mnist:PATH``), or None for data of unknown origin."""
    from gailkit.generators.digits import load_data

    if test.name == "sklearn-digits" or test.name.startswith("mnist:"):
        return load_data(None if test.name == "sklearn-digits" else test.name, split="train")
    return None


def hidden_sizes(text: str) -> list[int]:
    """``"256,256"`` -> ``[256, 256]``; a ValueError naming the option otherwise."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UsageError(f"hidden must be comma-separated positive layer sizes such as '256,256', got {text!r}")
    return sizes


class DigitModel:
    """Mixin for the digit generators (put it before the Generator base class).

    Subclasses set ``binary`` if they model images binarised at 0.5 and may override
    :meth:`likelihood_metrics`. ``sample`` returns float32 (N, C, H, W) in [0, 1].
    """

    binary: bool = False
    data_info: dict[str, Any] | None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        info = self.data_info
        return (info["channels"], info["height"], info["width"])

    @property
    def n_pixels(self) -> int:
        return int(np.prod(self.image_shape))

    def _check_data(self, data: Any, *, what: str = "images") -> ImageData:
        data = as_image_data(data, what=what)
        if self.data_info is not None and data.shape != self.image_shape:
            raise UsageError(f"{self.family}/{self.name} was built for images of shape {self.image_shape}, "
                             f"got {data.shape} from {data.name or what}; use data of the training shape")
        return data

    def _training_data(self, data: Any) -> ImageData:
        """Checked training images; builds the networks for their shape on first use."""
        data = self._check_data(data, what="training images")
        if not self.built:
            self.build(data.info())
        return data

    def flat(self, data: Any, *, what: str = "images") -> torch.Tensor:
        """Checked images as (N, C*H*W) float32, binarised (>= 0.5) if the model is binary."""
        images = torch.from_numpy(np.array(self._check_data(data, what=what).images)).flatten(1)
        return (images >= BINARY_THRESHOLD).float() if self.binary else images

    def _images(self, flat: torch.Tensor) -> np.ndarray:
        return flat.detach().float().clamp(0, 1).reshape(-1, *self.image_shape).numpy()

    def save_samples(self, path: str | Path, *, n: int = 64, seed: int = 0) -> Path:
        """``n`` samples as a PNG grid at ``path`` (label-conditional models: one column per class)."""
        classes = int(getattr(self, "n_classes", 0) or getattr(self, "n_labels", 0) or 0)
        return save_grid(self.sample(n, seed=seed), path, nrow=classes or None)

    def likelihood_metrics(self, test: ImageData) -> dict[str, float]:
        """Per-image test log-likelihood(s) where the model defines one; {} otherwise."""
        return {}

    def evaluate(self, data: Any, *, train: ImageData | None = None, n_samples: int | None = None,
                 seed: int = 0, **kwargs: Any) -> dict[str, float]:
        """Judge metrics of ``n_samples`` samples (default: as many as test images) and the
        likelihood metrics on ``data`` (the held-out images).

        Args:
            data: held-out ImageData (labelled for the judge).
            train: the real training images; found from ``data.name`` for the built-in datasets.
        Returns:
            ``score``, ``frechet``, ``nn_ratio`` (when the training data is known), ``loglik_nats``
            (exact) or ``loglik_nats_ais`` (annealed estimate) where defined, and
            ``judge_accuracy`` (the judge's accuracy on ``data``).
        """
        from gailkit.generators.metrics import judge_for, sample_metrics

        self._require_built("evaluate")
        test = self._check_data(data, what="test images")
        out: dict[str, float] = {}
        train = train if train is not None else reference_train(test)
        if train is not None and train.labels is not None:
            judge = judge_for(train, holdout=test if test.labels is not None else None)
            samples = self.sample(n_samples or len(test), seed=seed)
            out.update(sample_metrics(samples, judge=judge, train=train, test=test))
            out["judge_accuracy"] = judge.accuracy
        out.update(self.likelihood_metrics(test))
        return out
