"""Latent-space helpers shared by the VAE and the GANs: interpolation and arithmetic."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["LatentModel", "lerp", "slerp"]


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(1 - t) a + t b`` for rows ``a``, ``b`` (D,) and weights ``t`` (S,) -> (S, D)."""
    return (1 - t)[:, None] * a[None] + t[:, None] * b[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (keeps Gaussian latents at a typical norm); (S, D)."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if float(omega) < 1e-6:
        return lerp(a, b, t)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so)[:, None] * a[None] + (torch.sin(t * omega) / so)[:, None] * b[None]


class LatentModel:
    """Mixin: a model with ``latent_dim`` and ``decode(z, labels=None) -> images``."""

    latent_dim: int

    def latent(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``n`` prior draws ``z ~ N(0, I)``, (n, latent_dim)."""
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    def decode(self, z: torch.Tensor, *, labels: Any = None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8, *, spherical: bool = True,
                    labels: Any = None) -> np.ndarray:
        """Images along the path from latent ``a`` to ``b`` (each (latent_dim,)); (steps, C, H, W)."""
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        a, b = torch.as_tensor(a, dtype=torch.float32).flatten(), torch.as_tensor(b, dtype=torch.float32).flatten()
        if a.numel() != self.latent_dim or b.numel() != self.latent_dim:
            raise ValueError(f"latents must have {self.latent_dim} values, got {a.numel()} and {b.numel()}")
        t = torch.linspace(0, 1, steps)
        z = slerp(a, b, t) if spherical else lerp(a, b, t)
        return self.decode(z, labels=None if labels is None else np.full(steps, labels))

    def arithmetic(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *, labels: Any = None) -> np.ndarray:
        """``decode(a - b + c)`` row by row (e.g. "thick 7" - "thin 7" + "thin 1"); (N, C, H, W)."""
        z = torch.as_tensor(a) - torch.as_tensor(b) + torch.as_tensor(c)
        return self.decode(z.reshape(-1, self.latent_dim).float(), labels=labels)

    def interpolation_grid(self, *, rows: int = 8, steps: int = 10, seed: int = 0) -> np.ndarray:
        """``rows`` interpolations between random prior pairs, (rows * steps, C, H, W), row-major
        (save with ``save_grid(..., nrow=steps)``). Conditional models use label ``row % n_classes``."""
        z = self.latent(2 * rows, seed=seed)
        n_classes = int(getattr(self, "n_classes", 0) or 0)
        parts = [self.interpolate(z[2 * r], z[2 * r + 1], steps, labels=(r % n_classes) if n_classes else None)
                 for r in range(rows)]
        return np.concatenate(parts)
