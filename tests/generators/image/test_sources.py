"""The image family's --data specs and the CycleGAN demo pair."""

from __future__ import annotations

import numpy as np
import pytest

from gailkit.data.images import ImageData
from gailkit.generators import load_family_data
from gailkit.generators.image.sources import ImagePair, demo_pair, parse_spec, posterise


def test_parse_spec():
    assert parse_spec("env:CartPole-v1,n=30,size=16") == ("env", ["CartPole-v1"], {"n": 30, "size": 16})
    assert parse_spec("digits,size=16") == ("digits", [], {"size": 16})
    assert parse_spec("pair:/x/a,/x/b,size=8") == ("pair", ["/x/a", "/x/b"], {"size": 8})
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        parse_spec("digits,colour=3")
    with pytest.raises(ValueError, match="size= takes an integer"):
        parse_spec("digits,size=big")


def test_digits_spec_is_a_deterministic_split():
    train = load_family_data("image", "digits,size=16", split="train")
    test = load_family_data("image", "digits,size=16", split="test")
    assert train.shape == (1, 16, 16) and len(train) + len(test) == 1797
    np.testing.assert_array_equal(test.images, load_family_data("image", "digits,size=16", split="test").images)
    with pytest.raises(ValueError, match="unknown image --data kind 'cifar'"):
        load_family_data("image", "cifar", split="train")


def test_env_frames_split_in_blocks():
    everything = load_family_data("image", "env:CartPole-v1,n=20,size=16", split="all")
    train = load_family_data("image", "env:CartPole-v1,n=20,size=16", split="train")
    test = load_family_data("image", "env:CartPole-v1,n=20,size=16", split="test")
    np.testing.assert_array_equal(np.concatenate([train.images, test.images]), everything.images)
    assert len(test) == 4


def test_demo_pair_is_unpaired_and_styled():
    pair = demo_pair(12, size=16)
    assert pair.a.shape == pair.b.shape == (3, 16, 16)
    levels = np.unique(np.round(pair.b.images[:, 0] * 3, 4))  # red channel: 4 levels, untinted
    assert len(levels) <= 4
    assert pair.b.images[:, 2].max() < pair.b.images[:, 0].max()  # warm tint: blue is damped
    assert not np.allclose(posterise(pair.a.images), pair.b.images)  # B shows other patches than A
    with pytest.raises(ValueError, match="same \\(C, H, W\\)"):
        ImagePair(pair.a, ImageData(np.zeros((2, 1, 16, 16))))


def test_pair_folder_and_mnist_specs(tmp_path):
    from PIL import Image

    for domain, colour in (("horses", (120, 80, 40)), ("zebras", (250, 250, 250))):
        for i in range(3):
            (tmp_path / domain).mkdir(exist_ok=True)
            Image.new("RGB", (20 + i, 18), colour).save(tmp_path / domain / f"{i}.png")
    pair = load_family_data("image", f"pair:{tmp_path / 'horses'},{tmp_path / 'zebras'},size=16", split="all")
    assert isinstance(pair, ImagePair) and pair.shape == (3, 16, 16) and len(pair.a) == len(pair.b) == 3
    assert pair.b.images.min() > 0.9
    folder = load_family_data("image", f"folder:{tmp_path},size=8,channels=1", split="all")
    assert folder.shape == (1, 8, 8) and folder.n_classes == 2
    np.savez(tmp_path / "m.npz", x=np.full((10, 28, 28), 255, np.uint8), y=np.arange(10))
    mnist = load_family_data("image", f"mnist:{tmp_path / 'm.npz'}", split="all")
    assert mnist.shape == (1, 32, 32)  # 28x28 padded by 2 on each side
    assert mnist.images[:, :, :2].max() == 0 and mnist.images[:, :, 2:30, 2:30].min() == 1
