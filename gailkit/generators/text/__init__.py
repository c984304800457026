"""Text generators: a GPT-2-style transformer with a locally trained byte-level BPE tokenizer
(``text/gpt``) and a character n-gram baseline with Kneser-Ney smoothing (``text/ngram``).

Decoding (greedy, beam, sampling, contrastive search) lives in
:mod:`gailkit.generators.text.decoding` and works on token ids of any causal LM.
"""

from __future__ import annotations

from gailkit.generators.text import gpt, ngram  # noqa: F401  (register text/gpt and text/ngram)
from gailkit.generators.text.corpus import TextData, load_text

__all__ = ["DATA_HELP", "TextData", "load_data"]

DATA_HELP = ("stdlib (default: standard-library docstrings and pydoc topics, no download), "
             "files:a.txt,b.txt, or a directory of .txt files (UTF-8)")


def load_data(spec: str | None, *, split: str) -> TextData:
    """The documents of ``spec`` (see ``DATA_HELP``) on the ``split`` side: "train", "test" or "all"."""
    return load_text(spec, split=split)
