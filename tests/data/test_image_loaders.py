"""Image loaders: MNIST IDX/npz files, picture folders, env frames (tiny files written here)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

from gailkit.data.images import env_frames, load_image_folder, load_mnist


def _idx(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def mnist_pair(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images, 0x803)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(labels, 0x801))
    return tmp_path, images, labels


def test_mnist_idx_from_file_or_directory(mnist_pair):
    root, images, labels = mnist_pair
    for source in (root / "train-images-idx3-ubyte.gz", root):
        data = load_mnist(source)
        assert data.images.shape == (5, 1, 28, 28) and data.n_classes == 10
        np.testing.assert_allclose(data.images[:, 0], images / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(data.labels, labels)
    assert len(load_mnist(root, limit=2)) == 2


def test_mnist_idx_errors(mnist_pair, tmp_path):
    root, images, _ = mnist_pair
    raw = gzip.decompress((root / "train-images-idx3-ubyte.gz").read_bytes())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    (bad / "train-labels-idx1-ubyte").write_bytes((root / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(bad / "train-images-idx3-ubyte")
    (bad / "train-images-idx3-ubyte").write_bytes(_idx(images, 0x801 + 0x1000))
    with pytest.raises(ValueError, match="magic number 0x00001801"):
        load_mnist(bad)
    (bad / "train-labels-idx1-ubyte").unlink()
    (bad / "train-images-idx3-ubyte").write_bytes(raw)
    with pytest.raises(ValueError, match="labels file .*train-labels-idx1-ubyte not found"):
        load_mnist(bad / "train-images-idx3-ubyte")
    with pytest.raises(ValueError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_mnist_npz(tmp_path):
    x = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    np.savez(tmp_path / "a.npz", x_train=x.astype(np.uint8), y_train=np.array([0, 9, 2]))
    data = load_mnist(tmp_path / "a.npz")
    assert data.images.shape == (3, 1, 28, 28) and list(data.labels) == [0, 9, 2]
    assert data.images.max() == pytest.approx(255 / 255)
    np.savez(tmp_path / "b.npz", pixels=x)
    with pytest.raises(ValueError, match=r"arrays \['pixels'\]; expected images as 'x'"):
        load_mnist(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=x, y=np.array([1, 2]))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_mnist(tmp_path / "c.npz")


def _png(path, colour, size=(10, 7)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_labels_size_channels(tmp_path):
    _png(tmp_path / "cats" / "a.png", (255, 0, 0))
    _png(tmp_path / "cats" / "b.PNG", (0, 255, 0))
    _png(tmp_path / "dogs" / "c.png", (0, 0, 255))
    data = load_image_folder(tmp_path, size=(6, 4))
    assert data.images.shape == (3, 3, 6, 4) and data.n_classes == 2
    assert list(data.labels) == [0, 0, 1]  # sorted subfolders: cats=0, dogs=1
    np.testing.assert_allclose(data.images[2, :, 3, 2], [0, 0, 1], atol=1e-6)
    grey = load_image_folder(tmp_path, size=5, channels=1, labels_from_subfolders=False)
    assert grey.images.shape == (3, 1, 5, 5) and grey.labels is None
    assert grey.images[0].mean() == pytest.approx(0.299, abs=0.01)  # PIL's luma of pure red


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty holds no pictures.*\.png, \.jpg, \.jpeg"):
        load_image_folder(tmp_path / "empty")
    _png(tmp_path / "mixed" / "ok.png", (1, 2, 3))
    (tmp_path / "mixed" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read .*broken.png"):
        load_image_folder(tmp_path / "mixed")


def test_env_frames_shapes_and_determinism():
    a = env_frames("CartPole-v1", n=30, size=(20, 24), seed=3)
    b = env_frames("CartPole-v1", n=30, size=(20, 24), seed=3)
    c = env_frames("CartPole-v1", n=30, size=(20, 24), seed=4)
    assert a.images.shape == (30, 3, 20, 24) and a.labels is None
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert a.images.std(0).max() > 0.05  # the cart and pole move across the 30 frames
    always_left = env_frames("CartPole-v1", n=30, size=16, seed=3, policy=lambda obs: 0)
    assert not np.array_equal(always_left.images, env_frames("CartPole-v1", n=30, size=16, seed=3).images)
    with pytest.raises(ValueError, match="policy"):
        env_frames("CartPole-v1", n=2, policy="greedy")
