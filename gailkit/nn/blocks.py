"""Small shared blocks: MLPs and running input normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["mlp", "RunningNorm"]


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
