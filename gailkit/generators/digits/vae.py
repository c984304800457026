"""MLP variational autoencoder (Kingma & Welling, 2014) for small images.

Bernoulli likelihood: the decoder's sigmoid means against grey pixels in [0, 1] by binary
cross-entropy; Gaussian: a learned per-pixel standard deviation. Samples are the decoder means.
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
from gailkit.data.images import ImageData
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.digits.common import DigitModel, hidden_sizes
from gailkit.generators.digits.latent import LatentModel
from gailkit.nn.adversarial import gaussian_kl
from gailkit.nn.blocks import mlp

__all__ = ["VAE", "VAEConfig"]


@dataclasses.dataclass
class VAEConfig(GeneratorConfig):
    """Options of :class:`VAE`."""

    epochs: int = dataclasses.field(default=300, metadata=doc("passes over the training data"))
    batch_size: int = dataclasses.field(default=64, metadata=doc("examples per gradient step"))
    latent: int = dataclasses.field(default=8, metadata=doc("latent dimensions"))
    hidden: str = dataclasses.field(default="256,128", metadata=doc("encoder hidden sizes (decoder mirrors them)"))
    likelihood: str = dataclasses.field(default="bernoulli", metadata=doc("'bernoulli' or 'gaussian'"))
    beta: float = dataclasses.field(default=1.0, metadata=doc("weight of the KL term"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "latent": "[1, inf)", "beta": "[0, inf)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise UsageError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")


@register("digits", "vae")
class VAE(DigitModel, LatentModel, TorchGenerator):
    """MLP VAE (Bernoulli or Gaussian pixels) with encode / decode / interpolate."""

    Config = VAEConfig

    def _build(self) -> None:
        cfg = self.config
        sizes = hidden_sizes(cfg.hidden)
        self.latent_dim = cfg.latent
        self.encoder = mlp(self.n_pixels, sizes, 2 * cfg.latent)
        self.decoder = mlp(cfg.latent, sizes[::-1], self.n_pixels)
        # per-pixel log std of the Gaussian likelihood (unused, but stored, under Bernoulli)
        self.noise = nn.ParameterDict({"log_sigma": nn.Parameter(torch.full((self.n_pixels,), math.log(0.1)))})
        self.opt = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters(),
                                     *self.noise.parameters()], lr=cfg.lr)

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder, "noise": self.noise}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        data = self._training_data(data)
        return (self.flat(data),)

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.encoder(x).chunk(2, dim=-1)
        return mean, log_std.clamp(-8, 4)

    def _nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) per row (nats; for grey pixels under Bernoulli, a cross-entropy)."""
        if self.config.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        mean, log_sigma = torch.sigmoid(logits), self.noise["log_sigma"].clamp(-5, 2)
        return (0.5 * ((x - mean) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)).sum(1)

    def neg_elbo(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(negative ELBO, reconstruction, KL), each (N,), for flat images x (N, D)."""
        mean, log_std = self._posterior(x)
        z = mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
        rec = self._nll(self.decoder(z), x)
        kl = gaussian_kl(mean, log_std)
        return rec + self.config.beta * kl, rec, kl

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (x,) = batch
        loss, rec, kl = self.neg_elbo(x)
        self.opt.zero_grad()
        loss.mean().backward()
        self.opt.step()
        return {"neg_elbo": loss.mean().item(), "reconstruction": rec.mean().item(), "kl": kl.mean().item()}

    # -- latent interface ----------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: Any) -> torch.Tensor:
        """Posterior means (N, latent) of images (N, C, H, W)."""
        self._require_built("encode")
        return self._posterior(self.flat(images))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, labels: Any = None) -> np.ndarray:
        """Decoder means (N, C, H, W) of latents z (N, latent)."""
        self._require_built("decode")
        return self._images(torch.sigmoid(self.decoder(torch.as_tensor(z, dtype=torch.float32))))

    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> np.ndarray:
        """Decoder means of ``n`` prior draws; (n, C, H, W)."""
        self._require_built("sample")
        return self.decode(self.latent(n, seed=0 if seed is None else seed))

    def likelihood_metrics(self, test: ImageData) -> dict[str, float]:
        with torch.no_grad():
            loss, _, _ = self.neg_elbo(self.flat(test), torch.Generator().manual_seed(0))
        # an ELBO, not a likelihood: for grey pixels under the Bernoulli decoder it is a cross-entropy bound
        return {"elbo_nats": -float(loss.mean())}
