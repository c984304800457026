"""Kneser-Ney n-gram: proper distributions, learning, save/load; bits/char by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gailkit.generators.text import TextData
from gailkit.generators.text.metrics import bits_per_char, lm_nll, perplexity
from gailkit.generators.text.ngram import EOT, UNK, KneserNey, NGram, to_stream
from gailkit.nn.lm import build_causal_lm

DOCS = tuple(f"the {a} {v} the {b}." for a in ("cat", "dog", "bird") for v in ("sees", "eats", "likes")
             for b in ("fish", "seed", "ball"))


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one(order):
    lm = KneserNey(order).fit(to_stream(DOCS))
    for history in ["", EOT, "the c", "the zzz", "qqqq", "the dog eats th", UNK * 4]:
        dist = lm.distribution(history)
        assert dist.sum() == pytest.approx(1.0, abs=1e-12) and (dist > 0).all(), history


def test_kneser_ney_unigram_by_hand():
    # order 1 with counts c(w) over the stream "\x03aab\x03": a=2, b=1, EOT=2; D = n1/(n1+2 n2) = 1/(1+4)
    lm = KneserNey(1).fit(to_stream(["aab"]))
    d, total, types, alphabet = 0.2, 5, 3, 4  # alphabet: EOT, UNK, a, b
    assert lm.prob("", "a") == pytest.approx((2 - d) / total + d * types / total / alphabet)
    assert lm.prob("", UNK) == pytest.approx(d * types / total / alphabet)


def test_higher_order_learns_and_unseen_characters_are_unk():
    train, test = TextData(DOCS[:-3], "toy"), TextData(DOCS[-3:], "toy")
    bpc = [NGram(order=n).fit(train).evaluate(test)["bits_per_char"] for n in (1, 2, 3)]
    assert bpc[0] > bpc[1] > bpc[2]
    scores = NGram(order=3).fit(train).evaluate(TextData(("the cat sees the Ωmega.",), "toy"))
    assert np.isfinite(scores["bits_per_char"]) and scores["characters"] == len("the cat sees the Ωmega.") + 1


def test_ngram_save_load_round_trip(tmp_path):
    data = TextData(DOCS, "toy")
    model = NGram(order=4).fit(data, out=tmp_path / "ng")
    loaded = NGram.load(tmp_path / "ng")
    assert loaded.evaluate(data) == model.evaluate(data)
    assert loaded.sample(3, seed=1) == model.sample(3, seed=1)
    assert model.sample(3, seed=1) != model.sample(3, seed=2)


def test_bits_per_char_by_hand():
    assert bits_per_char(16 * math.log(2), 8) == pytest.approx(2.0)
    assert perplexity(3 * math.log(5), 3) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="n_characters"):
        bits_per_char(1.0, 0)


class _Uniform(torch.nn.Module):
    """Predicts every one of 4 tokens with probability 1/4, whatever the context."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4))

    def forward(self, x, attention_mask=None):
        return type("Out", (), {"logits": self.w.expand(*x.shape, 4)})()


@pytest.mark.parametrize("context,stride", [(3, 1), (4, 2), (20, 10)])
def test_lm_nll_by_hand(context, stride):
    # 9 ids -> 8 predictions of 2 bits each = 16 bits; spread over 16 characters -> 1 bit/char
    total, n = lm_nll(_Uniform(), [0, 1, 2, 3, 0, 1, 2, 3, 0], context=context, stride=stride, batch_size=2)
    assert n == 8 and bits_per_char(total, 16) == pytest.approx(1.0)


def test_lm_nll_windows_against_brute_force():
    model = build_causal_lm(30, size="tiny", n_positions=16, seed=0).eval()
    ids = torch.randint(0, 30, (41,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = torch.log_softmax(model(ids[None, :16]).logits[0], -1)
    assert lm_nll(model, ids[:16], context=16)[0] == pytest.approx(-float(full[:-1].gather(1, ids[1:16, None]).sum()))
    for stride in (1, 5, 16):
        brute, start, scored = 0.0, 0, 1  # windows spelt out: [start, start + 16), score the new part
        while scored < len(ids):
            end = min(start + 16, len(ids))
            with torch.no_grad():
                logp = torch.log_softmax(model(ids[None, start:end]).logits[0], -1)
            brute -= sum(float(logp[p - start - 1, ids[p]]) for p in range(scored, end))
            scored, start = end, end - max(1, 16 - stride)
        assert lm_nll(model, ids, context=16, stride=stride, batch_size=2)[0] == pytest.approx(brute, rel=1e-5)
