"""Where the image family's data comes from: ``--data`` specs, built-in photo patches and the
CycleGAN demo pair, all offline and deterministic.

Specs (options are trailing ``,key=value`` tokens):

- ``None`` / ``frames``: 2,000 frames of ``Acrobot-v1`` under a random policy at 32x32 (what a
  pixel agent sees; 1,993 distinct frames, where the cart-following CartPole view gives only 10
  distinct 32x32 frames in 2,000 random-policy steps); ``env:ENV_ID[,n=N][,size=S][,seed=K]`` for
  any env. Env frames are split in contiguous blocks (first 80 % train), so neighbouring,
  nearly identical frames do not land on both sides.
- ``folder:PATH[,size=S][,channels=C]``, ``mnist:PATH[,limit=N]`` (28x28 padded to 32x32),
  ``digits[,size=S]`` (scikit-learn's 8x8 digits upscaled, default 32x32),
  ``photos[,size=S][,n=N]`` (patches of scikit-image's bundled photographs).
- ``pair:FOLDER_A,FOLDER_B[,size=S]`` and ``demo-pair[,size=S][,n=N]``: two unpaired domains for
  CycleGAN; the demo pairs photo patches (A) with patches of *other* positions rendered as warm
  posterised prints (B).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gailkit.data.images import ImageData, env_frames, load_digits_data, load_image_folder, load_mnist
from gailkit.errors import UsageError

__all__ = [
    "DEFAULT_ENV",
    "PHOTOS",
    "ImagePair",
    "demo_pair",
    "load_spec",
    "parse_spec",
    "photo_patches",
    "posterise",
    "upscale",
]

DEFAULT_ENV = "Acrobot-v1"
#: scikit-image photographs that ship inside the package (no download)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
_INT_OPTIONS = {"n", "size", "seed", "channels", "limit"}


@dataclasses.dataclass(frozen=True)
class ImagePair:
    """Two unpaired image domains of the same (C, H, W), as CycleGAN takes them."""

    a: ImageData
    b: ImageData

    def __post_init__(self) -> None:
        if self.a.shape != self.b.shape:
            raise UsageError(f"domains A ({self.a.name}) and B ({self.b.name}) must have the same (C, H, W), got "
                             f"{self.a.shape} and {self.b.shape}; load both with the same size= and channels=")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.a.shape

    def info(self) -> dict:
        return {**self.a.info(), "name": f"{self.a.name} | {self.b.name}"}

    def split(self, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[ImagePair, ImagePair]:
        (a_train, a_test), (b_train, b_test) = self.a.split(test_fraction, seed=seed), self.b.split(
            test_fraction, seed=seed + 1)
        return ImagePair(a_train, b_train), ImagePair(a_test, b_test)


def parse_spec(spec: str, *, whole: str | None = None) -> tuple[str, list[str], dict[str, int]]:
    """``"kind:arg1,arg2,key=3"`` -> ``("kind", ["arg1", "arg2"], {"key": 3})``; ``whole``: the
    spec the user wrote, for messages (``"digits,size=16"`` is parsed in two parts)."""
    whole = spec if whole is None else whole
    kind, _, rest = spec.partition(":")
    args, options = [], {}
    for token in rest.split(",") if rest else []:
        key, eq, value = token.partition("=")
        if eq and key.strip() in _INT_OPTIONS:
            try:
                options[key.strip()] = int(value)
            except ValueError:
                raise UsageError(f"--data {whole!r}: {key}= takes an integer, got {value!r}") from None
        elif eq and "/" not in key and " " not in key:
            raise UsageError(f"--data {whole!r}: unknown option {key!r}; options are "
                             f"{', '.join(sorted(_INT_OPTIONS))}")
        else:
            args.append(token)
    if "," in kind:  # "digits,size=16"
        kind, _, tail = kind.partition(",")
        _, more_args, more = parse_spec(f"x:{tail}", whole=whole)
        args, options = more_args + args, {**more, **options}
    return kind.strip(), args, options


def upscale(data: ImageData, size: int) -> ImageData:
    """Bilinear resize to ``size x size`` (the 8x8 digits to the DCGAN's 32x32)."""
    import torch
    import torch.nn.functional as F

    x = F.interpolate(torch.from_numpy(np.array(data.images)), size=(size, size), mode="bilinear",
                      align_corners=False).clamp(0, 1).numpy()
    return ImageData(x, data.labels, data.n_classes, f"{data.name} at {size}x{size}")


def _photos(scale: float) -> list[np.ndarray]:
    import skimage.data
    from PIL import Image

    out = []
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        h, w = photo.shape[:2]
        picture = Image.fromarray(photo).resize((int(w * scale), int(h * scale)), Image.BILINEAR)
        out.append(np.asarray(picture, dtype=np.float32) / 255.0)
    return out


def photo_patches(n: int, *, size: int = 32, seed: int = 0, scale: float = 0.5) -> ImageData:
    """``n`` random ``size x size`` RGB patches of the bundled photographs (downscaled by ``scale``).

    Patch ``i`` comes from photo ``i % 4``, at a position drawn from ``default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    photos = _photos(scale)
    patches = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        photo = photos[i % len(photos)]
        y = rng.integers(0, photo.shape[0] - size + 1)
        x = rng.integers(0, photo.shape[1] - size + 1)
        patches[i] = photo[y:y + size, x:x + size]
    return ImageData(patches.transpose(0, 3, 1, 2), name=f"photo patches {size}x{size}")


def posterise(images: np.ndarray, *, levels: int = 4) -> np.ndarray:
    """The demo's "print" style: a light blur, ``levels`` levels per channel, a warm tint.

    Args:
        images: (N, 3, H, W) in [0, 1].

    Returns:
        (N, 3, H, W) float32 in [0, 1].
    """
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(np.asarray(images, dtype=np.float32), sigma=(0, 0, 0.7, 0.7), mode="nearest")
    quantised = np.round(np.clip(blurred, 0, 1) * (levels - 1)) / (levels - 1)
    tint = np.array([1.0, 0.82, 0.55], dtype=np.float32)[:, None, None]
    lift = np.array([0.0, 0.06, 0.16], dtype=np.float32)[:, None, None]
    return np.clip(quantised * tint + lift, 0.0, 1.0).astype(np.float32)


def demo_pair(n: int = 1000, *, size: int = 32, seed: int = 0) -> ImagePair:
    """Photo patches (A) vs posterised prints of patches at other positions (B): unpaired."""
    a = photo_patches(n, size=size, seed=seed)
    b_source = photo_patches(n, size=size, seed=seed + 7919)
    b = ImageData(posterise(b_source.images), name=f"posterised photo patches {size}x{size}")
    return ImagePair(a, b)


def _contiguous_split(data: ImageData, split: str) -> ImageData:
    cut = round(0.8 * len(data))
    return {"train": data.subset(np.arange(cut)), "test": data.subset(np.arange(cut, len(data))),
            "all": data}[split]


def _random_split(data, split: str):
    if split == "all":
        return data
    train, test = data.split(0.2, seed=0)
    return train if split == "train" else test


def load_spec(spec: str | None, *, split: str) -> ImageData | ImagePair:
    """The data a ``--data`` spec names (see the module docstring), one split of it."""
    kind, args, opt = parse_spec(spec or "frames")
    size = opt.get("size")
    if kind in ("frames", "env"):
        env_id = args[0] if kind == "env" and args else DEFAULT_ENV
        if kind == "env" and not args:
            raise UsageError("--data env:ENV_ID needs an env id, e.g. env:CartPole-v1")
        data = env_frames(env_id, n=opt.get("n", 2000), size=size or 32, seed=opt.get("seed", 0))
        return _contiguous_split(data, split)
    if kind == "folder":
        if len(args) != 1:
            raise UsageError(f"--data {spec!r}: expected folder:PATH[,size=S][,channels=C]")
        return _random_split(load_image_folder(args[0], size=size or 64, channels=opt.get("channels", 3)), split)
    if kind == "mnist":
        if len(args) != 1:
            raise UsageError(f"--data {spec!r}: expected mnist:PATH[,limit=N]")
        data = load_mnist(args[0], limit=opt.get("limit"))
        padded = np.pad(data.images, ((0, 0), (0, 0), (2, 2), (2, 2))) if data.shape[1:] == (28, 28) else data.images
        return _random_split(ImageData(padded, data.labels, data.n_classes, data.name), split)
    if kind == "digits":
        return _random_split(upscale(load_digits_data(), size or 32), split)
    if kind == "photos":
        return _random_split(photo_patches(opt.get("n", 2000), size=size or 32, seed=opt.get("seed", 0)), split)
    if kind == "pair":
        if len(args) != 2:
            raise UsageError(f"--data {spec!r}: expected pair:FOLDER_A,FOLDER_B[,size=S]")
        pair = ImagePair(load_image_folder(args[0], size=size or 64, labels_from_subfolders=False),
                         load_image_folder(args[1], size=size or 64, labels_from_subfolders=False))
        return _random_split(pair, split)
    if kind == "demo-pair":
        return _random_split(demo_pair(opt.get("n", 1000), size=size or 32, seed=opt.get("seed", 0)), split)
    raise UsageError(f"unknown image --data kind {kind!r} in {spec!r}; use frames, env:ID, folder:PATH, mnist:PATH, "
                     f"digits, photos, pair:A,B or demo-pair")
