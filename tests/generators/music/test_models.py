"""The music models: shapes, valid samples, seeds, save/load, learning, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gailkit.data.chorales import BOS, EOS, HOLD, REST, split_chorales, validate_voices
from gailkit.generators import get_generator, load_generator
from gailkit.generators.music.common import repair_voices, tokens_to_voices
from gailkit.generators.music.musegan import classes_to_voices, roll_windows
from gailkit.generators.music.transformer import chorale_windows, filter_logits, grammar_mask

H, R = HOLD, REST
TINY_TRANSFORMER = {"size": "tiny", "window": 16, "stride": 8, "sample_steps": 16, "batch_size": 16, "grid_every": 0,
                        "transpose": 2, "lr": 2e-3}
TINY_GAN = {"bars": 1, "latent": 8, "hidden": 32, "n_critic": 2, "batch_size": 32, "stride": 4, "grid_every": 0,
            "lr": 1e-3}


@pytest.fixture(scope="module")
def train(chorales):
    return split_chorales(chorales, "train")


@pytest.fixture(scope="module")
def test(chorales):
    return split_chorales(chorales, "test")


def test_repair_and_lenient_decoding_on_hand_examples():
    bad = np.array([[H, 60, H, R, H], [60, H, H, H, H], [R, R, 55, 200, H], [-1, 48, H, H, R]])
    assert repair_voices(bad).tolist() == [[R, 60, H, R, R], [60, H, H, H, H], [R, R, 55, R, R],
                                           [R, 48, H, H, R]]
    assert tokens_to_voices([BOS, H, 67, 64, 48, 72, H, H, H, 60, EOS, 1, 2]).tolist() == [
        [R, 72], [67, H], [64, H], [48, H]]
    assert tokens_to_voices([BOS, 60, 61]).shape == (4, 0)  # an incomplete step is dropped


def test_grammar_mask_allows_hold_only_after_a_sounding_note():
    tokens = torch.tensor([[BOS, 60, R, 55, 48, 62], [BOS, 60, R, 55, 48, H]])
    mask = grammar_mask(tokens)  # next: alto of step 1; alto was REST
    assert not mask[:, H].any() and mask[:, R].all() and mask[:, :128].all()
    assert not mask[:, BOS:].any()
    assert grammar_mask(tokens[:, :3])[:, H].tolist() == [False, False]  # step 0: nothing to hold
    assert grammar_mask(tokens[:, :5])[:, H].tolist() == [True, True]  # next: soprano, sounded 60


def test_filter_logits_matches_brute_force():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))[0].tolist()
    assert kept == [True, True, False, False, False]
    p = torch.softmax(logits, -1)[0].numpy()
    order = np.argsort(-p)
    # brute force: the smallest prefix of the sorted tokens whose mass reaches top_p
    need = next(i for i in range(1, 6) if p[order[:i]].sum() >= 0.8)
    nucleus = set(order[:need].tolist())
    assert {i for i, ok in enumerate(torch.isfinite(filter_logits(logits, top_p=0.8))[0]) if ok} == nucleus
    assert torch.allclose(filter_logits(logits, temperature=2.0), logits / 2)
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(logits, temperature=0)


def test_windows_never_open_with_a_hold(train):
    w = chorale_windows(train, window=16, stride=4)
    assert w.shape[1] == 65 and (w[:, 0] == BOS).all() and not (w[:, 1:5] == H).any()
    assert math.isclose(len(w), sum((c.steps - 16) // 4 + 1 for c in train))


def test_transformer_learns_samples_validly_and_round_trips(tmp_path, train, test):
    cls = get_generator("music", "transformer")
    model = cls(epochs=4, **TINY_TRANSFORMER).fit(train, out=tmp_path / "run", progress=False)
    first, last = model.history[0]["loss"], model.history[-1]["loss"]
    # measured with seeds 0 / 1 / 2: last / first 0.36 / 0.38 / 0.39; held-out NLL 0.93 / 0.95 / 1.00 nats per token
    assert last < 0.6 * first, f"training loss {first:.3f} -> {last:.3f}"
    samples = model.sample(3, seed=5)
    assert len(samples) == 3 and all(s.shape == (4, 16) and s.dtype == np.int16 for s in samples)
    for s in samples:
        validate_voices(s)
    assert all(np.array_equal(a, b) for a, b in zip(samples, model.sample(3, seed=5)))
    assert not all(np.array_equal(a, b) for a, b in zip(samples, model.sample(3, seed=6)))
    loaded = load_generator(tmp_path / "run")
    assert all(np.array_equal(a, b) for a, b in zip(samples, loaded.sample(3, seed=5)))
    metrics = loaded.evaluate(test, n=4)
    assert metrics == pytest.approx(model.evaluate(test, n=4))
    assert {"in_scale_rate", "bach_in_scale_rate", "dist_in_scale_rate", "test_nll"} <= set(metrics)
    assert metrics["test_nll"] < 0.5 * math.log(130), metrics  # uniform over the note tokens: 4.87 nats
    with pytest.raises(ValueError, match="steps must be in 1..16"):
        model.sample(1, steps=17)


def test_transformer_resumes_bit_for_bit_with_tied_weights(tmp_path, train):
    cls = get_generator("music", "transformer")
    options = {**TINY_TRANSFORMER, "window": 8, "sample_steps": 8, "stride": 16}
    full = cls(epochs=2, **options).fit(train, out=tmp_path / "full", progress=False)
    cls(epochs=1, **options).fit(train, out=tmp_path / "split", progress=False)
    resumed = cls(epochs=2, **options).fit(train, out=tmp_path / "split", resume=True, progress=False)
    for k, v in full.state_tensors().items():
        assert torch.equal(v, resumed.state_tensors()[k]), k
    assert resumed.lm.lm_head.weight.data_ptr() == resumed.lm.transformer.wte.weight.data_ptr()


def test_classes_to_voices_and_roll_windows(train):
    classes = np.array([[0, 0, 2, 3], [3, 3, 3, 3], [1, 2, 2, 3], [0, 1, 1, 1]])  # class 3 = rest
    v = classes_to_voices(classes, pitch_lo=60, n_pitches=3, resolution=2)
    assert v.tolist() == [[60, H, H, H, 62, H, R, R], [R] * 8, [61, H, 62, H, H, H, R, R],
                          [60, H, 61, H, H, H, H, H]]
    w = roll_windows(train, bars=1, resolution=4, stride=16, pitch_lo=36, pitch_hi=84)
    assert w.shape[1:] == (4, 4) and w.max() <= 49 and w.min() >= 0


def test_musegan_learns_the_voice_order_and_round_trips(tmp_path, train, test):
    cls = get_generator("music", "musegan")

    def spread(model):  # mean soprano pitch minus mean bass pitch of the samples
        s = np.stack(model.sample(64, seed=0))
        sop, bass = s[:, 0][s[:, 0] < H], s[:, 3][s[:, 3] < H]
        return sop.mean() - bass.mean()

    untrained = cls(epochs=0, **TINY_GAN).fit(train, progress=False)
    model = cls(epochs=12, **TINY_GAN).fit(train, out=tmp_path / "gan", progress=False)
    # measured with seeds 0 / 1 / 2: untrained -1.2 / -1.5 / -1.4, trained 15.6 / 15.1 / 15.6 semitones
    assert abs(spread(untrained)) < 6, f"untrained soprano - bass: {spread(untrained):.1f} semitones"
    assert spread(model) > 10, f"trained soprano - bass: {spread(model):.1f} semitones"
    samples = model.sample(2, seed=1)
    assert all(s.shape == (4, 16) for s in samples)
    for s in samples:
        validate_voices(s)
    loaded = load_generator(tmp_path / "gan")
    assert all(np.array_equal(a, b) for a, b in zip(samples, loaded.sample(2, seed=1)))
    assert loaded.evaluate(test, n=4) == pytest.approx(model.evaluate(test, n=4))


def test_fit_refuses_other_data():
    cls = get_generator("music", "transformer")
    with pytest.raises(ValueError, match="list of gailkit.data.chorales.Chorale"):
        cls(**TINY_TRANSFORMER).fit(np.zeros((4, 16)), progress=False)


def test_cli_train_sample_eval(tmp_path, data_spec, capsys):
    from gailkit.cli import main

    out = tmp_path / "run"
    assert main(["generate", "train", "music", "transformer", "--data", data_spec, "--out", str(out),
                 "--no-progress", "--size", "tiny", "--epochs", "1", "--window", "16", "--sample-steps", "16",
                 "--grid-every", "1"]) == 0
    assert (out / "samples" / "epoch_0001.mid").read_bytes()[:4] == b"MThd"  # a standard MIDI file
    assert (out / "samples" / "epoch_0001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["generate", "sample", str(out), "-n", "2", "--out", str(tmp_path / "s.mid")]) == 0
    from music21 import converter

    assert len(converter.parse(str(tmp_path / "s.mid")).parts) == 4
    assert main(["generate", "eval", str(out), "--data", data_spec, "--json", str(tmp_path / "m.json")]) == 0
    printed = capsys.readouterr().out
    assert "bach_in_scale_rate" in printed and "test_nll" in printed
