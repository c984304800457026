"""Deep belief network (Hinton, Osindero & Teh, 2006): RBMs trained greedily, layer by layer,
each on the sampled hidden states of the one below. With labels, the top RBM sees
``[h, one-hot label]``, so sampling with the label units clamped draws a chosen digit.

Generation runs Gibbs sampling in the top RBM, then one top-down pass through the lower
RBMs' ``p(v | h)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.digits.common import DigitModel, hidden_sizes
from gailkit.generators.digits.rbm import BernoulliRBM

__all__ = ["DBN", "DBNConfig"]


@dataclasses.dataclass
class DBNConfig(GeneratorConfig):
    """Options of :class:`DBN`; ``epochs`` are shared equally by the layers, bottom first."""

    epochs: int = dataclasses.field(default=150, metadata=doc("passes over the data, split equally over layers"))
    batch_size: int = dataclasses.field(default=32, metadata=doc("examples per gradient step"))
    lr: float = dataclasses.field(default=0.05, metadata=doc("SGD learning rate (decays linearly within a layer)"))
    hidden: str = dataclasses.field(default="256,256", metadata=doc("hidden layer sizes, bottom to top"))
    labelled: bool = dataclasses.field(default=True, metadata=doc("top RBM also sees the one-hot label"))
    k: int = dataclasses.field(default=1, metadata=doc("Gibbs sweeps per negative phase"))
    persistent: bool = dataclasses.field(default=True, metadata=doc("persistent CD"))
    momentum: float = dataclasses.field(default=0.9, metadata=doc("SGD momentum"))
    weight_decay: float = dataclasses.field(default=1e-4, metadata=doc("L2 penalty on the weights"))
    sample_steps: int = dataclasses.field(default=1000, metadata=doc("Gibbs sweeps in the top RBM when sampling"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "k": "[1, inf)", "momentum": "[0, 1)",
                                        "weight_decay": "[0, inf)", "sample_steps": "[1, inf)"}


@register("digits", "dbn")
class DBN(DigitModel, TorchGenerator):
    """Deep belief net: greedy layer-wise RBMs, label-clamped Gibbs sampling at the top."""

    Config = DBNConfig
    binary = True

    @property
    def n_labels(self) -> int:
        return int(self.data_info.get("n_classes", 0)) if self.config.labelled else 0

    def _build(self) -> None:
        cfg = self.config
        sizes = hidden_sizes(cfg.hidden)
        ins = [self.n_pixels, *sizes[:-1]]
        ins[-1] += self.n_labels
        self.rbms = nn.ModuleList(BernoulliRBM(a, h) for a, h in zip(ins, sizes))
        for rbm, a in zip(self.rbms, ins):
            rbm.register_buffer("chains", (torch.rand(cfg.batch_size, a) < 0.5).float())
        self.opts = [torch.optim.SGD(r.parameters(), lr=cfg.lr, momentum=cfg.momentum) for r in self.rbms]

    def modules(self) -> dict[str, nn.Module]:
        return {"rbms": self.rbms}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {f"layer{i}": opt for i, opt in enumerate(self.opts)}

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        data = self._training_data(data)
        if self.n_labels and data.labels is None:
            raise UsageError(f"digits/dbn was built with {self.n_labels} label units but {data.name} has no labels; "
                             f"train with --no-labelled or on labelled data")
        labels = torch.zeros(len(data), dtype=torch.int64) if data.labels is None else torch.from_numpy(
            np.array(data.labels))
        return self.flat(data), labels

    def _layer_and_progress(self) -> tuple[int, float]:
        """Which layer this epoch trains, and how far through that layer's epochs it is."""
        n_layers, epochs, done = len(self.rbms), max(self.config.epochs, 1), len(self.history)
        position = min(done * n_layers / epochs, n_layers - 1e-9)
        return int(position), position - int(position)

    def _up(self, v: torch.Tensor, labels: torch.Tensor, layer: int) -> torch.Tensor:
        """Sampled input of RBM ``layer`` for data ``v`` (B, V)."""
        x = v
        for rbm in self.rbms[:layer]:
            x = rbm.bernoulli(rbm.p_h(x))
        if self.n_labels and layer == len(self.rbms) - 1:
            x = torch.cat([x, F.one_hot(labels, self.n_labels).float()], 1)
        return x

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        cfg = self.config
        v, labels = batch
        layer, progress = self._layer_and_progress()
        rbm, opt = self.rbms[layer], self.opts[layer]
        for group in opt.param_groups:
            group["lr"] = cfg.lr * (1.0 - progress)
        with torch.no_grad():
            x = self._up(v, labels, layer)
        loss = rbm.cd_loss(x, k=cfg.k, chains=rbm.chains if cfg.persistent else None, weight_decay=cfg.weight_decay)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            recon = rbm.p_v(rbm.p_h(x)).clamp(1e-6, 1 - 1e-6)
            err = F.binary_cross_entropy(recon, x, reduction="sum") / len(x)
        return {"layer": float(layer), "recon_nats": float(err)}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, labels: Any = None, steps: int | None = None,
               **kwargs: Any) -> np.ndarray:
        """Gibbs sampling in the top RBM (label units clamped), then a top-down pass.

        Args:
            labels: (n,) digits to draw; default ``arange(n) % n_classes`` (ignored without labels).

        Returns:
            (n, C, H, W) float32: ``p(v | h1)`` of the top-down pass.
        """
        self._require_built("sample")
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        top = self.rbms[-1]
        n_free = top.W.shape[0] - self.n_labels
        x = (torch.rand(n, n_free, generator=gen) < 0.5).float()
        clamp = None
        if self.n_labels:
            y = torch.arange(n) % self.n_labels if labels is None else torch.as_tensor(np.asarray(labels)).long()
            if y.shape != (n,) or y.min() < 0 or y.max() >= self.n_labels:
                raise ValueError(f"labels must be {n} integers in [0, {self.n_labels}), got shape {tuple(y.shape)}")
            clamp = F.one_hot(y, self.n_labels).float()
        pv = x
        for _ in range(self.config.sample_steps if steps is None else steps):
            state = x if clamp is None else torch.cat([x, clamp], 1)
            _, pv_full = top.gibbs_vhv(state, gen)
            pv = pv_full[:, :n_free]
            x = top.bernoulli(pv, gen)
        h = pv
        for i in range(len(self.rbms) - 2, -1, -1):
            h = self.rbms[i].p_v(self.rbms[i].bernoulli(h, gen) if i < len(self.rbms) - 2 else x)
        return self._images(h)
