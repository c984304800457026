"""Mixture density head: a separate Gaussian mixture for every output dimension.

Shapes: hidden ``(..., H)`` -> ``logit_pi, mu, log_sigma`` each ``(..., D, K)`` for ``D``
output dimensions with ``K`` components each. (Sharing one set of mixture weights across all
dimensions, as a popular reimplementation does, couples dimensions that World Models treats as
independent.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MDNHead", "mixture_mean", "mixture_nll", "sample_mixture"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class MDNHead(nn.Module):
    """Linear map from features to per-dimension mixture parameters."""

    def __init__(self, in_dim: int, out_dim: int, n_mixtures: int = 5):
        super().__init__()
        self.out_dim, self.k = out_dim, n_mixtures
        self.linear = nn.Linear(in_dim, 3 * out_dim * n_mixtures)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.linear(h).view(*h.shape[:-1], self.out_dim, 3 * self.k)  # (..., D, 3K)
        logit_pi, mu, log_sigma = out.split(self.k, dim=-1)
        return logit_pi, mu, log_sigma.clamp(-7.0, 5.0)


def mixture_nll(target: torch.Tensor, logit_pi: torch.Tensor, mu: torch.Tensor,
                log_sigma: torch.Tensor) -> torch.Tensor:
    """``-log p(target)`` summed over dimensions, per leading index, by log-sum-exp.

    Args:
        target: ``(..., D)``.
        logit_pi, mu, log_sigma: ``(..., D, K)``.

    Returns:
        ``(...)`` negative log-likelihood in nats.
    """
    z = target.unsqueeze(-1)  # (..., D, 1)
    log_normal = -0.5 * ((z - mu) * torch.exp(-log_sigma)) ** 2 - log_sigma - _LOG_SQRT_2PI
    log_p = torch.logsumexp(torch.log_softmax(logit_pi, dim=-1) + log_normal, dim=-1)  # (..., D)
    return -log_p.sum(-1)


def mixture_mean(logit_pi: torch.Tensor, mu: torch.Tensor, *, tau: float = 1.0) -> torch.Tensor:
    """The expected value ``(..., D)`` of what :func:`sample_mixture` draws at temperature ``tau``: the
    components' means under its flattened weights (``tau = 0``: the most likely component's mean)."""
    if tau <= 0:
        return mu.gather(-1, logit_pi.argmax(-1, keepdim=True)).squeeze(-1)
    return (torch.softmax(logit_pi / tau, dim=-1) * mu).sum(-1)


def sample_mixture(logit_pi: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, *, tau: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one sample ``(..., D)`` at temperature ``tau`` (flatter weights, wider components).

    ``tau = 0`` returns the mean of the most likely component.
    """
    if tau <= 0:
        return mixture_mean(logit_pi, mu, tau=0.0)
    probs = torch.softmax(logit_pi / tau, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    idx = torch.multinomial(flat, 1, generator=generator).view(*probs.shape[:-1], 1)
    m, s = mu.gather(-1, idx).squeeze(-1), torch.exp(log_sigma.gather(-1, idx).squeeze(-1))
    noise = torch.randn(m.shape, generator=generator, dtype=m.dtype, device=m.device)
    return m + s * math.sqrt(tau) * noise
