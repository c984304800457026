"""DCGAN: shapes, learning, save/load, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gailkit.data.images import ImageData
from gailkit.generators import load_family_data
from gailkit.generators.image import DCGAN, ImageVAE
from gailkit.nn.checkpoint import CheckpointError

TINY = {"width": 8, "latent_dim": 16, "batch_size": 32, "lr": 1e-3, "grid_every": 0}


@pytest.fixture(scope="module")
def digits16():
    return load_family_data("image", "digits,size=16", split="train").subset(np.arange(256))


@pytest.fixture(scope="module")
def trained(digits16, tmp_path_factory):
    out = tmp_path_factory.mktemp("dcgan") / "run"
    untrained = DCGAN(epochs=0, **TINY)
    untrained.fit(digits16, progress=False)
    model = DCGAN(epochs=6, **TINY).fit(digits16, out=out, progress=False)
    return untrained, model, out


def test_learning_brings_samples_towards_the_data(trained, digits16):
    untrained, model, _ = trained
    before, after = untrained.evaluate(digits16)["frechet"], model.evaluate(digits16)["frechet"]
    # measured with seeds 0 / 1 / 2: Frechet 274 -> 70 / 267 -> 77 / 282 -> 96 (0.26 / 0.29 / 0.34 of before)
    assert after < 0.5 * before, f"Frechet distance to the data {before:.1f} -> {after:.1f}"


def test_shapes_for_rgb_and_sizes():
    rgb = ImageData(np.random.default_rng(0).random((8, 3, 32, 32)))
    model = DCGAN(epochs=1, **{**TINY, "batch_size": 4}, norm="batch", r1_gamma=1.0, label_smoothing=0.1)
    model.fit(rgb, progress=False)
    assert model.sample(5, seed=1).shape == (5, 3, 32, 32)
    assert model.history[0]["r1"] > 0 and np.isfinite(model.history[0]["loss_d"])
    with pytest.raises(ValueError, match="square images of side 16, 32, 64, 128.*24x24"):
        DCGAN(epochs=1, **TINY).fit(ImageData(np.zeros((4, 1, 24, 24))), progress=False)
    with pytest.raises(ValueError, match="norm must be"):
        DCGAN(epochs=1, norm="layer", **TINY).fit(rgb, progress=False)


def test_save_load_gives_the_same_samples(trained, tmp_path):
    _, model, out = trained
    loaded = DCGAN.load(out)
    np.testing.assert_array_equal(loaded.sample(6, seed=3), model.sample(6, seed=3))
    assert not np.array_equal(loaded.sample(6, seed=3), loaded.sample(6, seed=4))
    assert (out / "samples" / "epoch_0006.png").exists() is False  # grid_every=0
    from PIL import Image

    assert Image.open(model.save_samples(tmp_path / "g.png", n=9)).size[0] >= 3 * 16  # a 3x3 grid of 16x16


def test_resume_is_exact(digits16, tmp_path):
    small = digits16.subset(np.arange(64))
    full = DCGAN(epochs=2, **TINY).fit(small, out=tmp_path / "full", progress=False)
    DCGAN(epochs=1, **TINY).fit(small, out=tmp_path / "split", progress=False)
    resumed = DCGAN(epochs=2, **TINY).fit(small, out=tmp_path / "split", resume=True, progress=False)
    for k, v in full.state_tensors().items():
        assert torch.equal(v, resumed.state_tensors()[k]), k


def test_refusals(trained, tmp_path):
    _, model, out = trained
    with pytest.raises(ValueError, match=r"built for 1x16x16 images.*got 1x32x32"):
        model.evaluate(load_family_data("image", "digits", split="test"))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageData(np.full((2, 1, 16, 16), 255.0))
    with pytest.raises(CheckpointError, match="holds a image/dcgan model, not image/vae"):
        ImageVAE.load(out)
    with pytest.raises(TypeError, match="takes an ImageData"):
        DCGAN(**TINY).fit(np.zeros((4, 1, 16, 16)), progress=False)
