"""The digits family: small generative models of handwritten digits.

Models (each registered as ``digits/<name>``): ``pixels`` (independent Bernoulli pixels),
``rbm`` (Bernoulli RBM, CD-k / persistent CD), ``dbn`` (deep belief net, optionally label
clamped), ``vae`` (MLP VAE), ``gan`` and ``cgan`` (MLP GANs), ``pixelcnn`` (masked convolutions).
They take any ``(1, H, W)`` images and are tested on scikit-learn's 8x8 digits.
"""

from __future__ import annotations

import dataclasses

from gailkit.data.images import ImageData, load_digits_data, load_mnist
from gailkit.errors import UsageError

__all__ = ["DATA_HELP", "load_data"]

DATA_HELP = ("'digits' (default): scikit-learn's 1,797 8x8 digits, 80/20 stratified split (seed 0); "
             "'mnist:PATH': MNIST from a local file (see gailkit.data.images.load_mnist)")


def _split(data: ImageData, split: str) -> ImageData:
    if split == "all":
        return data
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    train, test = data.split(0.2, seed=0)
    return train if split == "train" else test


def load_data(spec: str | None, *, split: str) -> ImageData:
    """The digit images named by ``spec`` (see :data:`DATA_HELP`), one deterministic split of them."""
    if spec in (None, "", "digits"):
        return _split(load_digits_data(), split)
    if spec.startswith("mnist:"):
        path = spec[len("mnist:"):]
        data = load_mnist(path)
        # the name carries the spec so evaluate() can find the matching training split
        return _split(dataclasses.replace(data, name=spec), split)
    raise UsageError(f"unknown digits data {spec!r}; use {DATA_HELP}")


from gailkit.generators.digits import dbn, gan, pixelcnn, pixels, rbm, vae  # noqa: F401  (registration)
