"""Sample grids as PNG: small images upscaled by nearest neighbour so 8x8 digits stay readable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gailkit.nn.checkpoint import atomic_write

__all__ = ["image_grid", "save_grid"]


def image_grid(images: np.ndarray, *, nrow: int | None = None, pad: int = 1, min_size: int = 32) -> np.ndarray:
    """Tile images into one uint8 picture.

    Args:
        images: (N, C, H, W) or (N, H, W), values in [0, 1]; C is 1 or 3.
        nrow: images per row (default: about square).
        pad: pixels of grey between tiles (after upscaling).
        min_size: each tile is upscaled by an integer factor to at least this many pixels.

    Returns:
        (rows, cols, 3) uint8.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"image_grid takes (N, C, H, W) with C in (1, 3) and N >= 1, got shape {images.shape}")
    n, c, h, w = images.shape
    scale = max(1, -(-min_size // max(h, w)))
    tiles = np.clip(np.nan_to_num(images), 0.0, 1.0).repeat(scale, axis=2).repeat(scale, axis=3)
    if c == 1:
        tiles = tiles.repeat(3, axis=1)
    tiles = (tiles * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H', W', 3)
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol_rows = -(-n // nrow)
    th, tw = h * scale, w * scale
    grid = np.full((ncol_rows * (th + pad) + pad, nrow * (tw + pad) + pad, 3), 128, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, q = divmod(i, nrow)
        grid[pad + r * (th + pad):pad + r * (th + pad) + th, pad + q * (tw + pad):pad + q * (tw + pad) + tw] = tile
    return grid


def save_grid(images: np.ndarray, path: str | Path, **kwargs) -> Path:
    """:func:`image_grid` written to ``path`` as PNG (atomically)."""
    from PIL import Image

    picture = Image.fromarray(image_grid(images, **kwargs))
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))
