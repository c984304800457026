"""Byte-level BPE tokenizers trained locally with ``tokenizers`` (GPT-2's scheme).

Byte-level means every string round-trips exactly (no unknown token, no normalisation).
The trained tokenizer is wrapped in a ``PreTrainedTokenizerFast`` so that it saves and loads
with ``save_pretrained`` / ``from_pretrained`` beside the model. ``END_OF_TEXT`` (id 0)
separates documents and is also the beginning-of-text prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import gailkit.nn.lm  # noqa: F401  (offline switches before transformers is imported)
from gailkit.errors import UsageError

__all__ = ["END_OF_TEXT", "encode_documents", "load_tokenizer", "tokenizer_sha", "train_bpe"]

END_OF_TEXT = "<|endoftext|>"
MIN_VOCAB = 257  # 256 bytes + END_OF_TEXT


def train_bpe(texts: Sequence[str], *, vocab_size: int = 4096, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer on ``texts`` (deterministic for the same texts).

    Args:
        texts: training documents.
        vocab_size: tokens in the vocabulary, >= 257 (bytes + end-of-text); fewer result if
            the text has too few distinct merges.
        min_frequency: a merge must occur this often.

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with ``eos_token = bos_token = END_OF_TEXT``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < MIN_VOCAB:
        raise UsageError(f"vocab_size must be >= {MIN_VOCAB} (256 bytes + end-of-text), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=[END_OF_TEXT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END_OF_TEXT, bos_token=END_OF_TEXT,
                                   pad_token=END_OF_TEXT, clean_up_tokenization_spaces=False)


def load_tokenizer(path: str | Path):
    """A tokenizer saved with ``save_pretrained`` in the local folder ``path`` (never a hub id)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a local folder; gailkit never downloads tokenizers or models: "
                         f"save one with save_pretrained(folder) and pass that folder")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise UsageError(f"no usable tokenizer in {path} ({str(e).splitlines()[0]}); it needs the files "
                         f"save_pretrained writes (tokenizer.json or vocab.json + merges.txt)") from None
    if tok.eos_token_id is None:
        raise UsageError(f"the tokenizer in {path} has no eos_token; gailkit separates documents with it")
    return tok


def tokenizer_sha(tok) -> str:
    """A short hash of a tokenizer's vocabulary and merges (to refuse resuming with another)."""
    return hashlib.sha256(tok.backend_tokenizer.to_str().encode("utf-8")).hexdigest()[:16]


def encode_documents(tok, documents: Sequence[str]) -> list[int]:
    """One id stream ``eos d1 eos d2 eos ...``: each document followed by end-of-text.

    The leading eos is the context of the first document's first token; every other id is a
    prediction target. Byte-level BPE makes ``decode(encode(d)) == d`` exactly.
    """
    eos = tok.eos_token_id
    stream = [eos]
    for ids in tok(list(documents), add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    return stream
