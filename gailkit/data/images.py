"""Image datasets for the digit and image generators.

:class:`ImageData` is the one form every image model takes: float32 ``(N, C, H, W)`` in
[0, 1], optional integer labels. Loaders for other sources (MNIST files, image folders,
frames rendered from environments) return it too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["ImageData", "load_digits_data"]


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A stack of images, optionally labelled.

    Attributes:
        images: (N, C, H, W) float32 in [0, 1], C in (1, 3). Read-only.
        labels: (N,) int64 in [0, n_classes), or None.
        n_classes: number of classes (0 when unlabelled).
        name: where the data came from, for messages and run metadata.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    n_classes: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        images = np.ascontiguousarray(self.images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"{self.name or 'images'}: expected shape (N, C, H, W) with C in (1, 3), "
                             f"got {images.shape}")
        if len(images) == 0:
            raise ValueError(f"{self.name or 'images'}: no images")
        if not np.isfinite(images).all():
            raise ValueError(f"{self.name or 'images'}: contains NaN or inf")
        lo, hi = float(images.min()), float(images.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{self.name or 'images'}: values must lie in [0, 1], found [{lo:g}, {hi:g}]; "
                             f"divide 8-bit images by 255 (or 8x8 digits by 16)")
        images.flags.writeable = False
        object.__setattr__(self, "images", images)
        if self.labels is not None:
            labels = np.ascontiguousarray(self.labels, dtype=np.int64)
            if labels.shape != (len(images),):
                raise ValueError(f"{self.name or 'images'}: {len(labels)} labels for {len(images)} images")
            n_classes = self.n_classes or int(labels.max()) + 1
            if labels.min() < 0 or labels.max() >= n_classes:
                raise ValueError(f"{self.name or 'images'}: labels must lie in [0, {n_classes})")
            labels.flags.writeable = False
            object.__setattr__(self, "labels", labels)
            object.__setattr__(self, "n_classes", n_classes)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        """The JSON description a model is built for (shape, classes, source)."""
        c, h, w = self.shape
        return {"channels": c, "height": h, "width": w, "n_classes": self.n_classes, "name": self.name}

    def subset(self, index: np.ndarray) -> ImageData:
        labels = None if self.labels is None else self.labels[index]
        return ImageData(self.images[index], labels, self.n_classes, self.name)

    def split(self, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[ImageData, ImageData]:
        """Shuffled (train, test) split; stratified by label when labelled."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(seed)
        if self.labels is None:
            order = rng.permutation(len(self))
            k = int(round(len(self) * test_fraction))
            return self.subset(np.sort(order[k:])), self.subset(np.sort(order[:k]))
        test = []
        for c in range(self.n_classes):
            idx = np.flatnonzero(self.labels == c)
            test.extend(rng.permutation(idx)[: int(round(len(idx) * test_fraction))])
        mask = np.zeros(len(self), dtype=bool)
        mask[test] = True
        return self.subset(np.flatnonzero(~mask)), self.subset(np.flatnonzero(mask))

    def binarized(self, threshold: float = 0.5) -> ImageData:
        """Pixels > threshold -> 1 else 0 (the 8x8 digits at 8/16 use threshold 0.5)."""
        return ImageData((self.images > threshold).astype(np.float32), self.labels, self.n_classes,
                         f"{self.name} (binarised at {threshold:g})")


def load_digits_data() -> ImageData:
    """scikit-learn's 1,797 8x8 handwritten digits, scaled to [0, 1], labels 0-9 (offline)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    return ImageData(images, digits.target, 10, "sklearn-digits")
