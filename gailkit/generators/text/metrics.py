"""Held-out likelihood of text: perplexity per token and bits per character.

Perplexity depends on the tokenizer (a bigger vocabulary has fewer, harder tokens); bits per
character does not: it is the total negative log-likelihood of the held-out text, in bits,
divided by its number of characters, so a character n-gram and a BPE transformer are
compared on the same scale when both predict the same characters (here: every document and
one end-of-text symbol after each).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from gailkit.errors import UsageError

__all__ = ["bits_per_char", "lm_nll", "perplexity"]


def bits_per_char(total_nll_nats: float, n_characters: int) -> float:
    """Total NLL (natural log, summed over the text) in bits, per character."""
    if n_characters <= 0:
        raise ValueError(f"n_characters must be > 0, got {n_characters}")
    return total_nll_nats / math.log(2) / n_characters


def perplexity(total_nll_nats: float, n_tokens: int) -> float:
    """``exp`` of the mean NLL per token."""
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be > 0, got {n_tokens}")
    return math.exp(total_nll_nats / n_tokens)


@torch.no_grad()
def lm_nll(model: torch.nn.Module, ids: Sequence[int] | torch.Tensor, *, context: int, stride: int | None = None,
           batch_size: int = 16) -> tuple[float, int]:
    """Summed NLL (nats) of ``ids[1:]`` given what precedes, with a sliding window.

    Windows of ``context`` tokens start every ``stride`` tokens (default ``context // 2``);
    each token is scored once, in the first window that holds it past its overlap with
    the previous window, so every token after the first window sees at least
    ``max(1, context - stride)`` tokens of history.

    Args:
        model: causal LM returning ``.logits`` of shape (B, T, V); put in eval mode here.
        ids: (N,) token ids; ``ids[0]`` is context only.
        context: window length in tokens (<= the model's positions).
        stride: step between windows, in (0, context].

    Returns:
        (total NLL in nats, number of tokens scored = N - 1).
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    stride = stride or max(1, context // 2)
    if not 0 < stride <= context:
        raise ValueError(f"stride must be in (0, context={context}], got {stride}")
    if len(ids) < 2:
        raise UsageError("need at least two token ids to score one")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # (start, first scored position) per window; position p is predicted from ids[start:p]
    windows, scored_to = [], 1
    start = 0
    while scored_to < len(ids):
        end = min(start + context, len(ids))
        windows.append((start, scored_to, end))
        scored_to = end
        start = max(0, end - max(1, context - stride))  # at least one token of history
    total = 0.0
    try:
        for i in range(0, len(windows), batch_size):
            group = windows[i:i + batch_size]
            width = max(e - s for s, _, e in group)
            x = torch.zeros(len(group), width, dtype=torch.long)
            for row, (s, _, e) in enumerate(group):
                x[row, : e - s] = ids[s:e]
            x = x.to(device)
            # all ones: trailing padding is causal-masked from the scored positions anyway
            logp = torch.log_softmax(model(x, attention_mask=torch.ones_like(x)).logits.float(), dim=-1).cpu()
            for row, (s, first, e) in enumerate(group):
                targets = ids[first:e]  # positions first..e-1, predicted at index p - s - 1
                pred = logp[row, first - s - 1:e - s - 1]
                total -= float(pred.gather(1, targets[:, None]).sum())
    finally:
        model.train(was_training)
    return total, len(ids) - 1
