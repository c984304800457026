"""A compact CMA-ES (Hansen's (mu/mu_w, lambda) with rank-one and rank-mu updates).

Written here rather than taken from the ``cma`` package so that the whole optimiser state is
a handful of arrays: checkpoints are safetensors + JSON and resume exactly, with no pickle.
Minimises; ``ask`` -> ``tell`` as usual.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gailkit.nn.checkpoint import load_tensors, read_progress, write_progress

__all__ = ["CMAES"]

ARRAYS = ("mean", "C", "pc", "ps", "best_x")  # the state beside the scalars of cmaes.json


class CMAES:
    """CMA-ES on ``R^n`` from ``x0`` with step size ``sigma0``; ``popsize`` defaults to 4 + 3 ln n."""

    def __init__(self, x0: np.ndarray, sigma0: float, *, popsize: int | None = None, seed: int = 0):
        n = len(x0)
        self.n = n
        self.lam = popsize or 4 + int(3 * math.log(n))
        self.mu = self.lam // 2
        w = math.log(self.mu + 0.5) - np.log(np.arange(1, self.mu + 1))
        self.weights = w / w.sum()
        self.mueff = 1.0 / np.sum(self.weights**2)
        self.cc = (4 + self.mueff / n) / (n + 4 + 2 * self.mueff / n)
        self.cs = (self.mueff + 2) / (n + self.mueff + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + self.mueff)
        self.cmu = min(1 - self.c1, 2 * (self.mueff - 2 + 1 / self.mueff) / ((n + 2) ** 2 + self.mueff))
        self.damps = 1 + 2 * max(0.0, math.sqrt((self.mueff - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        self.mean = np.asarray(x0, dtype=np.float64).copy()
        self.sigma = float(sigma0)
        self.C = np.eye(n)
        self.pc, self.ps = np.zeros(n), np.zeros(n)
        self.generation = 0
        self.rng = np.random.default_rng(seed)
        self._pending: np.ndarray | None = None
        self.best_x, self.best_f = self.mean.copy(), math.inf

    def widened(self, n: int, index: np.ndarray, *, popsize: int | None = None, seed: int = 0) -> CMAES:
        """This search continued on ``R^n``, where coordinates ``index`` are this one's (in order) and
        the others are new. It keeps the mean (new coordinates at 0), the step size and, on the old
        coordinates, the learned covariance; the new ones start uncorrelated, with the old ones'
        average variance. Evolution paths and the generation count start afresh, as the strategy's
        constants (which depend on ``n``) do. World models: V+M+C's search continuing V only's,
        with the weights on ``h`` as the new coordinates, instead of restarting from a guessed step size.
        """
        index = np.asarray(index)
        if index.shape != (self.n,) or len(np.unique(index)) != self.n or index.min() < 0 or index.max() >= n:
            raise ValueError(f"index must place this search's {self.n} coordinates at distinct positions in "
                             f"[0, {n}), got shape {index.shape}")
        mean = np.zeros(n)
        mean[index] = self.mean
        es = CMAES(mean, self.sigma, popsize=popsize, seed=seed)
        es.C = np.eye(n) * np.mean(np.diag(self.C))
        es.C[np.ix_(index, index)] = self.C
        return es

    def _eigen(self) -> tuple[np.ndarray, np.ndarray]:
        self.C = np.triu(self.C) + np.triu(self.C, 1).T  # keep it exactly symmetric
        d2, B = np.linalg.eigh(self.C)
        return B, np.sqrt(np.maximum(d2, 1e-20))

    def ask(self) -> np.ndarray:
        """``(popsize, n)`` candidates."""
        B, D = self._eigen()
        z = self.rng.standard_normal((self.lam, self.n))
        self._pending = self.mean + self.sigma * (z * D) @ B.T
        return self._pending.copy()

    def tell(self, fitness: np.ndarray) -> None:
        """Update from the (to be minimised) fitness of the last ``ask``'s candidates."""
        if self._pending is None:
            raise RuntimeError("CMAES.tell() called without a preceding ask()")
        fitness = np.asarray(fitness, dtype=np.float64)
        if fitness.shape != (self.lam,) or not np.isfinite(fitness).all():
            raise ValueError(f"tell() needs {self.lam} finite fitness values, got {fitness}")
        order = np.argsort(fitness, kind="stable")
        if fitness[order[0]] < self.best_f:
            self.best_f, self.best_x = float(fitness[order[0]]), self._pending[order[0]].copy()
        B, D = self._eigen()
        x = self._pending[order[: self.mu]]
        old = self.mean
        self.mean = self.weights @ x
        y = (self.mean - old) / self.sigma
        c_inv_sqrt = B @ np.diag(1 / D) @ B.T
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * c_inv_sqrt @ y
        self.generation += 1
        hsig = (np.linalg.norm(self.ps) / math.sqrt(1 - (1 - self.cs) ** (2 * self.generation)) / self.chi_n
                < 1.4 + 2 / (self.n + 1))
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * y
        steps = (x - old) / self.sigma
        rank_mu = (self.weights[:, None] * steps).T @ steps
        self.C = ((1 - self.c1 - self.cmu) * self.C
                  + self.c1 * (np.outer(self.pc, self.pc) + (1 - hsig) * self.cc * (2 - self.cc) * self.C)
                  + self.cmu * rank_mu)
        self.sigma *= math.exp((self.cs / self.damps) * (np.linalg.norm(self.ps) / self.chi_n - 1))
        self._pending = None

    # ----- checkpoints: arrays in safetensors, scalars and the RNG in JSON ----------------------
    def save(self, directory: str | Path) -> Path:
        """The search's state in ``directory``: ``cmaes.json`` and the arrays' file it names, written so that a
        stop at any point leaves the last generation's pair or this one's whole."""
        directory = Path(directory)
        write_progress(directory, self.generation,
                       {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in ARRAYS},
                       {"n": self.n, "popsize": self.lam, "sigma": self.sigma, "generation": self.generation,
                        "best_f": self.best_f, "rng": self.rng.bit_generator.state}, name="cmaes.json", state="cmaes")
        (directory / "cmaes.safetensors").unlink(missing_ok=True)  # where searches saved before that kept them
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> CMAES:
        directory = Path(directory)
        meta = read_progress(directory, name="cmaes.json", what="CMA-ES")
        arrays = load_tensors(directory / meta.get("state", "cmaes.safetensors"), what="CMA-ES")
        es = cls(np.zeros(meta["n"]), meta["sigma"], popsize=meta["popsize"])
        for k, v in arrays.items():
            setattr(es, k, v.numpy().astype(np.float64))
        es.generation, es.best_f = meta["generation"], meta["best_f"]
        es.rng.bit_generator.state = meta["rng"]
        return es
