"""Decoding: every method runs and is deterministic, contrastive search against brute force,
beam search honours no_repeat_ngram_size, bad options are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gailkit.generators.text.decoding import METHODS, DecodingOptions, decode
from gailkit.nn.lm import build_causal_lm


@pytest.fixture(scope="module")
def model():
    m = build_causal_lm(40, size="tiny", n_positions=64, seed=0)
    # a random init is nearly uniform; sharpen it so that methods disagree and ties are rare
    with torch.no_grad():
        m.lm_head.weight.mul_(8.0)
    return m.eval()


def _brute_contrastive(model, prompt, *, k, alpha, steps):
    """Su et al. 2022 spelt out: one forward per candidate, cosine similarities in NumPy."""
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            out = model(torch.tensor([seq]), output_hidden_states=True)
            probs = torch.softmax(out.logits[0, -1].double(), -1).numpy()
            context = out.hidden_states[-1][0].double().numpy()  # (T, H)
            best, best_score = None, -np.inf
            for v in np.argsort(-probs, kind="stable")[:k]:
                h = model(torch.tensor([seq + [int(v)]]), output_hidden_states=True).hidden_states[-1][0, -1]
                h = h.double().numpy()
                cos = max(float(h @ c / (np.linalg.norm(h) * np.linalg.norm(c))) for c in context)
                score = (1 - alpha) * probs[v] - alpha * cos
                if score > best_score + 1e-9:
                    best, best_score = int(v), score
            seq.append(best)
    return seq[len(prompt):]


@pytest.mark.parametrize("alpha,k", [(0.6, 4), (0.3, 6), (0.9, 3)])
def test_contrastive_matches_brute_force(model, alpha, k):
    prompt = [3, 17, 5]
    got = decode(model, prompt, method="contrastive", top_k=k, penalty_alpha=alpha, max_new_tokens=12)
    assert got == _brute_contrastive(model, prompt, k=k, alpha=alpha, steps=12)


def test_contrastive_without_penalty_is_greedy(model):
    greedy = decode(model, [1, 2], method="greedy", max_new_tokens=15)
    assert decode(model, [1, 2], method="contrastive", penalty_alpha=0.0, max_new_tokens=15) == greedy
    assert decode(model, [1, 2], method="contrastive", penalty_alpha=0.6, max_new_tokens=15) != greedy


def test_greedy_is_argmax(model):
    seq = [7]
    with torch.no_grad():
        for _ in range(8):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    assert decode(model, [7], method="greedy", max_new_tokens=8) == seq[1:]


@pytest.mark.parametrize("method", METHODS)
def test_each_method_runs_and_is_deterministic(model, method):
    kw = {"method": method, "max_new_tokens": 10, "top_p": 0.9, "temperature": 1.5, "seed": 3}
    first = decode(model, [1, 2, 3], **kw)
    assert len(first) == 10 and all(0 <= t < 40 for t in first)
    assert decode(model, [1, 2, 3], **kw) == first
    if method == "sample":  # another seed, other text (from a flattened distribution)
        draws = {tuple(decode(model, [1, 2, 3], **{**kw, "temperature": 20.0, "top_p": 1.0, "seed": s}))
                 for s in range(4)}
        assert len(draws) > 1


def test_stops_at_eos(model):
    free = decode(model, [4], method="greedy", max_new_tokens=12)
    eos = free[5]
    stopped = decode(model, [4], method="greedy", max_new_tokens=12, eos_token_id=eos)
    assert stopped == free[: free.index(eos) + 1]
    assert decode(model, [4], method="contrastive", penalty_alpha=0.0, max_new_tokens=12, eos_token_id=eos) == stopped


@pytest.mark.parametrize("method", ["beam", "greedy", "contrastive"])
def test_no_repeat_ngram_never_repeats(model, method):
    n = 2
    prompt = [5, 6]
    plain = decode(model, prompt, method=method, max_new_tokens=30, num_beams=3)
    seq = prompt + decode(model, prompt, method=method, max_new_tokens=30, num_beams=3, no_repeat_ngram_size=n)
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    assert len(grams) == len(set(grams))
    plain_seq = prompt + plain
    assert len({tuple(plain_seq[i:i + n]) for i in range(len(plain_seq) - n + 1)}) < len(plain_seq) - n + 1


def test_repetition_penalty_changes_greedy(model):
    plain = decode(model, [9], method="greedy", max_new_tokens=20)
    assert len(set(plain)) < 20  # the sharpened random model repeats itself...
    penalised = decode(model, [9], method="greedy", max_new_tokens=20, repetition_penalty=10.0)
    assert len(set(penalised)) > len(set(plain))  # ...less so when repeats are penalised


def test_bad_options_are_named(model):
    with pytest.raises(ValueError, match="unknown decoding option.*tempreature.*valid options: method"):
        decode(model, [1], tempreature=0.5)
    with pytest.raises(ValueError, match="method must be one of greedy, beam, sample, contrastive"):
        decode(model, [1], method="nucleus")
    for bad in [{"top_p": 0.0}, {"temperature": 0}, {"repetition_penalty": 0.5}, {"num_beams": 0},
                {"penalty_alpha": 1.5}, {"max_new_tokens": 0}, {"top_k": -1}]:
        with pytest.raises(ValueError, match=next(iter(bad))):
            DecodingOptions(**bad)
    with pytest.raises(ValueError, match="empty"):
        decode(model, [])
    with pytest.raises(ValueError, match=r"\[0, 40\)"):
        decode(model, [40])
    with pytest.raises(ValueError, match="context of 64"):
        decode(model, [1] * 60, max_new_tokens=10)
