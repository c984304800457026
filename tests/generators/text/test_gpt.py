"""text/gpt: learning, save/load, resume, local pretrained folders (never a hub), scheduled
sampling, and the `gailkit generate` CLI end to end."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from gailkit.cli import main as cli_main
from gailkit.generators import load_family_data, load_generator
from gailkit.generators.text import TextData
from gailkit.generators.text.gpt import GPT
from gailkit.generators.text.tokenizer import train_bpe
from gailkit.nn.lm import build_causal_lm

WORDS = itertools.product(("The parser", "This function", "A queue", "The socket"),
                          ("returns", "raises", "accepts", "closes"), ("a list", "an error", "the value", "None"))
DOCS = tuple(f"{a} {v} {b} when it is called.\nSee also the {a.split()[-1]} docs." for a, v, b in WORDS)
TRAIN, TEST = TextData(DOCS[::2] + DOCS[1::4], "toy", "train"), TextData(DOCS[3::4], "toy", "test")
TINY = {"size": "tiny", "vocab_size": 300, "context": 32, "batch_size": 8, "lr": 3e-3, "warmup_steps": 5,
            "grid_every": 0,
            "sample_tokens": 12}


def _weights(model):
    return {k: v.clone() for k, v in model.state_tensors().items()}


def test_short_fit_lowers_held_out_loss():
    model = GPT(epochs=4, **TINY)
    model.prepare(TRAIN)  # builds: tokenizer trained, network initialised
    before = model.evaluate(TEST)
    model.fit(TRAIN, progress=False)
    after = model.evaluate(TEST)
    # measured with seeds 0 / 1 / 2: held-out loss -2.62 / -2.62 / -2.60 nats, bits/char 3.62 -> 1.95 / 1.95 / 1.97
    assert after["loss"] < before["loss"] - 1.0, f"held-out loss {before['loss']:.3f} -> {after['loss']:.3f}"
    assert after["bits_per_char"] < 0.8 * before["bits_per_char"], (before, after)
    assert after["characters"] == sum(len(d) + 1 for d in TEST.documents)
    assert model.history[-1]["loss"] < model.history[0]["loss"]


def test_save_load_round_trip_and_resume(tmp_path):
    model = GPT(epochs=2, **TINY).fit(TRAIN, out=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "hf" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "hf" / "tokenizer.json").is_file()
    loaded = load_generator(tmp_path / "run")
    assert isinstance(loaded, GPT) and loaded.history == model.history
    for method in ("sample", "contrastive"):
        assert loaded.sample(2, seed=5, method=method) == model.sample(2, seed=5, method=method)
    assert loaded.evaluate(TEST) == pytest.approx(model.evaluate(TEST))
    # exact resume: 1 epoch + 1 resumed == 2 epochs in one go (tied embeddings stored once)
    GPT(epochs=1, **TINY).fit(TRAIN, out=tmp_path / "split", progress=False)
    resumed = GPT(epochs=2, **TINY).fit(TRAIN, out=tmp_path / "split", resume=True, progress=False)
    for k, v in _weights(model).items():
        assert torch.equal(v, resumed.state_tensors()[k]), k


def test_samples_are_seeded_text(tmp_path):
    model = GPT(epochs=1, **TINY).fit(TRAIN, progress=False)
    a, b = model.sample(3, seed=0), model.sample(3, seed=0)
    assert a == b and all(isinstance(t, str) for t in a) and len(set(a)) > 1
    path = model.save_samples(tmp_path / "s.png", n=2)
    assert path.suffix == ".txt" and "--- sample 1 ---" in path.read_text()
    assert model.generate("The parser", method="greedy") == model.generate("The parser", method="greedy")
    with pytest.raises(ValueError, match="unknown decoding option.*valid options"):
        model.generate("x", beams=3)


def test_local_pretrained_folder_and_hub_ids(tmp_path):
    tok = train_bpe(DOCS, vocab_size=280)
    lm = build_causal_lm(len(tok), size="tiny", n_positions=48, seed=1, eos_token_id=tok.eos_token_id)
    lm.save_pretrained(tmp_path / "tiny-gpt2")
    tok.save_pretrained(tmp_path / "tiny-gpt2")
    model = GPT.from_pretrained(tmp_path / "tiny-gpt2", grid_every=0, sample_tokens=8)
    assert model.positions == 48 and len(model.tokenizer) == 280
    assert model.sample(2, seed=0) == model.sample(2, seed=0)
    start = model.evaluate(TEST)["loss"]
    tuned = GPT(pretrained=str(tmp_path / "tiny-gpt2"), epochs=2, batch_size=8, lr=3e-3, warmup_steps=5,
                context=32, grid_every=0).fit(TRAIN, out=tmp_path / "tuned", progress=False)
    tuned_loss = tuned.evaluate(TEST)["loss"]
    # fine-tuning starts from the folder's weights: seeds 0 / 1 / 2 give 5.63 -> 3.34 / 5.63 -> 3.38 / 5.61 -> 3.34
    assert tuned_loss < start - 1.0, f"held-out loss {start:.3f} -> {tuned_loss:.3f}"
    assert load_generator(tmp_path / "tuned").evaluate(TEST) == pytest.approx(tuned.evaluate(TEST))
    for bad in ("gpt2", "openai-community/gpt2", str(tmp_path / "missing")):
        with pytest.raises(ValueError, match="not a local folder.*never downloads"):
            GPT.from_pretrained(bad)
        with pytest.raises(ValueError, match="not a local folder"):
            GPT(pretrained=bad, epochs=1).fit(TRAIN, progress=False)


def test_scheduled_sampling_mixes_own_predictions():
    model = GPT(epochs=2, scheduled_sampling=0.5, **TINY).fit(TRAIN, progress=False)
    probs = [h["mix_prob"] for h in model.history]
    assert 0 < probs[0] < probs[1] <= 0.5  # ramps up over training
    x = torch.randint(0, 300, (4, 16), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model._mix_predictions(x, 0.0), x)
    mixed = model._mix_predictions(x, 1.0)
    assert torch.equal(mixed[:, 0], x[:, 0]) and (mixed[:, 1:] != x[:, 1:]).any()
    with pytest.raises(ValueError, match="scheduled_sampling must be in"):
        GPT(scheduled_sampling=1.5)


def test_cli_train_sample_eval(tmp_path, capsys):
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "a.txt").write_text("\n\n".join(DOCS[:40]), encoding="utf-8")
    (data / "b.txt").write_text("\n\n".join(DOCS[40:]), encoding="utf-8")
    out = tmp_path / "run"
    assert cli_main(["generate", "train", "text", "gpt", "--data", f"files:{data / 'a.txt'},{data / 'b.txt'}",
                     "--out", str(out), "--no-progress", "--size", "tiny", "--epochs", "1", "--vocab-size", "300",
                     "--context", "32", "--batch-size", "8", "--sample-tokens", "10"]) == 0
    assert (out / "config.json").is_file() and (out / "samples" / "epoch_0001.txt").is_file()
    assert cli_main(["generate", "sample", str(out), "-n", "3", "--out", str(tmp_path / "s.txt"), "--seed", "1"]) == 0
    assert (tmp_path / "s.txt").read_text().count("--- sample") == 3
    assert cli_main(["generate", "eval", str(out), "--data", str(data), "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    # the JSON holds the saved model's numbers on the test split, and they agree with each other
    test = load_family_data("text", str(data), split="test")
    assert metrics == pytest.approx(load_generator(out).evaluate(test), rel=1e-6)
    assert metrics["characters"] == sum(len(d) + 1 for d in test.documents)
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]), rel=1e-6)
    bits = metrics["loss"] * metrics["tokens"] / math.log(2)
    assert metrics["bits_per_char"] == pytest.approx(bits / metrics["characters"], rel=1e-6)
    capsys.readouterr()
    assert cli_main(["generate", "train", "text", "ngram", "--data", str(data), "--out", str(tmp_path / "ng"),
                     "--order", "3", "--eval"]) == 0
    assert "bits_per_char" in capsys.readouterr().out
