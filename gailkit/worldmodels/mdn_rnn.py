"""World Models' M: an LSTM over (z, a) predicting the next latent, the reward and the end.

Shapes: ``z (B, T, Z)``, ``a (B, T)`` int for discrete or ``(B, T, A)`` float; the model predicts,
for each step ``t``, ``z[t + 1]`` as a per-dimension Gaussian mixture, the reward ``r[t]`` and
the probability that the episode ended at ``t``. Without reward and done heads an environment
like CarRacing cannot be trained in the dream; these heads are part of M here.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from gailkit.nn.mdn import MDNHead, mixture_mean, mixture_nll, sample_mixture

__all__ = ["MDNRNNConfig", "MDNRNN", "MDNOutput", "next_latent"]


@dataclasses.dataclass
class MDNRNNConfig:
    """M's sizes and loss weights."""

    latent_dim: int = dataclasses.field(default=32, metadata={"help": "size of z (V's latent)"})
    action_dim: int = dataclasses.field(default=3, metadata={"help": "action size (n for discrete)"})
    discrete_actions: bool = dataclasses.field(default=False, metadata={"help": "one-hot encode actions"})
    hidden: int = dataclasses.field(default=256, metadata={"help": "LSTM units"})
    n_mixtures: int = dataclasses.field(default=5, metadata={"help": "Gaussians per latent dimension"})
    reward_weight: float = dataclasses.field(default=1.0, metadata={"help": "weight of the reward MSE"})
    done_weight: float = dataclasses.field(default=1.0, metadata={"help": "weight of the done BCE"})
    action_input: bool = dataclasses.field(default=True, metadata={
        "help": "feed the actions to the LSTM; off, M sees z alone (a memory that cannot hold the last action, "
                "for probes; its dreams ignore the controller)"})


class MDNOutput(NamedTuple):
    logit_pi: torch.Tensor  # (B, T, Z, K)
    mu: torch.Tensor  # (B, T, Z, K)
    log_sigma: torch.Tensor  # (B, T, Z, K)
    reward: torch.Tensor  # (B, T)
    done_logit: torch.Tensor  # (B, T)
    state: tuple[torch.Tensor, torch.Tensor]  # LSTM (h, c), each (1, B, hidden)


class MDNRNN(nn.Module):
    """M with mixture, reward and done heads; ``step`` advances thousands of dreams at once."""

    def __init__(self, config: MDNRNNConfig):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(config.latent_dim + config.action_dim, config.hidden, batch_first=True)
        self.mdn = MDNHead(config.hidden, config.latent_dim, config.n_mixtures)
        self.reward_head = nn.Linear(config.hidden, 1)
        self.done_head = nn.Linear(config.hidden, 1)

    def _actions(self, a: torch.Tensor) -> torch.Tensor:
        if not self.config.action_input:
            return torch.zeros(*a.shape[:2], self.config.action_dim)
        if self.config.discrete_actions:
            return F.one_hot(a.long(), self.config.action_dim).float()
        return a.float().reshape(*a.shape[:2], self.config.action_dim)

    def memory(self, z: torch.Tensor, a: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
        """The LSTM alone (no heads): ``z (B, T, Z)``, ``a (B, T[, A])`` -> ``h (B, T, hidden)``, state.
        ``h[:, t]`` is M's memory after seeing ``z[:, t]`` and ``a[:, t]``: what a controller sees next."""
        return self.lstm(torch.cat([z, self._actions(a)], dim=-1), state)

    def forward(self, z: torch.Tensor, a: torch.Tensor, state=None) -> MDNOutput:
        x = torch.cat([z, self._actions(a)], dim=-1)  # (B, T, Z + A)
        h, state = self.lstm(x, state)  # h: (B, T, hidden)
        logit_pi, mu, log_sigma = self.mdn(h)
        return MDNOutput(logit_pi, mu, log_sigma, self.reward_head(h).squeeze(-1),
                         self.done_head(h).squeeze(-1), state)

    def loss(self, z: torch.Tensor, a: torch.Tensor, rewards: torch.Tensor, dones: torch.Tensor,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Teacher-forced loss on sequences ``z (B, T + 1, Z)``, ``a``/``rewards``/``dones`` ``(B, T)``.

        ``mask (B, T)`` excludes padding after an episode's end.
        """
        out = self(z[:, :-1], a)
        nll = mixture_nll(z[:, 1:], out.logit_pi, out.mu, out.log_sigma) / self.config.latent_dim  # (B, T)
        rew = (out.reward - rewards.float()) ** 2
        done = F.binary_cross_entropy_with_logits(out.done_logit, dones.float(), reduction="none")
        m = torch.ones_like(nll) if mask is None else mask.float()
        denom = m.sum().clamp(min=1.0)
        parts = {name: (v * m).sum() / denom for name, v in (("nll", nll), ("reward", rew), ("done", done))}
        total = parts["nll"] + self.config.reward_weight * parts["reward"] + self.config.done_weight * parts["done"]
        return total, {k: v.item() for k, v in parts.items()}

    @torch.no_grad()
    def step(self, z: torch.Tensor, a: torch.Tensor, state=None, *, tau: float = 1.0,
             generator: torch.Generator | None = None, latent_noise: float = 1.0):
        """One dream step for ``B`` dreams: ``z (B, Z)``, ``a (B,)`` or ``(B, A)``.

        ``latent_noise`` scales the draw's departure from the mixture's mean, as the real env scales
        V's: 1 draws ``next_z`` (the paper's dream), 0 takes the mean (a dream for a controller fed
        V's posterior mean), between the two a point on the line from the mean to the draw.

        Returns:
            ``(next_z (B, Z), reward (B,), done_prob (B,), state, h (B, hidden))``; ``h`` is what
            the controller sees beside ``z``.
        """
        out = self(z.unsqueeze(1), a.unsqueeze(1), state)
        next_z = next_latent(out.logit_pi[:, 0], out.mu[:, 0], out.log_sigma[:, 0], tau=tau, generator=generator,
                             latent_noise=latent_noise)
        return next_z, out.reward[:, 0], torch.sigmoid(out.done_logit[:, 0]), out.state, out.state[0][0]


def next_latent(logit_pi: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, *, tau: float = 1.0,
                generator: torch.Generator | None = None, latent_noise: float = 1.0) -> torch.Tensor:
    """The dream's next latent ``(B, Z)`` from M's mixture ``(B, Z, K)`` each: a draw at temperature
    ``tau``, ``latent_noise`` scaling its departure from the mixture's mean (:meth:`MDNRNN.step`)."""
    if latent_noise == 0:
        return mixture_mean(logit_pi, mu, tau=tau)
    next_z = sample_mixture(logit_pi, mu, log_sigma, tau=tau, generator=generator)
    if latent_noise != 1:
        mean = mixture_mean(logit_pi, mu, tau=tau)
        next_z = mean + latent_noise * (next_z - mean)
    return next_z
