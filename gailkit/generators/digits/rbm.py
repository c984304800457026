"""Bernoulli restricted Boltzmann machine trained by contrastive divergence (CD-k) or
persistent CD (Tieleman, 2008), on images binarised at 0.5.

The gradient of the mean negative log-likelihood is ``E_data[dF/dtheta] - E_model[dF/dtheta]``
with ``F`` the free energy, so the surrogate loss ``mean F(v_data) - mean F(v_model)`` (model
samples held fixed) hands exactly the CD update to any torch optimiser.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.configs import doc
from gailkit.data.images import ImageData
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.digits.common import DigitModel
from gailkit.generators.metrics.likelihood import ais_log_partition, exact_log_partition, rbm_free_energy, rbm_loglik

__all__ = ["RBM", "BernoulliRBM", "RBMConfig"]


class BernoulliRBM(nn.Module):
    """Weights ``W`` (V, H), visible bias ``b`` (V,), hidden bias ``c`` (H,)."""

    def __init__(self, n_visible: int, n_hidden: int, *, init_std: float = 0.01):
        super().__init__()
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden) * init_std)
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = -b.v - sum_j softplus(c_j + (v W)_j)``; v (N, V) -> (N,)."""
        return rbm_free_energy(v, self.W, self.b, self.c)

    def p_h(self, v: torch.Tensor) -> torch.Tensor:
        """``p(h_j = 1 | v)``, (N, V) -> (N, H)."""
        return torch.sigmoid(self.c + v @ self.W)

    def p_v(self, h: torch.Tensor) -> torch.Tensor:
        """``p(v_i = 1 | h)``, (N, H) -> (N, V)."""
        return torch.sigmoid(self.b + h @ self.W.T)

    @staticmethod
    def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``1[u < p]`` with ``u ~ U(0, 1)`` drawn from ``generator`` (global RNG if None)."""
        return (torch.rand(p.shape, generator=generator, dtype=p.dtype) < p).to(p.dtype)

    def gibbs_vhv(self, v: torch.Tensor, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Gibbs sweep ``v -> h -> v'``: draws the hidden uniforms (N, H), then the visible
        ones (N, V). Returns (binary v', p(v' | h))."""
        h = self.bernoulli(self.p_h(v), generator)
        pv = self.p_v(h)
        return self.bernoulli(pv, generator), pv

    def cd_loss(self, v_data: torch.Tensor, *, k: int = 1, chains: torch.Tensor | None = None,
                weight_decay: float = 0.0) -> torch.Tensor:
        """Surrogate loss whose gradient is the CD-k (or, with ``chains``, persistent CD) update.

        Args:
            v_data: (B, V) a minibatch of binary data.
            chains: (>= B, V) persistent negative-phase states, advanced ``k`` sweeps in place;
                None starts the chains at the data (CD-k).
        """
        with torch.no_grad():
            v = chains[: len(v_data)] if chains is not None else v_data
            for _ in range(k):
                v, _ = self.gibbs_vhv(v)
            if chains is not None:
                chains[: len(v_data)] = v
        loss = self.free_energy(v_data).mean() - self.free_energy(v).mean()
        return loss + 0.5 * weight_decay * self.W.pow(2).sum()


@dataclasses.dataclass
class RBMConfig(GeneratorConfig):
    """Options of :class:`RBM`."""

    epochs: int = dataclasses.field(default=200, metadata=doc("passes over the training data"))
    batch_size: int = dataclasses.field(default=32, metadata=doc("examples per gradient step"))
    lr: float = dataclasses.field(default=0.01, metadata=doc("SGD learning rate (decays linearly to 0)"))
    hidden: int = dataclasses.field(default=16, metadata=doc("hidden units (<= exact_max_hidden: exact likelihood)"))
    k: int = dataclasses.field(default=1, metadata=doc("Gibbs sweeps per negative phase (CD-k)"))
    persistent: bool = dataclasses.field(default=True, metadata=doc("persistent CD (chains kept across steps)"))
    momentum: float = dataclasses.field(default=0.9, metadata=doc("SGD momentum"))
    weight_decay: float = dataclasses.field(default=1e-4, metadata=doc("L2 penalty on the weights"))
    sample_steps: int = dataclasses.field(default=1000, metadata=doc("Gibbs sweeps when sampling"))
    exact_max_hidden: int = dataclasses.field(default=20, metadata=doc("largest hidden layer for exact log Z"))
    ais_chains: int = dataclasses.field(default=100, metadata=doc("AIS chains for larger RBMs"))
    ais_betas: int = dataclasses.field(default=10000, metadata=doc("AIS temperatures"))
    loglik_every: int = dataclasses.field(default=10, metadata=doc(
        "epochs between exact training log-likelihoods in the history (0: never; exact RBMs only)"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "hidden": "[1, inf)", "k": "[1, inf)",
                                        "momentum": "[0, 1)", "weight_decay": "[0, inf)", "sample_steps": "[1, inf)",
                                        "exact_max_hidden": "[0, inf)", "ais_chains": "[1, inf)",
                                        "ais_betas": "[2, inf)", "loglik_every": "[0, inf)"}


@register("digits", "rbm")
class RBM(DigitModel, TorchGenerator):
    """Bernoulli RBM on binarised pixels: CD-k or persistent CD, Gibbs sampling, exact or AIS likelihood."""

    Config = RBMConfig
    binary = True

    def _build(self) -> None:
        cfg = self.config
        self.rbm = BernoulliRBM(self.n_pixels, cfg.hidden)
        # persistent chains live in a buffer so checkpoints (and exact resume) carry them
        self.rbm.register_buffer("chains", (torch.rand(cfg.batch_size, self.n_pixels) < 0.5).float())
        # the training data's pixel log-odds: AIS's base distribution, kept for after load()
        self.rbm.register_buffer("data_logits", torch.zeros(self.n_pixels))
        self.opt = torch.optim.SGD(self.rbm.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        self._train: torch.Tensor | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"rbm": self.rbm}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        first = not self.built
        self._train = self.flat(self._training_data(data))
        if first:
            with torch.no_grad():  # visible biases start at the data's log-odds (Hinton's guide, 8.1)
                mean = self._train.mean(0).clamp(1e-3, 1 - 1e-3)
                self.rbm.data_logits.copy_(torch.log(mean / (1 - mean)))
                self.rbm.b.copy_(self.rbm.data_logits)
        return (self._train,)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        cfg = self.config
        (v_data,) = batch
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * (1.0 - len(self.history) / max(cfg.epochs, 1))
        loss = self.rbm.cd_loss(v_data, k=cfg.k, chains=self.rbm.chains if cfg.persistent else None,
                                weight_decay=cfg.weight_decay)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            recon = self.rbm.p_v(self.rbm.p_h(v_data))
            err = F.binary_cross_entropy(recon, v_data, reduction="sum") / len(v_data)
        return {"recon_nats": float(err)}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        due = cfg.loglik_every and ((epoch + 1) % cfg.loglik_every == 0 or epoch == 0 or epoch + 1 == cfg.epochs)
        if due and cfg.hidden <= cfg.exact_max_hidden and self._train is not None:
            return {"train_loglik": float(self.loglik(self._train, log_z=self.log_partition()[0]).mean())}
        return {}

    # -- likelihood ----------------------------------------------------------------------------
    def log_partition(self, *, seed: int = 0) -> tuple[float, bool]:
        """(log Z, exact?): exact enumeration up to ``exact_max_hidden`` hidden units, else AIS."""
        self._require_built("log_partition")
        rbm, cfg = self.rbm, self.config
        if cfg.hidden <= cfg.exact_max_hidden:
            return exact_log_partition(rbm.W, rbm.b, rbm.c, max_hidden=cfg.exact_max_hidden), True
        log_z, _ = ais_log_partition(rbm.W, rbm.b, rbm.c, base_bias=rbm.data_logits, n_chains=cfg.ais_chains,
                                     n_betas=cfg.ais_betas, seed=seed)
        return log_z, False

    def loglik(self, images: Any, *, log_z: float | None = None) -> torch.Tensor:
        """``log p(v)`` (nats) per binarised image; (N,) float64."""
        v = images if isinstance(images, torch.Tensor) else self.flat(images)
        log_z = self.log_partition()[0] if log_z is None else log_z
        return rbm_loglik(v, self.rbm.W, self.rbm.b, self.rbm.c, log_z)

    def likelihood_metrics(self, test: ImageData) -> dict[str, float]:
        log_z, exact = self.log_partition()
        value = float(self.loglik(test, log_z=log_z).mean())
        return {"loglik_nats" if exact else "loglik_nats_ais": value}

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, steps: int | None = None, mean: bool = True,
               **kwargs: Any) -> np.ndarray:
        """Gibbs chains from uniform noise; ``steps`` sweeps (default ``sample_steps``).

        Returns:
            (n, C, H, W) float32: ``p(v | h)`` of the last sweep if ``mean`` (the usual way to show an
            RBM's samples), else the binary state.
        """
        self._require_built("sample")
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        v = (torch.rand(n, self.n_pixels, generator=gen) < 0.5).float()
        pv = v
        for _ in range(self.config.sample_steps if steps is None else steps):
            v, pv = self.rbm.gibbs_vhv(v, gen)
        return self._images(pv if mean else v)
