"""``gailkit generate tune``: PPO fine-tuning of a saved music transformer in ChoraleComposer-v0."""

from __future__ import annotations

import pytest
import torch

from gailkit.data.chorales import split_chorales, validate_voices
from gailkit.generators import get_generator, load_generator
from gailkit.generators.music.composer import ComposerConfig
from gailkit.generators.music.tune import tune_transformer
from gailkit.nn.checkpoint import CheckpointError

TINY = {"size": "tiny", "window": 16, "stride": 8, "sample_steps": 16, "batch_size": 16, "grid_every": 0}
CONFIG = ComposerConfig(n_bars=1, rollout_pieces=8, minibatch=8, ppo_epochs=1, disc_batch=8, lr=1e-3)


@pytest.fixture(scope="module")
def train(chorales):
    return split_chorales(chorales, "train")


@pytest.fixture(scope="module")
def transformer_dir(tmp_path_factory, train):
    out = tmp_path_factory.mktemp("mt") / "run"
    get_generator("music", "transformer")(epochs=1, **TINY).fit(train, out=out, progress=False)
    return out


def weights(directory):
    return load_generator(directory).state_tensors()


def test_tuning_changes_the_weights_and_writes_a_usable_generator(tmp_path, transformer_dir, train):
    _, trainer = tune_transformer(transformer_dir, tmp_path / "tuned", iterations=2, config=CONFIG,
                                      progress=False, chorales=train)
    assert trainer.iteration == 2 and len(trainer.history) == 2 and "mean_d" in trainer.history[0]
    before, after = weights(transformer_dir), weights(tmp_path / "tuned")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    loaded = load_generator(tmp_path / "tuned")
    for piece in loaded.sample(3, seed=0):
        validate_voices(piece)
    assert (tmp_path / "tuned" / "curve.png").is_file() and any((tmp_path / "tuned" / "tb").iterdir())


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, transformer_dir, train):
    tune_transformer(transformer_dir, tmp_path / "full", iterations=3, config=CONFIG, progress=False, chorales=train)
    tune_transformer(transformer_dir, tmp_path / "split", iterations=2, config=CONFIG, progress=False, chorales=train)
    _, trainer = tune_transformer(transformer_dir, tmp_path / "split", iterations=3, resume=True, progress=False,
                                  chorales=train)
    assert trainer.iteration == 3
    full, split = weights(tmp_path / "full"), weights(tmp_path / "split")
    assert all(torch.equal(full[k], split[k]) for k in full)


def test_bad_requests_are_refused_with_the_fix(tmp_path, transformer_dir, train):
    run = tmp_path / "run"
    with pytest.raises(CheckpointError, match="nothing to resume"):
        tune_transformer(transformer_dir, run, iterations=1, config=CONFIG, resume=True, chorales=train)
    with pytest.raises(ValueError, match="--n-bars 1 or fewer"):
        tune_transformer(transformer_dir, run, iterations=1, config=ComposerConfig(n_bars=2), chorales=train)
    tune_transformer(transformer_dir, run, iterations=1, config=CONFIG, progress=False, chorales=train)
    with pytest.raises(CheckpointError, match="already holds a tuning run"):
        tune_transformer(transformer_dir, run, iterations=2, config=CONFIG, chorales=train)
    with pytest.raises(ValueError, match="lr is 0.0001 here but 0.001 in the run"):
        tune_transformer(transformer_dir, run, iterations=2, config=ComposerConfig(**{**vars(CONFIG), "lr": 1e-4}),
                         resume=True, chorales=train)
    other = tmp_path / "other"
    get_generator("music", "transformer")(epochs=0, **{**TINY, "window": 32, "sample_steps": 32}).fit(
        train, out=other, progress=False)
    with pytest.raises(ValueError, match="another shape"):
        tune_transformer(other, run, iterations=2, resume=True, chorales=train)
    gan = get_generator("music", "musegan")(epochs=0, bars=1, hidden=16, latent=4).fit(train, out=tmp_path / "gan",
                                                                                        progress=False)
    assert gan.built
    with pytest.raises(ValueError, match="needs a music/transformer run"):
        tune_transformer(tmp_path / "gan", tmp_path / "x", iterations=1, chorales=train)


def test_cli_tune_then_sample(tmp_path, transformer_dir, chorales, capsys, monkeypatch):
    import gailkit.data.chorales
    from gailkit.cli import main

    # `generate tune` reads the whole corpus for the critic's Bach side (parsing 330 chorales takes
    # minutes and writes ~/.cache); the session's few chorales stand in, and any cache stays in tmp_path
    monkeypatch.setenv("GAILKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gailkit.data.chorales, "load_chorales", lambda **kwargs: chorales)
    out = tmp_path / "tuned"
    flags = ["--n-bars", "1", "--rollout-pieces", "8", "--minibatch", "8", "--ppo-epochs", "1", "--disc-batch", "8"]
    assert main(["generate", "tune", str(transformer_dir), "--out", str(out), "--iterations", "1",
                 "--no-progress", *flags]) == 0
    assert "tuned" in capsys.readouterr().out
    assert main(["generate", "sample", str(out), "-n", "2", "--out", str(tmp_path / "s.mid")]) == 0
    assert (tmp_path / "s.mid").read_bytes()[:4] == b"MThd"  # a standard MIDI file
    assert main(["generate", "tune", "--help"]) == 0
    assert "--kl-coef" in capsys.readouterr().out
