"""MLP GANs for small images: unconditional (``gan``) and label-conditional (``cgan``, Mirza &
Osindero 2014: generator and discriminator both see the one-hot label).

Non-saturating loss (gailkit.nn.adversarial.bce_logits_loss) with an R1 or WGAN-GP penalty on
the discriminator and optional spectral normalisation. Samples are the generator's sigmoid
outputs, grey pixels in [0, 1].
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.digits.common import DigitModel, hidden_sizes
from gailkit.generators.digits.latent import LatentModel
from gailkit.nn.adversarial import bce_logits_loss, r1_penalty, wgan_gradient_penalty
from gailkit.nn.blocks import mlp

__all__ = ["GAN", "ConditionalGAN", "GANConfig"]


@dataclasses.dataclass
class GANConfig(GeneratorConfig):
    """Options of :class:`GAN` and :class:`ConditionalGAN`."""

    epochs: int = dataclasses.field(default=300, metadata=doc("passes over the training data"))
    batch_size: int = dataclasses.field(default=64, metadata=doc("examples per gradient step"))
    lr: float = dataclasses.field(default=2e-4, metadata=doc("Adam learning rate (both networks)"))
    beta1: float = dataclasses.field(default=0.5, metadata=doc("Adam beta1"))
    latent: int = dataclasses.field(default=16, metadata=doc("latent dimensions"))
    hidden: str = dataclasses.field(default="256,256", metadata=doc("hidden sizes of both networks"))
    penalty: str = dataclasses.field(default="r1", metadata=doc("discriminator penalty: 'r1', 'gp' or 'none'"))
    penalty_weight: float = dataclasses.field(default=1.0, metadata=doc(
        "R1: gamma (the penalty is gamma/2 E||grad||^2); GP: lambda"))
    spectral_norm: bool = dataclasses.field(default=False, metadata=doc("spectral norm on the discriminator"))
    ema: float = dataclasses.field(default=0.999, metadata=doc(
        "samples come from an exponential moving average of the generator's weights with this decay (0: off)"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "beta1": "[0, 1)", "latent": "[1, inf)",
                                        "penalty_weight": "[0, inf)", "ema": "[0, 1)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.penalty not in ("r1", "gp", "none"):
            raise UsageError(f"penalty must be 'r1', 'gp' or 'none', got {self.penalty!r}")


@register("digits", "gan")
class GAN(DigitModel, LatentModel, TorchGenerator):
    """MLP GAN: non-saturating loss, R1 or gradient penalty, optional spectral norm."""

    Config = GANConfig
    conditional = False

    @property
    def n_classes(self) -> int:
        return int(self.data_info.get("n_classes", 0)) if self.conditional else 0

    def _build(self) -> None:
        cfg = self.config
        if self.conditional and not self.n_classes:
            raise UsageError("digits/cgan needs labelled data (n_classes > 0)")
        sizes = hidden_sizes(cfg.hidden)
        self.latent_dim = cfg.latent
        self.generator = mlp(cfg.latent + self.n_classes, sizes, self.n_pixels, activation=nn.LeakyReLU)
        self.discriminator = mlp(self.n_pixels + self.n_classes, sizes[::-1], 1, activation=nn.LeakyReLU,
                                 spectral_norm=cfg.spectral_norm)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        betas = (cfg.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator, "generator_ema": self.generator_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        data = self._training_data(data)
        if self.conditional and data.labels is None:
            raise UsageError(f"digits/cgan needs labelled images; {data.name} has no labels")
        labels = torch.zeros(len(data), dtype=torch.int64) if data.labels is None else torch.from_numpy(
            np.array(data.labels))
        return self.flat(data), labels

    def _onehot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.n_classes).float()

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None, *, ema: bool = False) -> torch.Tensor:
        if self.n_classes:
            z = torch.cat([z, self._onehot(labels)], 1)
        net = self.generator_ema if ema and self.config.ema > 0 else self.generator
        return torch.sigmoid(net(z))

    def _score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.n_classes:
            x = torch.cat([x, self._onehot(labels)], 1)
        return self.discriminator(x).squeeze(-1)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        cfg = self.config
        real, labels = batch
        labels = labels if self.n_classes else None
        z = torch.randn(len(real), cfg.latent)
        fake = self._generate(z, labels)
        # discriminator
        d_loss = bce_logits_loss(self._score(real, labels), self._score(fake.detach(), labels))
        penalty = torch.zeros(())
        if cfg.penalty == "r1":
            # labels are a fixed input here: only the image gradient is penalised
            penalty = 0.5 * cfg.penalty_weight * r1_penalty(lambda x: self._score(x, labels), real)
        elif cfg.penalty == "gp":
            penalty = cfg.penalty_weight * wgan_gradient_penalty(lambda x: self._score(x, labels), real, fake)
        self.opt_d.zero_grad()
        (d_loss + penalty).backward()
        self.opt_d.step()
        # generator (non-saturating: maximise log D(G(z)))
        g_logits = self._score(fake, labels)
        g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        if cfg.ema > 0:
            with torch.no_grad():
                for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
                    p_ema.lerp_(p, 1.0 - cfg.ema)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "penalty": penalty.item()}

    def _labels(self, n: int, labels: Any) -> torch.Tensor | None:
        if not self.n_classes:
            if labels is not None:
                raise ValueError(f"digits/{self.name} is unconditional; use digits/cgan to choose the digit")
            return None
        y = torch.arange(n) % self.n_classes if labels is None else torch.as_tensor(np.asarray(labels)).long()
        if y.shape != (n,) or int(y.min()) < 0 or int(y.max()) >= self.n_classes:
            raise ValueError(f"labels must be {n} integers in [0, {self.n_classes}), got {np.asarray(labels)!r}")
        return y

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, labels: Any = None) -> np.ndarray:
        """Generator outputs (N, C, H, W) of latents z (N, latent) (and labels (N,) for cgan)."""
        self._require_built("decode")
        z = torch.as_tensor(z, dtype=torch.float32)
        return self._images(self._generate(z, self._labels(len(z), labels), ema=True))

    def sample(self, n: int, *, seed: int | None = None, labels: Any = None, **kwargs: Any) -> np.ndarray:
        """``n`` images (n, C, H, W); cgan: of digits ``labels`` (default ``arange(n) % n_classes``)."""
        self._require_built("sample")
        return self.decode(self.latent(n, seed=0 if seed is None else seed), labels=labels)


@register("digits", "cgan")
class ConditionalGAN(GAN):
    """Conditional MLP GAN: choose the digit with ``sample(n, labels=...)``."""

    conditional = True
