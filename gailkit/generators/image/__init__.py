"""The image family: DCGAN, the world models' convolutional VAE, and CycleGAN.

Data is :class:`~gailkit.data.images.ImageData` (N, C, H, W) in [0, 1] for ``dcgan`` and
``vae``, and an :class:`~gailkit.generators.image.sources.ImagePair` of two unpaired domains
for ``cyclegan``. Metrics: Frechet distance in a fixed random-conv embedding and a
nearest-neighbour ratio (``features``); for CycleGAN a domain judge and cycle errors.
"""

from __future__ import annotations

from gailkit.data.images import ImageData
from gailkit.generators.image.cyclegan import CycleGAN
from gailkit.generators.image.dcgan import DCGAN
from gailkit.generators.image.sources import ImagePair, load_spec
from gailkit.generators.image.vae import ImageVAE

__all__ = ["DATA_HELP", "DCGAN", "CycleGAN", "ImagePair", "ImageVAE", "load_data"]

DATA_HELP = (
    "default (dcgan, vae): 2,000 random-policy frames of Acrobot-v1 at 32x32; "
    "env:ENV_ID[,n=N][,size=S][,seed=K]; folder:PATH[,size=S][,channels=C]; mnist:PATH[,limit=N] "
    "(IDX or .npz, padded to 32x32); digits[,size=S] (8x8 digits upscaled, 32 by default); "
    "photos[,size=S][,n=N] (patches of scikit-image's photos). cyclegan: demo-pair[,size=S][,n=N] "
    "(photo patches vs posterised prints, its default) or pair:FOLDER_A,FOLDER_B[,size=S]"
)


def load_data(spec: str | None, *, split: str) -> ImageData | ImagePair:
    """The dataset named by ``spec`` (see :data:`DATA_HELP`), its ``split`` ("train", "test", "all")."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return load_spec(spec, split=split)
