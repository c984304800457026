"""DCGAN (Radford et al., 2016) for square 16/32/64/128-pixel RGB or grey images.

Generator: z (B, latent_dim) -> dense to 4x4 x (width * 2^(k-1)) -> k stride-2 transposed
convolutions (batch norm, ReLU) doubling the side up to the image size -> tanh, mapped to [0, 1].
Discriminator: the mirror image with LeakyReLU(0.2), batch norm (``norm="batch"``, not on
the first layer) or spectral norm on every convolution (``norm="spectral"``), down to 4x4, then a
4x4 convolution to one logit. Losses: the non-saturating BCE of ``gailkit.nn.adversarial``,
with an optional R1 penalty on real images.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig
from gailkit.generators.image.common import POWER_OF_TWO_SIZES, ImageGenerator
from gailkit.nn.adversarial import bce_logits_loss, r1_penalty

__all__ = ["DCGAN", "DCGANConfig"]


@dataclasses.dataclass
class DCGANConfig(GeneratorConfig):
    epochs: int = dataclasses.field(default=30, metadata=doc("passes over the training data"))
    batch_size: int = dataclasses.field(default=64, metadata=doc("examples per gradient step"))
    lr: float = dataclasses.field(default=2e-4, metadata=doc("Adam learning rate (betas 0.5, 0.999)"))
    latent_dim: int = dataclasses.field(default=64, metadata=doc("size of the noise vector z"))
    width: int = dataclasses.field(default=32, metadata=doc("channels of the layer next to the image"))
    norm: str = dataclasses.field(default="spectral", metadata=doc("discriminator normalisation: batch or spectral"))
    r1_gamma: float = dataclasses.field(default=0.0, metadata=doc("R1 penalty weight on real images (0: off)"))
    label_smoothing: float = dataclasses.field(default=0.0, metadata=doc("one-sided smoothing of real labels"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "latent_dim": "[1, inf)", "width": "[1, inf)",
                                        "r1_gamma": "[0, inf)", "label_smoothing": "[0, 1)"}


def _n_ups(size: int) -> int:
    return int(math.log2(size // 4))


class _Generator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, size: int, width: int):
        super().__init__()
        k = _n_ups(size)
        top = width * 2 ** (k - 1)
        self.top = top
        self.project = nn.Sequential(nn.Linear(latent_dim, top * 16, bias=False), nn.BatchNorm1d(top * 16), nn.ReLU())
        layers: list[nn.Module] = []
        c = top
        for i in range(k):
            last = i == k - 1
            out = channels if last else c // 2
            layers.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1, bias=last))  # side doubles
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, self.top, 4, 4))  # (B, C, size, size) in [-1, 1]


class _Discriminator(nn.Module):
    def __init__(self, channels: int, size: int, width: int, norm: str):
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda m: m)
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for i in range(_n_ups(size)):
            layers.append(wrap(nn.Conv2d(c_in, c, 4, stride=2, padding=1, bias=norm != "batch" or i == 0)))
            if norm == "batch" and i > 0:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2))
            c_in, c = c, c * 2
        layers.append(wrap(nn.Conv2d(c_in, 1, 4)))  # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()  # (B,) logits


@register("image", "dcgan")
class DCGAN(ImageGenerator):
    """DCGAN for square images (16, 32, 64 or 128 pixels), RGB or grey."""

    Config = DCGANConfig

    def _build(self) -> None:
        cfg = self.config
        c, h, w = self._shape()
        if h != w or h not in POWER_OF_TWO_SIZES:
            raise UsageError(f"image/dcgan needs square images of side {', '.join(map(str, POWER_OF_TWO_SIZES))}, "
                             f"got {h}x{w}; resize the data (e.g. --data folder:PATH,size=32)")
        if cfg.norm not in ("batch", "spectral"):
            raise UsageError(f"norm must be 'batch' or 'spectral', got {cfg.norm!r}")
        self.gen = _Generator(cfg.latent_dim, c, h, cfg.width)
        self.disc = _Discriminator(c, h, cfg.width, cfg.norm)
        for module in (self.gen, self.disc):
            for m in module.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                    nn.init.normal_(m.weight, 0.0, 0.02)  # DCGAN's initialisation
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.gen, "discriminator": self.disc}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        data = self.check_data(data)
        if not self.built:
            self.build(data.info())
        return (torch.from_numpy(np.array(data.images)) * 2 - 1,)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (real,) = batch
        cfg = self.config
        z = torch.randn(len(real), cfg.latent_dim)
        fake = self.gen(z)
        real_logits, fake_logits = self.disc(real), self.disc(fake.detach())
        loss_d = bce_logits_loss(real_logits, fake_logits, smoothing=cfg.label_smoothing, one_sided=True)
        logs = {}
        if cfg.r1_gamma:
            penalty = r1_penalty(lambda x: self.disc(x.view_as(real)), real.flatten(1))
            loss_d = loss_d + 0.5 * cfg.r1_gamma * penalty
            logs["r1"] = penalty.item()
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        gen_logits = self.disc(fake)
        loss_g = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))  # non-saturating
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": torch.sigmoid(real_logits).mean().item(), "d_fake": torch.sigmoid(fake_logits).mean().item(),
                **logs}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> np.ndarray:
        """``n`` images (n, C, H, W) float32 in [0, 1]; the same seed gives the same images."""
        self._require_built("sample")
        z = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(0 if seed is None else seed))
        self.gen.eval()
        return ((self.gen(z) + 1) / 2).clamp(0, 1).numpy()

    def evaluate(self, data: Any, *, train: Any = None, seed: int = 0, **kwargs: Any) -> dict[str, float]:
        """Frechet distance and nearest-neighbour ratio of samples (see ``ImageGenerator.sample_metrics``)."""
        self._require_built("evaluate")
        return self.sample_metrics(self.check_data(data), train=train, seed=seed)
