"""The judge: a small MLP classifier trained on the real training images, whose class
probabilities give the inception-style score and whose penultimate layer gives the features
for the Frechet distance. Nothing is downloaded; the same data and seed give the same judge.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import torch
from torch import nn

from gailkit.data.images import ImageData
from gailkit.errors import UsageError

__all__ = ["Judge", "judge_for", "train_judge"]

_CACHE: dict[tuple[str, int], Judge] = {}


class Judge(nn.Module):
    """``D -> hidden[0] -> ... -> hidden[-1] -> n_classes`` with ReLUs and dropout.

    Args:
        shape: (C, H, W) of the images it judges.
        n_classes: number of labels.
        hidden: widths of the hidden layers; the last one is the feature width.
        dropout: dropout before each hidden layer's output (training only).
    """

    def __init__(self, shape: tuple[int, int, int], n_classes: int, *, hidden: tuple[int, ...] = (256, 64),
                 dropout: float = 0.2):
        super().__init__()
        self.shape = tuple(shape)
        dims = [int(np.prod(shape)), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], n_classes)
        self.accuracy: float = float("nan")  # held-out accuracy, set by train_judge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) of images (N, C, H, W)."""
        return self.head(self.body(x))

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            images = images[:, None]
        if images.shape[1:] != self.shape:
            raise UsageError(f"the judge was trained on images of shape {self.shape}, got {images.shape[1:]}")
        return torch.from_numpy(np.array(images, dtype=np.float32))  # a writable copy

    @torch.no_grad()
    def probs(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, n_classes) of images (N, C, H, W) in [0, 1]."""
        self.eval()
        return torch.softmax(self(self._tensor(images)), -1).numpy().astype(np.float64)

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer activations (N, hidden[-1])."""
        self.eval()
        return self.body(self._tensor(images)).numpy().astype(np.float64)

    def score_accuracy(self, data: ImageData) -> float:
        """Fraction of ``data`` (labelled) classified correctly."""
        return float((self.probs(data.images).argmax(1) == data.labels).mean())


def train_judge(train: ImageData, *, seed: int = 0, epochs: int = 60, batch_size: int = 256, lr: float = 5e-3,
                weight_decay: float = 1e-4, hidden: tuple[int, ...] = (256, 64),
                holdout: ImageData | None = None) -> Judge:
    """Fit a :class:`Judge` on labelled ``train`` (seeded; a few seconds on the 8x8 digits).

    Args:
        holdout: if given, its accuracy is stored in ``judge.accuracy``.
    """
    if train.labels is None:
        raise UsageError(f"{train.name or 'data'}: the judge needs labelled training images")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # keep the caller's global RNG stream untouched
        torch.manual_seed(seed)
        judge = Judge(train.shape, train.n_classes, hidden=hidden)
    x = torch.from_numpy(np.array(train.images))
    y = torch.from_numpy(np.array(train.labels))
    opt = torch.optim.Adam(judge.parameters(), lr=lr, weight_decay=weight_decay)
    judge.train()
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # dropout masks
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for s in range(0, len(x), batch_size):
                idx = order[s:s + batch_size]
                loss = nn.functional.cross_entropy(judge(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    judge.eval()
    if holdout is not None:
        judge.accuracy = judge.score_accuracy(holdout)
    return judge


def _fingerprint(data: ImageData) -> str:
    h = hashlib.sha1(np.ascontiguousarray(data.images).tobytes())
    if data.labels is not None:
        h.update(np.ascontiguousarray(data.labels).tobytes())
    return h.hexdigest()


def judge_for(train: ImageData, *, seed: int = 0, holdout: ImageData | None = None) -> Judge:
    """:func:`train_judge` memoised in this process by the data's content and ``seed``."""
    key = (_fingerprint(train), seed)
    if key not in _CACHE:
        _CACHE[key] = train_judge(train, seed=seed, holdout=holdout)
    judge = _CACHE[key]
    if holdout is not None and np.isnan(judge.accuracy):
        judge.accuracy = judge.score_accuracy(holdout)
    return judge
