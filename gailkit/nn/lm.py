"""Causal transformer language models built from a config, never fetched from a hub.

Shared by the text generator (BPE tokens) and the music generator (chorale tokens).
:func:`offline` must run before ``transformers`` is imported anywhere; importing this module
does it, so import ``gailkit.nn.lm`` first and transformers through it.
"""

from __future__ import annotations

import dataclasses
import os


def offline() -> None:
    """Forbid every network access of Hugging Face libraries (they read these at import)."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[key] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


offline()

import torch  # noqa: E402

__all__ = ["GPTSize", "GPT_SIZES", "build_causal_lm", "offline"]


@dataclasses.dataclass(frozen=True)
class GPTSize:
    """GPT-2 architecture sizes."""

    n_layer: int
    n_head: int
    n_embd: int


# fmt: off
GPT_SIZES: dict[str, GPTSize] = {
    "tiny":  GPTSize(n_layer=2, n_head=2, n_embd=64),     # tests: seconds on a CPU
    "small": GPTSize(n_layer=4, n_head=4, n_embd=128),    # benchmarks: minutes on 2 cores
    "base":  GPTSize(n_layer=6, n_head=8, n_embd=256),
    "gpt2":  GPTSize(n_layer=12, n_head=12, n_embd=768),  # GPT-2 small's shape (124M with its vocabulary)
}
# fmt: on


def build_causal_lm(vocab_size: int, *, size: str = "small", n_positions: int = 256, dropout: float = 0.1,
                    bos_token_id: int | None = None, eos_token_id: int | None = None,
                    pad_token_id: int | None = None, seed: int = 0) -> torch.nn.Module:
    """A freshly initialised ``GPT2LMHeadModel`` (seeded), from a size preset.

    Args:
        vocab_size: number of token ids.
        size: a key of :data:`GPT_SIZES`.
        n_positions: longest sequence (context) in tokens.
        dropout: residual, embedding and attention dropout.
        seed: initialisation seed (the global torch RNG is left as it was).
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    if size not in GPT_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose from {', '.join(GPT_SIZES)}")
    s = GPT_SIZES[size]
    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_layer=s.n_layer, n_head=s.n_head,
                        n_embd=s.n_embd, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                        bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config)
