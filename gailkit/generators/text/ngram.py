"""A character n-gram language model with interpolated Kneser-Ney smoothing: the baseline.

Chen & Goodman (1998), interpolated KN with one absolute discount per order,
``D_k = n1 / (n1 + 2 n2)`` from that order's count-of-counts. The highest order uses raw
counts, lower orders continuation counts (how many distinct characters precede the
n-gram), and the lowest order is interpolated with the uniform distribution, so every
character of the alphabet gets probability > 0 in every context and the probabilities of a
context sum to one.

The text is a stream ``EOT d1 EOT d2 EOT ...`` (EOT: an end-of-text symbol, one character),
the same characters the transformer predicts, so bits per character are comparable.
Characters never seen in training map to one UNK symbol.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import Generator, GeneratorConfig
from gailkit.generators.text.corpus import TextData, write_samples
from gailkit.generators.text.metrics import bits_per_char, perplexity

__all__ = ["EOT", "UNK", "KneserNey", "NGram", "NGramConfig"]

EOT, UNK = "\x03", "\x1a"  # ASCII end-of-text and substitute; removed from documents before counting


def to_stream(documents: Sequence[str]) -> str:
    """``EOT d1 EOT d2 EOT ...`` with stray EOT/UNK characters in the documents dropped."""
    clean = (d.replace(EOT, "").replace(UNK, "") for d in documents)
    return EOT + "".join(d + EOT for d in clean)


class KneserNey:
    """Interpolated Kneser-Ney over characters.

    Args:
        order: n (the model conditions on n - 1 characters).
    """

    def __init__(self, order: int) -> None:
        if order < 1:
            raise UsageError(f"order must be >= 1, got {order}")
        self.order = order
        self.alphabet: list[str] = []
        self.counts: list[dict[str, int]] = []  # counts[k - 1]: k-gram -> (continuation) count
        self.stream = ""

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, stream: str) -> KneserNey:
        """Count the n-grams of ``stream`` (as :func:`to_stream` builds it)."""
        n = self.order
        self.alphabet = sorted(set(stream) | {EOT, UNK})
        raw = Counter(stream[i:i + n] for i in range(len(stream) - n + 1))
        counts: list[dict[str, int]] = [{} for _ in range(n)]
        counts[n - 1] = dict(raw)
        types = set(raw)
        for k in range(n - 1, 0, -1):  # continuation counts: distinct left extensions of each k-gram
            cont: Counter[str] = Counter(g[1:] for g in types)
            # k-grams at the very start of the stream have no left extension; count them once
            head = stream[:k]
            if head not in cont:
                cont[head] = 1
            counts[k - 1] = dict(cont)
            types = set(cont)
        self.counts = counts
        self.stream = stream
        self._derive()
        return self

    def _derive(self) -> None:
        n = self.order
        self._index = {c: i for i, c in enumerate(self.alphabet)}
        self._totals: list[dict[str, int]] = [{} for _ in range(n)]
        self._types: list[dict[str, int]] = [{} for _ in range(n)]
        self.discounts: list[float] = []
        for k in range(n):
            totals, types = self._totals[k], self._types[k]
            for gram, c in self.counts[k].items():
                h = gram[:-1]
                totals[h] = totals.get(h, 0) + c
                types[h] = types.get(h, 0) + 1
            cc = Counter(self.counts[k].values())
            n1, n2 = cc.get(1, 0), cc.get(2, 0)
            self.discounts.append(n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5)

    # -- probabilities -------------------------------------------------------------------------
    def map_char(self, ch: str) -> str:
        return ch if ch in self._index else UNK

    def prob(self, history: str, ch: str) -> float:
        """P(ch | the last n - 1 characters of history); ``ch`` must be in the alphabet."""
        history = history[len(history) - self.order + 1:] if self.order > 1 else ""
        p = 1.0 / len(self.alphabet)
        for k in range(1, self.order + 1):  # lowest order first, each interpolates the one below
            h = history[len(history) - k + 1:] if k > 1 else ""
            if len(h) < k - 1:
                break
            total = self._totals[k - 1].get(h, 0)
            if total == 0:
                continue  # unseen context: this order defers entirely to the lower one
            d = self.discounts[k - 1]
            c = self.counts[k - 1].get(h + ch, 0)
            p = max(c - d, 0.0) / total + d * self._types[k - 1][h] / total * p
        return p

    def distribution(self, history: str) -> np.ndarray:
        """(A,) P(. | history) over :attr:`alphabet`."""
        return np.array([self.prob(history, c) for c in self.alphabet])

    def nll(self, stream: str) -> tuple[float, int]:
        """Summed NLL (nats) of ``stream[1:]`` given what precedes it, and how many characters."""
        stream = "".join(self.map_char(c) for c in stream)
        total = 0.0
        for i in range(1, len(stream)):
            total -= math.log(self.prob(stream[max(0, i - self.order + 1):i], stream[i]))
        return total, len(stream) - 1

    def sample(self, n_chars: int, *, rng: np.random.Generator, history: str = EOT, stop_at_eot: bool = True) -> str:
        """Draw up to ``n_chars`` characters after ``history``."""
        out = []
        for _ in range(n_chars):
            p = self.distribution(history)
            ch = self.alphabet[int(rng.choice(len(p), p=p / p.sum()))]
            if ch == EOT and stop_at_eot:
                break
            out.append(ch)
            history = (history + ch)[-self.order:]
        return "".join(out)


@dataclasses.dataclass
class NGramConfig(GeneratorConfig):
    order: int = dataclasses.field(default=6, metadata=doc("n of the character n-gram"))
    sample_chars: int = dataclasses.field(default=300, metadata=doc("characters per sample at most"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "order": "[1, inf)", "sample_chars": "[1, inf)"}


@register("text", "ngram")
class NGram(Generator):
    """Character n-gram language model with interpolated Kneser-Ney smoothing (the baseline)."""

    Config = NGramConfig

    def _build(self) -> None:
        self.lm = KneserNey(self.config.order)

    def fit(self, data: TextData, *, out: str | Path | None = None, resume: bool = False,
            progress: bool = True) -> NGram:
        """Count the n-grams of ``data`` (epochs, batch size and learning rate do not apply)."""
        if not isinstance(data, TextData):
            raise TypeError(f"text/ngram fits a TextData (gailkit.generators.text.load_data), "
                            f"got {type(data).__name__}")
        self.build(data.info())
        self.lm.fit(to_stream(data.documents))
        self.history = [{"epoch": 1, "ngrams": float(sum(len(c) for c in self.lm.counts))}]
        if out is not None:
            self.save(out)
        return self

    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> list[str]:
        """``n`` texts, each up to ``sample_chars`` characters or the end of a document."""
        self._require_built("sample")
        rng = np.random.default_rng(0 if seed is None else seed)
        return [self.lm.sample(kwargs.get("n_chars", self.config.sample_chars), rng=rng) for _ in range(n)]

    def evaluate(self, data: TextData, **kwargs: Any) -> dict[str, float]:
        """Perplexity per character and bits per character of ``data``."""
        self._require_built("evaluate")
        nll, n = self.lm.nll(to_stream(data.documents))
        return {"loss": nll / n, "perplexity": perplexity(nll, n), "bits_per_char": bits_per_char(nll, n),
                "characters": float(n)}

    def save_samples(self, path: str | Path, *, n: int = 8, seed: int = 0) -> Path:
        return write_samples(path, self.sample(n, seed=seed), title=f"text/ngram order {self.config.order}")

    # The counts are a function of the training stream, which is far smaller than the counts
    # of every order (millions of n-grams at order 10+): store the stream, recount on load.
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"stream": torch.tensor([ord(c) for c in self.lm.stream], dtype=torch.int32)}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.lm.fit("".join(map(chr, tensors["stream"].tolist())))
