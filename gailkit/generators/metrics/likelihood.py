"""Log-likelihoods of binary images: Bernoulli RBMs (exact by enumeration, or AIS) and
autoregressive / factorised Bernoulli models.

An RBM with visible ``v`` (V,), hidden ``h`` (H,), weights ``W`` (V, H), visible bias ``b`` (V,)
and hidden bias ``c`` (H,) has energy ``E(v, h) = -b.v - c.h - v.W.h``. Summing out ``h`` gives
the free energy ``F(v) = -b.v - sum_j softplus(c_j + (v W)_j)`` and ``log p(v) = -F(v) - log Z``.
All sums here run in float64: ``log Z`` of a 64-pixel RBM is a difference of large numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "ais_log_partition",
    "bernoulli_loglik",
    "binary_states",
    "exact_log_partition",
    "rbm_free_energy",
    "rbm_loglik",
]


def binary_states(start: int, stop: int, n_bits: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Rows ``start .. stop-1`` of the table of all ``2**n_bits`` binary vectors.

    Returns:
        (stop - start, n_bits); bit ``j`` of integer ``i`` in column ``j``.
    """
    idx = torch.arange(start, stop, dtype=torch.int64)
    return ((idx[:, None] >> torch.arange(n_bits)) & 1).to(dtype)


def rbm_free_energy(v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``F(v)`` (nats) per row of ``v`` (N, V); shape (N,)."""
    return -(v @ b) - F.softplus(c + v @ W).sum(-1)


def exact_log_partition(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *, max_hidden: int = 24,
                        chunk: int = 8192) -> float:
    """``log Z`` by enumerating the ``2**H`` hidden states (visibles summed out in closed form).

    ``log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)]``, accumulated in chunks of
    ``chunk`` hidden states so memory stays ``O(chunk * V)``.

    Raises:
        ValueError: more than ``max_hidden`` hidden units (use :func:`ais_log_partition`).
    """
    W, b, c = (t.detach().to(torch.float64) for t in (W, b, c))
    n_hidden = W.shape[1]
    if n_hidden > max_hidden:
        raise ValueError(f"exact log Z enumerates 2**{n_hidden} hidden states; that is too many "
                         f"(max_hidden={max_hidden}): use ais_log_partition for this RBM")
    parts = []
    for start in range(0, 2**n_hidden, chunk):
        h = binary_states(start, min(start + chunk, 2**n_hidden), n_hidden)
        parts.append(torch.logsumexp(h @ c + F.softplus(b + h @ W.T).sum(-1), 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


def ais_log_partition(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *, base_bias: torch.Tensor | None = None,
                      n_chains: int = 100, n_betas: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Annealed importance sampling estimate of ``log Z`` (Salakhutdinov & Murray, 2008).

    Anneals from a base RBM with the same hidden layer but zero weights and hidden biases and
    visible bias ``base_bias`` (its ``log Z_A = sum softplus(base_bias) + H log 2`` is exact) to
    the target, through ``p_beta(v) ∝ exp((1 - beta) base_bias.v + beta b.v
    + sum_j softplus(beta (c + v W)_j))``, with one Gibbs sweep at each of ``n_betas`` temperatures.
    A base bias fitted to the data's pixel means (``logit(mean)``) makes the walk much shorter.

    Returns:
        (log Z estimate, its standard error from the spread of the importance weights (delta method)).
    """
    W, b, c = (t.detach().to(torch.float64) for t in (W, b, c))
    n_visible, n_hidden = W.shape
    base = torch.zeros(n_visible, dtype=torch.float64) if base_bias is None else base_bias.detach().double()
    gen = torch.Generator().manual_seed(seed)
    betas = torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64)

    def log_p(v: torch.Tensor, beta: float) -> torch.Tensor:
        return (1 - beta) * (v @ base) + beta * (v @ b) + F.softplus(beta * (c + v @ W)).sum(-1)

    v = (torch.rand(n_chains, n_visible, generator=gen, dtype=torch.float64) < torch.sigmoid(base)).double()
    log_w = torch.zeros(n_chains, dtype=torch.float64)
    for k in range(1, n_betas):
        beta_prev, beta = float(betas[k - 1]), float(betas[k])
        log_w += log_p(v, beta) - log_p(v, beta_prev)
        ph = torch.sigmoid(beta * (c + v @ W))
        h = (torch.rand(ph.shape, generator=gen, dtype=torch.float64) < ph).double()
        pv = torch.sigmoid((1 - beta) * base + beta * (b + h @ W.T))
        v = (torch.rand(pv.shape, generator=gen, dtype=torch.float64) < pv).double()
    log_z_base = float(F.softplus(base).sum()) + n_hidden * math.log(2.0)
    log_mean_w = float(torch.logsumexp(log_w, 0)) - math.log(n_chains)
    w = torch.exp(log_w - log_w.max())
    stderr = float(w.std() / (w.mean() * math.sqrt(n_chains))) if n_chains > 1 else float("nan")
    return log_z_base + log_mean_w, stderr


def rbm_loglik(v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, log_z: float) -> torch.Tensor:
    """``log p(v) = -F(v) - log Z`` (nats) per row of binary ``v`` (N, V); shape (N,), float64."""
    W, b, c = (t.detach().to(torch.float64) for t in (W, b, c))
    return -rbm_free_energy(v.to(torch.float64), W, b, c) - log_z


def bernoulli_loglik(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_i log Bernoulli(x_i; sigmoid(logit_i))`` (nats) per image: the exact likelihood of a
    factorised or autoregressive model whose ``logits`` were computed from ``x`` itself.

    Args:
        logits, x: (N, ...) of the same shape; ``x`` binary.

    Returns:
        (N,)
    """
    if logits.shape != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and images {tuple(x.shape)} differ in shape")
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
