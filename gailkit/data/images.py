"""Image datasets for the digit and image generators.

:class:`ImageData` is the one form every image model takes: float32 ``(N, C, H, W)`` in
[0, 1], optional integer labels. Loaders for other sources (MNIST files, image folders,
frames rendered from environments) return it too.
"""

from __future__ import annotations

import dataclasses
import gzip
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gailkit.errors import UsageError

__all__ = ["ImageData", "env_frames", "load_digits_data", "load_image_folder", "load_mnist"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A stack of images, optionally labelled.

    Attributes:
        images: (N, C, H, W) float32 in [0, 1], C in (1, 3). Read-only.
        labels: (N,) int64 in [0, n_classes), or None.
        n_classes: number of classes (0 when unlabelled).
        name: where the data came from, for messages and run metadata.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    n_classes: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        images = np.ascontiguousarray(self.images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise UsageError(f"{self.name or 'images'}: expected shape (N, C, H, W) with C in (1, 3), "
                             f"got {images.shape}")
        if len(images) == 0:
            raise UsageError(f"{self.name or 'images'}: no images")
        if not np.isfinite(images).all():
            raise UsageError(f"{self.name or 'images'}: contains NaN or inf")
        lo, hi = float(images.min()), float(images.max())
        if lo < 0.0 or hi > 1.0:
            raise UsageError(f"{self.name or 'images'}: values must lie in [0, 1], found [{lo:g}, {hi:g}]; "
                             f"divide 8-bit images by 255 (or 8x8 digits by 16)")
        images.flags.writeable = False
        object.__setattr__(self, "images", images)
        if self.labels is not None:
            labels = np.ascontiguousarray(self.labels, dtype=np.int64)
            if labels.shape != (len(images),):
                raise UsageError(f"{self.name or 'images'}: {len(labels)} labels for {len(images)} images")
            n_classes = self.n_classes or int(labels.max()) + 1
            if labels.min() < 0 or labels.max() >= n_classes:
                raise UsageError(f"{self.name or 'images'}: labels must lie in [0, {n_classes})")
            labels.flags.writeable = False
            object.__setattr__(self, "labels", labels)
            object.__setattr__(self, "n_classes", n_classes)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        """The JSON description a model is built for (shape, classes, source)."""
        c, h, w = self.shape
        return {"channels": c, "height": h, "width": w, "n_classes": self.n_classes, "name": self.name}

    def subset(self, index: np.ndarray) -> ImageData:
        labels = None if self.labels is None else self.labels[index]
        return ImageData(self.images[index], labels, self.n_classes, self.name)

    def split(self, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[ImageData, ImageData]:
        """Shuffled (train, test) split; stratified by label when labelled."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(seed)
        if self.labels is None:
            order = rng.permutation(len(self))
            k = int(round(len(self) * test_fraction))
            return self.subset(np.sort(order[k:])), self.subset(np.sort(order[:k]))
        test = []
        for c in range(self.n_classes):
            idx = np.flatnonzero(self.labels == c)
            test.extend(rng.permutation(idx)[: int(round(len(idx) * test_fraction))])
        mask = np.zeros(len(self), dtype=bool)
        mask[test] = True
        return self.subset(np.flatnonzero(~mask)), self.subset(np.flatnonzero(mask))

    def binarized(self, threshold: float = 0.5) -> ImageData:
        """Pixels > threshold -> 1 else 0 (the 8x8 digits at 8/16 use threshold 0.5)."""
        return ImageData((self.images > threshold).astype(np.float32), self.labels, self.n_classes,
                         f"{self.name} (binarised at {threshold:g})")


def load_digits_data() -> ImageData:
    """scikit-learn's 1,797 8x8 handwritten digits, scaled to [0, 1], labels 0-9 (offline)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    return ImageData(images, digits.target, 10, "sklearn-digits")


# -- MNIST ---------------------------------------------------------------------------------------
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned bytes, 3-D images / 1-D labels


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes with ``ndim`` dimensions, validated."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise UsageError(f"MNIST: cannot read {path} ({e}); is it a (gzipped) IDX file?") from None
    what = "images (idx3)" if ndim == 3 else "labels (idx1)"
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"MNIST: {path} is truncated: {len(raw)} bytes, shorter than the {header}-byte IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise UsageError(f"MNIST: {path} has magic number 0x{magic:08x}, expected 0x{_IDX_MAGIC[ndim]:08x} for "
                         f"{what}; pass the images file (train-images-idx3-ubyte) with its labels file beside it")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise UsageError(f"MNIST: {path} is truncated or padded: its header promises {dims} = {expected} bytes of "
                         f"data, the file holds {len(raw) - header}; download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _labels_beside(images: Path) -> Path:
    name = images.name
    if "images-idx3" not in name:
        raise UsageError(f"MNIST: cannot tell the labels file for {images}: expected a name like "
                         f"train-images-idx3-ubyte[.gz] (its labels: train-labels-idx1-ubyte[.gz])")
    stem = name.replace("images-idx3", "labels-idx1")
    for candidate in (stem, stem.removesuffix(".gz"), stem if stem.endswith(".gz") else stem + ".gz"):
        if (images.parent / candidate).exists():
            return images.parent / candidate
    raise UsageError(f"MNIST: labels file {images.parent / stem} not found beside {images}")


def _load_mnist_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"MNIST: cannot read {path} as .npz ({e})") from None
    with archive:
        x_key = next((k for k in ("x", "x_train") if k in archive.files), None)
        if x_key is None:
            raise UsageError(f"MNIST: {path} has arrays {archive.files}; expected images as 'x' (or 'x_train') "
                             f"and labels as 'y' (or 'y_train')")
        y_key = {"x": "y", "x_train": "y_train"}[x_key]
        try:  # members are read only now: a damaged one fails here, not in np.load
            return archive[x_key], (archive[y_key] if y_key in archive.files else None)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise UsageError(f"MNIST: {path} is damaged ({type(e).__name__}: {e}); download or write it again"
                             ) from None


def load_mnist(path: str | Path, *, limit: int | None = None) -> ImageData:
    """MNIST (or any IDX/npz digit set) from local files; nothing is downloaded.

    Args:
        path: the images IDX file (``train-images-idx3-ubyte`` or ``.gz``; the labels file
            ``train-labels-idx1-ubyte[.gz]`` must lie beside it), a directory holding that pair,
            or a ``.npz`` with arrays ``x``/``y`` (or ``x_train``/``y_train``), read without pickle.
        limit: keep only the first ``limit`` images.

    Returns:
        ImageData (N, 1, H, W) in [0, 1] (8-bit pixels / 255), labels when the source has them.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"MNIST: {path} does not exist; pass train-images-idx3-ubyte[.gz], its directory or a .npz")
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if "images-idx3" in p.name and p.name.startswith("train"))
        found = found or sorted(p for p in path.iterdir() if "images-idx3" in p.name)
        if not found:
            raise UsageError(f"MNIST: no *images-idx3-ubyte[.gz] file in {path}")
        path = found[0]
    if path.suffix == ".npz":
        x, y = _load_mnist_npz(path)
    else:
        x, y = _read_idx(path, 3), _read_idx(_labels_beside(path), 1)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise UsageError(f"MNIST: {path} holds images of shape {x.shape}; expected (N, H, W)")
    if y is not None and len(y) != len(x):
        raise UsageError(f"MNIST: {path} has {len(x)} images but {len(y)} labels")
    if limit is not None:
        if limit < 1:
            raise UsageError(f"limit must be positive, got {limit}")
        x, y = x[:limit], (None if y is None else y[:limit])
    images = x.astype(np.float32)
    if x.dtype == np.uint8 or images.max() > 1.0:
        images /= 255.0
    labels = None if y is None else np.asarray(y, dtype=np.int64)
    return ImageData(images[:, None], labels, 10 if labels is not None and labels.max() < 10 else 0,
                     f"mnist:{path.name}")


# -- folders of pictures --------------------------------------------------------------------------
def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise UsageError(f"size must be positive (height, width), got {size}")
    return int(height), int(width)


def load_image_folder(path: str | Path, *, size: int | tuple[int, int] = (64, 64), channels: int = 3,
                      labels_from_subfolders: bool = True) -> ImageData:
    """PNG/JPEG pictures under ``path`` (searched recursively, sorted), resized bilinearly.

    Args:
        path: a directory.
        size: (height, width) of the returned images (an int: square).
        channels: 3 (RGB) or 1 (grey).
        labels_from_subfolders: when every picture lies in a subfolder, label it by its top-level
            subfolder (classes numbered in sorted name order).

    Returns:
        ImageData (N, channels, height, width) in [0, 1].
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    height, width = _size(size)
    if not root.is_dir():
        raise UsageError(f"image folder {root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UsageError(f"image folder {root} holds no pictures (searched recursively for "
                         f"{', '.join(IMAGE_EXTENSIONS)}, any case)")
    images = np.empty((len(files), height, width, channels), dtype=np.float32)
    for i, file in enumerate(files):
        try:
            with Image.open(file) as picture:
                picture = picture.convert("RGB" if channels == 3 else "L").resize((width, height), Image.BILINEAR)
                images[i] = np.asarray(picture, dtype=np.float32).reshape(height, width, channels) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise UsageError(f"image folder {root}: cannot read {file} ({e}); remove or replace it") from None
    labels, n_classes = None, 0
    parts = [f.relative_to(root).parts for f in files]
    if labels_from_subfolders and all(len(p) > 1 for p in parts):
        classes = sorted({p[0] for p in parts})
        labels = np.array([classes.index(p[0]) for p in parts], dtype=np.int64)
        n_classes = len(classes)
    return ImageData(images.transpose(0, 3, 1, 2), labels, n_classes, f"folder:{root}")


# -- frames of environments ----------------------------------------------------------------------
def _make_rgb_env(env_id: str):
    import gymnasium as gym

    import gailkit.envs  # noqa: F401  (registers the gailkit/ ids)

    try:
        return gym.make(env_id, render_mode="rgb_array")
    except TypeError as e:
        if "render_mode" not in str(e):
            raise
        return gym.make(env_id)  # a pixel wrapper that sets the render mode itself


def _is_image_space(space: Any) -> bool:
    import gymnasium as gym

    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and space.shape[-1] in (1, 3))


def env_frames(env_id: str, *, n: int, size: int | tuple[int, int] = (64, 64), seed: int = 0,
               policy: str | Callable[[Any], Any] = "random") -> ImageData:
    """``n`` RGB frames of a Gymnasium environment, so image models can train on what agents see.

    Envs whose observations are images (``gailkit/CartPoleCentredPixels-v1``) give their
    observations; others are made with ``render_mode="rgb_array"`` and give ``env.render()``.
    Episodes run back to back (the first reset seeded with ``seed``) until ``n`` frames are
    collected; frames are resized bilinearly with PIL.

    Args:
        env_id: any registered id.
        n: number of frames.
        size: (height, width) (an int: square).
        seed: seeds the first reset and the random policy; same seed, same frames.
        policy: ``"random"`` (uniform actions) or a callable ``observation -> action``.

    Returns:
        ImageData (n, 3, height, width) in [0, 1], unlabelled.
    """
    import gymnasium as gym
    from PIL import Image

    if n < 1:
        raise UsageError(f"n must be positive, got {n}")
    if not (policy == "random" or callable(policy)):
        raise UsageError(f"policy must be 'random' or a callable observation -> action, got {policy!r}")
    height, width = _size(size)
    try:
        env = _make_rgb_env(env_id)
    except gym.error.Error as e:
        raise UsageError(f"env_frames: cannot make {env_id!r} ({e})") from None
    from_obs = _is_image_space(env.observation_space)
    if not from_obs and env.render_mode != "rgb_array":
        env.close()
        raise UsageError(f"env_frames: {env_id} neither observes images nor renders rgb_array frames")
    env.action_space.seed(seed)
    frames = np.empty((n, height, width, 3), dtype=np.float32)
    try:
        obs, _ = env.reset(seed=seed)
        for i in range(n):
            frame = np.asarray(obs if from_obs else env.render(), dtype=np.uint8)
            picture = Image.fromarray(frame.squeeze(-1) if frame.shape[-1] == 1 else frame).convert("RGB")
            frames[i] = np.asarray(picture.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0
            action = env.action_space.sample() if policy == "random" else policy(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return ImageData(frames.transpose(0, 3, 1, 2), name=f"env:{env_id}")
