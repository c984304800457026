"""Small shared blocks: MLPs, a frame encoder and running input normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FrameEncoder", "mlp", "RunningNorm"]


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, activation: type[nn.Module] = nn.ReLU,
        spectral_norm: bool = False) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with ``activation`` between layers, none at the end.

    ``spectral_norm`` wraps every linear layer in spectral normalisation (Miyato et al., 2018),
    which bounds the network's Lipschitz constant: the usual cure for an overconfident
    discriminator.
    """
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden, out_dim]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        linear = nn.Linear(a, b)
        layers.append(nn.utils.parametrizations.spectral_norm(linear) if spectral_norm else linear)
        if i < len(dims) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class FrameEncoder(nn.Module):
    """Frames ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, features)``: the Nature-DQN convolutions
    (8x8/4, 4x4/2, 3x3/1) and a linear layer, as SB3's ``NatureCNN`` for the policy."""

    def __init__(self, channels: int, size: tuple[int, int] = (64, 64), features: int = 256):
        super().__init__()
        self.features = features
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, channels, *size)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.conv(x))


class RunningNorm(nn.Module):
    """Normalise inputs by a running mean and variance (Chan et al.'s parallel update).

    Statistics are buffers, so they travel with ``state_dict`` into checkpoints. ``update`` is
    explicit: callers decide which data moves the statistics.
    """

    def __init__(self, dim: int, *, eps: float = 1e-8, clip: float = 10.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(0.0, dtype=torch.float64))
        self.eps, self.clip = eps, clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``(B, dim)`` into the statistics."""
        x = x.detach().to(torch.float64).reshape(-1, self.mean.numel())
        n = x.shape[0]
        if n == 0:
            return
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.count == 0:
            return x
        out = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + self.eps)
        return out.clamp(-self.clip, self.clip)
