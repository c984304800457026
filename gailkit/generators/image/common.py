"""What the image models share: input checks, PNG sample grids and sample-quality metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gailkit.data.images import ImageData
from gailkit.errors import UnsupportedError, UsageError
from gailkit.generators.base import TorchGenerator
from gailkit.generators.image.features import embed, frechet_distance, nn_ratio
from gailkit.generators.pictures import save_grid

__all__ = ["POWER_OF_TWO_SIZES", "ImageGenerator", "check_array"]

POWER_OF_TWO_SIZES = (16, 32, 64, 128)


def check_array(images: Any, shape: tuple[int, int, int], *, who: str) -> torch.Tensor:
    """User images (N, C, H, W) in [0, 1] of the model's ``shape`` -> float32 tensor, or a ValueError."""
    if isinstance(images, ImageData):
        images = images.images
    x = torch.from_numpy(np.array(images, dtype=np.float32))
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise UsageError(f"{who}: expects images of shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}; "
                         f"resize them (e.g. --data folder:PATH,size={shape[1]})")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise UsageError(f"{who}: image values must lie in [0, 1], found [{float(x.min()):g}, {float(x.max()):g}]; "
                         f"divide 8-bit images by 255")
    return x


class ImageGenerator(TorchGenerator):
    """A torch model of single-domain images (``ImageData``) with shared checks and metrics."""

    def _shape(self) -> tuple[int, int, int]:
        info = self.data_info
        return info["channels"], info["height"], info["width"]

    def check_data(self, data: Any) -> ImageData:
        """``data`` as ImageData matching the built model, or a clear error."""
        if not isinstance(data, ImageData):
            hint = " (a pair of domains is CycleGAN's data)" if hasattr(data, "a") else ""
            raise UnsupportedError(f"{self.family}/{self.name} takes an ImageData, got {type(data).__name__}{hint}")
        if self.built and data.shape != self._shape():
            raise UsageError(f"{self.family}/{self.name} was built for {'x'.join(map(str, self._shape()))} images "
                             f"(C x H x W), got {'x'.join(map(str, data.shape))} from {data.name!r}; load the data "
                             f"at the model's size (e.g. --data ...,size={self._shape()[1]})")
        return data

    def save_samples(self, path: str | Path, *, n: int = 64, seed: int = 0) -> Path:
        return save_grid(self.sample(n, seed=seed), path)

    def sample_metrics(self, data: ImageData, *, train: ImageData | None = None, seed: int = 0) -> dict[str, float]:
        """Frechet distance (random-conv features, see ``features``) of ``len(data)`` samples to
        ``data``, and the nearest-neighbour ratio: to ``train`` when given (copy detection),
        otherwise within ``data`` (its first half as reference, second half as probe)."""
        samples = self.sample(len(data), seed=seed)
        real = np.asarray(data.images)
        out = {"frechet": frechet_distance(embed(samples), embed(real))}
        if train is not None:
            out["nn_ratio"] = nn_ratio(samples, real, np.asarray(train.images))
        elif len(real) >= 4:
            half = len(real) // 2
            out["nn_ratio"] = nn_ratio(samples[: len(real) - half], real[half:], real[:half])
        return out
