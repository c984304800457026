"""Offline yardsticks for image generators: a fixed random-conv embedding, the Frechet distance
between Gaussian fits of embeddings, nearest-neighbour copy ratios, and a small domain judge.

The embedding is a *fixed random* convolutional network (weights drawn from
``numpy.random.default_rng(0)``, never trained): random conv features separate image
distributions well enough for relative comparisons (Naeem et al., 2020), need no labels (env
frames and photo patches have none) and are the same for every model, run and machine, so
Frechet distances are comparable across the image family. They are not comparable with
published Inception FIDs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.generators.metrics.scores import frechet_from_features as frechet_distance
from gailkit.generators.metrics.scores import nn_distances

__all__ = ["DomainJudge", "RandomConvFeatures", "embed", "frechet_distance", "nn_distances", "nn_ratio"]

_EMBED_SIZE = 32


class RandomConvFeatures(nn.Module):
    """Images (N, C, H, W) in [0, 1] -> features (N, 256): mean- and max-pooled maps of three
    random ReLU convolutions, on the images resized to 32x32 (grey repeated to RGB)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 4, stride=2, padding=1),
                                    nn.Conv2d(64, 128, 4, stride=2, padding=1)])
        for conv in self.convs:
            fan_in = conv.weight[0].numel()
            # He-normal weights, zero bias: activations keep their scale through the ReLUs
            conv.weight.data = torch.from_numpy(rng.normal(0, np.sqrt(2 / fan_in), conv.weight.shape)).float()
            conv.bias.data.zero_()
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images if images.shape[1] == 3 else images.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(_EMBED_SIZE, _EMBED_SIZE), mode="bilinear", align_corners=False) * 2 - 1
        for conv in self.convs:
            x = F.relu(conv(x))
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)  # (N, 256)


_EMBEDDER: RandomConvFeatures | None = None


@torch.no_grad()
def embed(images: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """:class:`RandomConvFeatures` of ``images`` (N, C, H, W) in [0, 1] -> (N, 256) float64."""
    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = RandomConvFeatures()
    x = torch.from_numpy(np.array(images, dtype=np.float32))  # a writable copy
    return torch.cat([_EMBEDDER(x[i:i + batch]) for i in range(0, len(x), batch)]).double().numpy()


def nn_ratio(samples: np.ndarray, probe: np.ndarray, reference: np.ndarray) -> float:
    """Mean nearest-neighbour distance of ``samples`` to ``reference`` over that of real ``probe``
    images (not in ``reference``). About 1: samples are as near the reference as fresh real
    images are; near 0: the model copies reference images; well above 1: off the data. NaN when
    the probe images are themselves copies of reference images (a data set of repeated frames),
    where the ratio means nothing."""
    probe_distance = nn_distances(probe, reference).mean()
    if probe_distance <= 1e-6:
        return float("nan")
    return float(nn_distances(samples, reference).mean() / probe_distance)


class DomainJudge:
    """A small conv classifier of domain A (0) vs domain B (1), trained from scratch, seeded.

    Judges CycleGAN translations: the fraction of ``G(a)`` it calls B is how convincingly A was
    carried into B.
    """

    def __init__(self, channels: int, *, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.seed = seed
        with torch.random.fork_rng():  # initialise from our own seed without touching the caller's RNG
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=g)))
            self.net = nn.Sequential(
                nn.Conv2d(channels, 16, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(32, 32, 3, padding=1), nn.LeakyReLU(0.2),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1),
            )

    def fit(self, a: np.ndarray, b: np.ndarray, *, steps: int = 300, batch: int = 64) -> DomainJudge:
        """Train on real images of both domains (N, C, H, W) in [0, 1]."""
        x = torch.from_numpy(np.concatenate([a, b]).astype(np.float32))
        y = torch.cat([torch.zeros(len(a)), torch.ones(len(b))])
        g = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=2e-3)
        self.net.train()
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch, len(x)),), generator=g)
            loss = F.binary_cross_entropy_with_logits(self.net(x[idx]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.net.eval()
        return self

    @torch.no_grad()
    def prob_b(self, images: np.ndarray) -> np.ndarray:
        """P(domain B | image) for (N, C, H, W) images -> (N,)."""
        return torch.sigmoid(self.net(torch.from_numpy(np.array(images, dtype=np.float32))).squeeze(1)).numpy()
