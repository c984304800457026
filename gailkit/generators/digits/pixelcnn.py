"""PixelCNN (van den Oord et al., 2016) on binarised single-channel images.

Masked convolutions make the logit at pixel ``i`` (raster order) a function of pixels ``< i``
only: the first layer's mask also hides the centre (type A), later layers may see it (type B),
since by then the centre position carries only information from earlier pixels. Then
``log p(x) = sum_i log Bernoulli(x_i; sigmoid(logit_i(x_<i)))`` exactly, in one forward pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from gailkit.configs import doc
from gailkit.data.images import ImageData
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.digits.common import DigitModel
from gailkit.generators.metrics.likelihood import bernoulli_loglik

__all__ = ["MaskedConv2d", "PixelCNN", "PixelCNNConfig", "PixelCNNNet"]


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution whose kernel sees only rows above and, on the centre row,
    columns to the left (type "A") or to the left and the centre (type "B")."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, mask_type: str):
        if mask_type not in ("A", "B") or kernel_size % 2 == 0:
            raise ValueError(f"mask_type must be 'A' or 'B' and kernel_size odd, got {mask_type!r}, {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        centre = kernel_size // 2
        mask[centre, centre + (mask_type == "B"):] = 0
        mask[centre + 1:] = 0
        self.register_buffer("mask", mask[None, None].expand_as(self.weight).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class PixelCNNNet(nn.Module):
    """Type-A conv, ``layers`` residual type-B convs, two 1x1 convs: (N, 1, H, W) -> logits (N, 1, H, W)."""

    def __init__(self, *, channels: int = 64, layers: int = 5, first_kernel: int = 7, kernel: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.first = MaskedConv2d(1, channels, first_kernel, mask_type="A")
        self.blocks = nn.ModuleList(MaskedConv2d(channels, channels, kernel, mask_type="B") for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.first(x))
        for block in self.blocks:
            h = h + self.dropout(torch.relu(block(h)))
        return self.head(h)


@dataclasses.dataclass
class PixelCNNConfig(GeneratorConfig):
    """Options of :class:`PixelCNN`."""

    epochs: int = dataclasses.field(default=60, metadata=doc("passes over the training data"))
    batch_size: int = dataclasses.field(default=32, metadata=doc("examples per gradient step"))
    channels: int = dataclasses.field(default=32, metadata=doc("feature maps per layer"))
    layers: int = dataclasses.field(default=4, metadata=doc("residual type-B masked conv layers"))
    first_kernel: int = dataclasses.field(default=7, metadata=doc("kernel of the type-A layer (odd)"))
    dropout: float = dataclasses.field(default=0.1, metadata=doc("dropout on the residual branches"))
    weight_decay: float = dataclasses.field(default=1e-4, metadata=doc("AdamW weight decay"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "channels": "[1, inf)", "layers": "[0, inf)",
                                        "first_kernel": "[1, inf)", "dropout": "[0, 1)", "weight_decay": "[0, inf)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.first_kernel % 2 == 0:  # a centred mask needs a centre pixel
            raise UsageError(f"--first-kernel {self.first_kernel}: must be odd (e.g. {self.first_kernel + 1})")


@register("digits", "pixelcnn")
class PixelCNN(DigitModel, TorchGenerator):
    """PixelCNN with masked convolutions on binarised images; exact likelihood."""

    Config = PixelCNNConfig
    binary = True

    def _build(self) -> None:
        cfg = self.config
        if self.data_info["channels"] != 1:
            raise UsageError(f"digits/pixelcnn models single-channel images, got {self.data_info['channels']} "
                             f"channels; convert to grey first")
        self.net = PixelCNNNet(channels=cfg.channels, layers=cfg.layers, first_kernel=cfg.first_kernel,
                               dropout=cfg.dropout)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        data = self._training_data(data)
        return (self.flat(data).reshape(-1, *self.image_shape),)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (x,) = batch
        nll = -bernoulli_loglik(self.net(x), x).mean()
        self.opt.zero_grad()
        nll.backward()
        self.opt.step()
        return {"nll_nats": nll.item()}

    @torch.no_grad()
    def loglik(self, images: Any) -> torch.Tensor:
        """Exact ``log p(x)`` (nats) per binarised image, (N,)."""
        self._require_built("loglik")
        x = images if isinstance(images, torch.Tensor) else self.flat(images)
        x = x.reshape(-1, *self.image_shape).float()
        return bernoulli_loglik(self.net(x).double(), x.double())

    def likelihood_metrics(self, test: ImageData) -> dict[str, float]:
        return {"loglik_nats": float(self.loglik(test).mean())}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, mean: bool = False, **kwargs: Any) -> np.ndarray:
        """Pixel by pixel in raster order (H*W forward passes).

        Returns:
            (n, 1, H, W) float32: the binary images, or with ``mean`` each pixel's probability
            ``p(x_i = 1 | x_<i)`` given the sampled earlier pixels.
        """
        self._require_built("sample")
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        _, h, w = self.image_shape
        x = torch.zeros(n, 1, h, w)
        probs = torch.zeros_like(x)
        for r in range(h):
            for c in range(w):
                p = torch.sigmoid(self.net(x)[:, 0, r, c])
                probs[:, 0, r, c] = p
                x[:, 0, r, c] = (torch.rand(n, generator=gen) < p).float()
        return self._images(probs if mean else x)
