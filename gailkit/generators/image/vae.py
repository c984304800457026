"""The convolutional VAE of the world models (``gailkit.nn.vae.ConvVAE``) as an image generator.

One network serves both: the world model's V and this generator are the same ``ConvVAE``
trained by the same ``elbo_loss`` (summed cross-entropy or squared error + KL with free bits;
cross-entropy by default, because squared error through the sigmoid stalls on the all-white
image of mostly-white frames such as CartPole's). ConvVAE works on
64x64 frames; images of another size are resized bilinearly to 64x64 on the way in and back to
their own size on the way out, so losses are per 64x64 frame and metrics at the data's size.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig
from gailkit.generators.image.common import ImageGenerator, check_array
from gailkit.nn.vae import ConvVAE, elbo_loss

__all__ = ["ImageVAE", "ImageVAEConfig"]

_VAE_SIZE = 64


@dataclasses.dataclass
class ImageVAEConfig(GeneratorConfig):
    batch_size: int = dataclasses.field(default=64, metadata=doc("examples per gradient step"))
    latent_dim: int = dataclasses.field(default=32, metadata=doc("size of the latent code z"))
    kl_tolerance: float = dataclasses.field(default=0.5, metadata=doc("free bits: KL floor in nats per latent"))
    reconstruction: str = dataclasses.field(
        default="bce", metadata=doc("reconstruction term: bce (no stall on mostly-white frames) or mse (the paper's)"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "latent_dim": "[1, inf)", "kl_tolerance": "[0, inf)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reconstruction not in ("bce", "mse"):
            raise UsageError(f"reconstruction must be 'bce' or 'mse', got {self.reconstruction!r}")


@register("image", "vae")
class ImageVAE(ImageGenerator):
    """Convolutional VAE (World Models' V) for RGB or grey images of any size."""

    Config = ImageVAEConfig

    def _build(self) -> None:
        c = self._shape()[0]
        self.vae = ConvVAE(self.config.latent_dim, channels=c)
        self.opt = torch.optim.Adam(self.vae.parameters(), lr=self.config.lr)

    def modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.opt}

    def _to_vae(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (_VAE_SIZE, _VAE_SIZE):
            return x
        return F.interpolate(x, size=(_VAE_SIZE, _VAE_SIZE), mode="bilinear", align_corners=False).clamp(0, 1)

    def _from_vae(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w = self._shape()
        if (h, w) == (_VAE_SIZE, _VAE_SIZE):
            return x
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        data = self.check_data(data)
        if not self.built:
            self.build(data.info())
        return (self._to_vae(torch.from_numpy(np.array(data.images))),)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (frames,) = batch
        recon, mean, logvar = self.vae(frames)
        loss, logs = elbo_loss(recon, frames, mean, logvar, kl_tolerance=self.config.kl_tolerance,
                                 reconstruction=self.config.reconstruction)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), **logs}

    @torch.no_grad()
    def encode(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, C, H, W) in [0, 1] -> posterior mean and log-variance, each (N, latent_dim)."""
        self._require_built("encode")
        x = check_array(images, self._shape(), who="image/vae.encode")
        mean, logvar = self.vae.encode(self._to_vae(x))
        return mean.numpy(), logvar.numpy()

    @torch.no_grad()
    def decode(self, z: Any) -> np.ndarray:
        """Latents (N, latent_dim) -> images (N, C, H, W) in [0, 1]."""
        self._require_built("decode")
        z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"image/vae.decode expects latents (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        return self._from_vae(self.vae.decode(z)).numpy()

    def reconstruct(self, images: Any) -> np.ndarray:
        """Decode of the posterior mean: (N, C, H, W) -> (N, C, H, W)."""
        return self.decode(self.encode(images)[0])

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> np.ndarray:
        """``n`` images (n, C, H, W) in [0, 1] decoded from z ~ N(0, I); same seed, same images."""
        self._require_built("sample")
        z = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(0 if seed is None else seed))
        return self.decode(z)

    @torch.no_grad()
    def evaluate(self, data: Any, *, train: Any = None, seed: int = 0, **kwargs: Any) -> dict[str, float]:
        """Sample metrics (Frechet, NN ratio), the per-pixel reconstruction MSE at the data's
        size, and the mean KL(q(z|x) || N(0, I)) in nats per image."""
        self._require_built("evaluate")
        data = self.check_data(data)
        x = torch.from_numpy(np.array(data.images))
        mean, logvar = self.vae.encode(self._to_vae(x))
        recon = self._from_vae(self.vae.decode(mean))
        kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)).mean()
        return {**self.sample_metrics(data, train=train, seed=seed),
                "recon_mse": float(((recon - x) ** 2).mean()), "kl": float(kl)}
