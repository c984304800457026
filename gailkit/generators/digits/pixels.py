"""The independent-pixel baseline: each binarised pixel is its own Bernoulli, fitted in closed
form. Its exact likelihood is the floor every structured model should beat."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from gailkit.configs import doc
from gailkit.data.images import ImageData
from gailkit.generators import register
from gailkit.generators.base import Generator, GeneratorConfig
from gailkit.generators.digits.common import DigitModel
from gailkit.generators.metrics.likelihood import bernoulli_loglik
from gailkit.nn.checkpoint import CheckpointError

__all__ = ["Pixels", "PixelsConfig"]


@dataclasses.dataclass
class PixelsConfig(GeneratorConfig):
    """Options of :class:`Pixels` (the epoch and batch options are unused: the fit is closed form)."""

    pseudo_count: float = dataclasses.field(default=0.5, metadata=doc(
        "add this many ones and zeros to every pixel's counts (0.5: Krichevsky-Trofimov), so no "
        "pixel gets probability 0"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "pseudo_count": "(0, inf)"}


@register("digits", "pixels")
class Pixels(DigitModel, Generator):
    """Independent Bernoulli pixels on binarised images (closed-form fit, exact likelihood)."""

    Config = PixelsConfig
    binary = True

    def _build(self) -> None:
        self.p = torch.full((self.n_pixels,), 0.5)

    def fit(self, data: Any, *, out: str | Path | None = None, resume: bool = False,
            progress: bool = True) -> Pixels:
        """``p_i = (ones_i + a) / (N + 2a)`` with ``a = pseudo_count``; with ``out``, saves there
        (a closed-form fit has nothing to resume: ``resume`` only allows refitting into ``out``)."""
        if out is not None and (Path(out) / "config.json").exists() and not resume:
            raise CheckpointError(f"{out} already holds a model; pass --resume (resume=True) to refit into it, "
                                  f"or choose another --out")
        x = self.flat(self._training_data(data))
        a = self.config.pseudo_count
        self.p = (x.sum(0) + a) / (len(x) + 2 * a)
        self.history = [{"epoch": 1, "train_loglik": float(self.loglik(x).mean())}]
        if out is not None:
            self.save(out)
            self.save_samples(Path(out) / "samples" / "final.png")
        return self

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"p": self.p}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        p = tensors["p"]
        if p.shape != self.p.shape:
            raise RuntimeError(f"p has shape {tuple(p.shape)}, expected {tuple(self.p.shape)}")
        self.p = p.clone()

    def loglik(self, images: Any) -> torch.Tensor:
        """Exact ``log p(x)`` (nats) per binarised image; (N,)."""
        x = images if isinstance(images, torch.Tensor) else self.flat(images)
        logits = torch.log(self.p) - torch.log1p(-self.p)
        return bernoulli_loglik(logits.expand_as(x).double(), x.double())

    def likelihood_metrics(self, test: ImageData) -> dict[str, float]:
        return {"loglik_nats": float(self.loglik(test).mean())}

    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> np.ndarray:
        """(n, C, H, W) binary images drawn pixel by pixel."""
        self._require_built("sample")
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        return self._images((torch.rand(n, self.n_pixels, generator=gen) < self.p).float())
