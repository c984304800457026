"""Convolutional VAE on 64x64 RGB frames (Ha & Schmidhuber's V), shared with the image generators.

Shapes: frames ``(B, 3, 64, 64)`` float in [0, 1]; latents ``(B, latent_dim)``.
Encoder: four stride-2 4x4 convolutions (32, 64, 128, 256 channels) -> 2x2x256 -> mean and
log-variance. Decoder: a dense layer to 1x1x1024, then four stride-2 transposed convolutions
(5, 5, 6, 6 kernels) back to 64x64x3 with a sigmoid, as in the World Models paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvVAE", "elbo_loss"]


class ConvVAE(nn.Module):
    """World Models' V: ``encode`` -> (mean, logvar), ``decode`` -> frames, ``forward`` -> all three."""

    def __init__(self, latent_dim: int = 32, channels: int = 3):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        self.latent_dim, self.channels = latent_dim, channels
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 4, stride=2), nn.ReLU(),  # 64 -> 31
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),  # 31 -> 14
            nn.Conv2d(64, 128, 4, stride=2), nn.ReLU(),  # 14 -> 6
            nn.Conv2d(128, 256, 4, stride=2), nn.ReLU(),  # 6 -> 2
            nn.Flatten(),  # (B, 1024)
        )
        self.mean = nn.Linear(1024, latent_dim)
        self.logvar = nn.Linear(1024, latent_dim)
        self.expand = nn.Linear(latent_dim, 1024)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(1024, 128, 5, stride=2), nn.ReLU(),  # 1 -> 5
            nn.ConvTranspose2d(128, 64, 5, stride=2), nn.ReLU(),  # 5 -> 13
            nn.ConvTranspose2d(64, 32, 6, stride=2), nn.ReLU(),  # 13 -> 30
            nn.ConvTranspose2d(32, channels, 6, stride=2), nn.Sigmoid(),  # 30 -> 64
        )

    def _check(self, frames: torch.Tensor) -> None:
        if frames.ndim != 4 or frames.shape[1:] != (self.channels, 64, 64):
            raise ValueError(f"ConvVAE expects frames of shape (B, {self.channels}, 64, 64), got "
                             f"{tuple(frames.shape)}; resize observations with gailkit.envs.PixelObservation")

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, 64, 64)`` in [0, 1] -> mean, logvar ``(B, latent_dim)``."""
        self._check(frames)
        h = self.encoder(frames)
        return self.mean(h), self.logvar(h).clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent_dim)`` -> frames ``(B, C, 64, 64)`` in [0, 1]."""
        return self.decoder(self.expand(z).view(-1, 1024, 1, 1))

    def sample_latent(self, mean: torch.Tensor, logvar: torch.Tensor,
                      generator: torch.Generator | None = None, *, noise: float = 1.0) -> torch.Tensor:
        """Reparameterised ``z = mean + std * eps`` (the controller and M see sampled z, not the mean).
        ``noise`` scales ``eps`` (0: the mean; the draws are taken either way), as a world model's
        ``latent_noise`` scales V's noise in the real env."""
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        if noise != 1:
            eps = eps * noise
        return mean + torch.exp(0.5 * logvar) * eps

    def forward(self, frames: torch.Tensor, generator: torch.Generator | None = None):
        mean, logvar = self.encode(frames)
        z = self.sample_latent(mean, logvar, generator)
        return self.decode(z), mean, logvar


def elbo_loss(recon: torch.Tensor, frames: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
              *, kl_tolerance: float = 0.5, reconstruction: str = "mse") -> tuple[torch.Tensor, dict[str, float]]:
    """Negative ELBO per frame: summed reconstruction error + KL, with World Models' free bits.

    ``kl_tolerance`` (nats per latent dimension) floors the KL term at
    ``kl_tolerance * latent_dim``, so the encoder is not pushed below that much information.
    ``reconstruction``: ``"mse"`` (the paper's squared error) or ``"bce"`` (binary cross-entropy
    on intensities). On frames that are mostly one colour (CartPole's white), squared error
    through the sigmoid stalls on the all-white image; cross-entropy's gradient at the logits is
    ``recon - frames`` and does not saturate.

    Returns:
        The loss (scalar) and ``{"reconstruction", "kl"}`` means per frame.
    """
    if reconstruction == "mse":
        rec = F.mse_loss(recon, frames, reduction="none").flatten(1).sum(1).mean()
    elif reconstruction == "bce":
        rec = F.binary_cross_entropy(recon, frames, reduction="none").flatten(1).sum(1).mean()
    else:
        raise ValueError(f"reconstruction must be 'mse' or 'bce', got {reconstruction!r}")
    kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)).mean()
    floor = kl_tolerance * mean.shape[1]
    loss = rec + torch.clamp(kl, min=floor)
    return loss, {"reconstruction": rec.item(), "kl": kl.item()}
