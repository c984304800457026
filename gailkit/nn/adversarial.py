"""Adversarial losses and regularisers shared by discriminators and GAN generators."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["bce_logits_loss", "bernoulli_entropy", "wgan_gradient_penalty", "r1_penalty", "gaussian_kl"]


def bce_logits_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, *, smoothing: float = 0.0,
                    one_sided: bool = False) -> torch.Tensor:
    """Binary cross-entropy with real labelled ``1 - smoothing`` and fake ``smoothing`` (``0``
    with ``one_sided``: only the real label moves, as Salimans et al., 2016, advise for GANs)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 1.0 - smoothing))
    fake_label = 0.0 if one_sided else smoothing
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.full_like(fake_logits, fake_label))
    return real + fake


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of ``Bernoulli(sigmoid(logits))``, elementwise."""
    p = torch.sigmoid(logits)
    return F.softplus(logits) - p * logits  # = -p log p - (1-p) log(1-p)


def wgan_gradient_penalty(score: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                          *, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al., 2017): ``E[(||grad score(x_hat)||_2 - 1)^2]`` on random
    interpolates ``x_hat = u * real + (1 - u) * fake``, ``u ~ U(0, 1)`` per row.

    Args:
        score: maps inputs ``(B, D)`` to scores ``(B,)``.
        real, fake: ``(B, D)`` inputs of the same batch size.
    """
    u = torch.rand(real.shape[0], 1, generator=generator, dtype=real.dtype, device=real.device)
    x_hat = (u * real.detach() + (1 - u) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(score(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(score: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): ``E[||grad score(x_real)||_2^2]`` (weight it by gamma / 2)."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(x).sum(), x, create_graph=True)
    return grad.pow(2).sum(dim=1).mean()


def gaussian_kl(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, std^2) || N(0, I))`` per row, summed over the last axis."""
    return 0.5 * (mean.pow(2) + torch.exp(2 * log_std) - 2 * log_std - 1).sum(-1)
