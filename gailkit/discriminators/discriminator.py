"""The discriminator: a reward net over (s, a), (s, s'), s or (s, a, s').

Frames (``uint8`` ``(H, W, C)`` or ``(C, H, W)`` observations) pass through a small CNN
(:class:`~gailkit.nn.blocks.FrameEncoder`, the Nature-DQN encoder) whose features take the
state's place; its gradient penalty is on those features.

Sign convention: ``D = sigmoid(logit)`` is the probability that a sample came from the
*expert*. Every reward is increasing in ``D``, so more expert-like behaviour earns more:

* ``gail``:  ``-log(1 - D) = softplus(logit)``, always positive (a survival bonus: use it on
  fixed-horizon or absorbing-state tasks, which is what gailkit's envs are for);
* ``log_d``: ``log D = -softplus(-logit)``, always negative (a step penalty);
* ``logit``: ``log D - log(1 - D)``, both signs; with ``airl=True`` it is AIRL's
  ``f(s, a, s') - log pi(a|s)``, the entropy-regularised reward of Fu et al. (2018);
* ``shaped`` (AIRL only; AIRL's default without an absorbing state, ``gail`` with one, where an
  unbounded-below reward would let states only the policy visits sink below the absorbing
  state): ``f(s, a, s')`` without the ``-log pi`` term, as the
  ``imitation`` library trains its policy (the entropy bonus is then PPO's ``ent_coef``). With
  ``logit`` the policy earns ``-log pi`` at temperature 1: on CartPole that keeps it uniform, on
  Pendulum (clipped Gaussian actions) it is unbounded and the policy inflates its std instead.

With ``absorbing`` (AbsorbingStateWrapper observations), ``h`` is 0 in the absorbing state: it
is terminal for the shaping, so ``gamma * h(s') - h(s)`` telescopes within each episode.

``forward`` keeps gradients for the training loss; ``reward`` is no-grad, eval mode and
batched over a whole rollout.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.data.spaces import space_from_json, space_to_json
from gailkit.discriminators.config import DiscriminatorConfig
from gailkit.errors import UnsupportedError, UsageError
from gailkit.nn.adversarial import bce_logits_loss, bernoulli_entropy, gaussian_kl, r1_penalty, wgan_gradient_penalty
from gailkit.nn.blocks import FrameEncoder, RunningNorm, mlp
from gailkit.nn.checkpoint import (
    load_optimizer_tensors,
    load_tensors,
    load_weights,
    optimizer_steps,
    optimizer_tensors,
    read_json,
    save_tensors,
    write_json,
)
from gailkit.versions import versions

__all__ = ["DiscBatch", "Discriminator"]


class DiscBatch(NamedTuple):
    """A batch of ``B`` transitions as tensors. ``log_probs`` (policy's ``log pi(a|s)``) is
    needed only by AIRL."""

    obs: torch.Tensor  # (B, *obs_shape)
    acts: torch.Tensor  # (B,) or (B, 1) discrete, (B, A) continuous
    next_obs: torch.Tensor  # (B, *obs_shape)
    dones: torch.Tensor  # (B,) 1.0 where next_obs is terminal
    log_probs: torch.Tensor | None = None  # (B,)

    @classmethod
    def from_numpy(cls, obs, acts, next_obs, dones, log_probs=None) -> DiscBatch:
        # a copy: demonstrations are read-only arrays, which torch must not share
        t = lambda x: torch.tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        return cls(t(obs), t(acts), t(next_obs), t(dones).reshape(-1),
                   None if log_probs is None else t(log_probs).reshape(-1))


class Discriminator(nn.Module):
    """GAIL / AIRL / VAIL discriminator with its own optimiser, statistics and checkpoints."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        if not isinstance(observation_space, gym.spaces.Box):
            raise UnsupportedError(f"Discriminator needs a Box observation space, got {observation_space}")
        if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise UnsupportedError(f"Discriminator supports Box and Discrete actions, got {action_space}")
        if config.reward_kind == "shaped" and not config.airl:
            raise UsageError("reward='shaped' is AIRL's f(s, a, s'); it needs airl=True (or --algo airl)")
        if config.airl and config.inputs not in ("s", "sa"):
            raise UsageError(f"AIRL's g takes inputs 's' or 'sa', not {config.inputs!r}")
        self.observation_space, self.action_space = observation_space, action_space
        with torch.random.fork_rng(devices=[]):  # same seed, same weights; global RNG untouched
            torch.manual_seed(config.seed)
            self._build(observation_space, action_space, config)
        self.register_buffer("beta", torch.tensor(0.0))  # VAIL's Lagrange multiplier
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr)
        self.noise = torch.Generator().manual_seed(config.seed)
        self.last_stats: dict[str, float] = {}

    def _build(self, observation_space: gym.Space, action_space: gym.Space, config: DiscriminatorConfig) -> None:
        shape = tuple(observation_space.shape)
        self.image = observation_space.dtype == np.uint8 and len(shape) == 3
        if self.image:  # frames: a CNN's features stand in for the observation
            channels_last = shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4)
            self.frame_shape = (shape[2], shape[0], shape[1]) if channels_last else shape  # (C, H, W)
            self.cnn = FrameEncoder(self.frame_shape[0], self.frame_shape[1:])
            self.obs_dim = self.cnn.features
        else:
            self.obs_dim = int(np.prod(shape))
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.act_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.obs_norm = RunningNorm(self.obs_dim)
        self.act_norm = RunningNorm(self.act_dim)
        hidden, sn = config.hidden_sizes, config.spectral_norm
        uses_a = "a" in config.inputs
        if config.airl:
            self.g = mlp(self.obs_dim + (self.act_dim if uses_a else 0), hidden, 1, spectral_norm=sn)
            self.h = mlp(self.obs_dim, hidden, 1, spectral_norm=sn)
        else:
            in_dim = self.obs_dim * (2 if "ss" in config.inputs or config.inputs == "sas" else 1)
            in_dim += self.act_dim if uses_a else 0
            out = 2 * config.vail_latent if config.vail else 1
            self.net = mlp(in_dim, hidden, out, spectral_norm=sn)
            if config.vail:
                self.head = nn.Linear(config.vail_latent, 1)

    # ----- inputs ---------------------------------------------------------------------------
    def _acts(self, acts: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return F.one_hot(acts.reshape(-1).long(), self.act_dim).float()
        acts = acts.reshape(len(acts), -1).float()
        return self.act_norm(acts) if self.config.normalize_inputs else acts

    def _obs(self, obs: torch.Tensor) -> torch.Tensor:
        if self.image:  # uint8 frames, (B, H, W, C) (demonstrations) or (B, C, H, W) (SB3's rollouts)
            x = obs.float() / 255.0
            return self.cnn(x if tuple(x.shape[1:]) == self.frame_shape else x.permute(0, 3, 1, 2))
        obs = obs.reshape(len(obs), -1).float()
        return self.obs_norm(obs) if self.config.normalize_inputs else obs

    def encode(self, batch: DiscBatch) -> torch.Tensor:
        """The network input ``(B, D)``: normalised ``[s, a, s']`` and the masks of ``h(s')`` and ``h(s)``
        (AIRL), or the chosen parts."""
        s, a, s2 = self._obs(batch.obs), self._acts(batch.acts), self._obs(batch.next_obs)
        if self.config.airl:  # [s, a, s', mask of h(s'), mask of h(s)]
            done = batch.dones.reshape(-1).float()
            keep = torch.ones_like(done)
            if self.config.absorbing:  # h(absorbing) := 0: the absorbing state is terminal for the shaping
                done = torch.maximum(done, batch.next_obs.reshape(len(done), -1)[:, -1].float())
                keep = 1 - batch.obs.reshape(len(done), -1)[:, -1].float()
            return torch.cat([s, a, s2, done.reshape(-1, 1), keep.reshape(-1, 1)], dim=1)
        parts = {"s": [s], "sa": [s, a], "ss": [s, s2], "sas": [s, a, s2]}[self.config.inputs]
        return torch.cat(parts, dim=1)

    def score(self, x: torch.Tensor, log_probs: torch.Tensor | None = None, *, sample: bool = False):
        """Logits ``(B,)`` from encoded inputs, and the VAIL KL ``(B,)`` (zeros without VAIL)."""
        c = self.config
        if c.airl:
            o, a = self.obs_dim, self.act_dim
            s, act, s2 = x[:, :o], x[:, o : o + a], x[:, o + a : 2 * o + a]
            done, keep = x[:, -2].detach(), x[:, -1].detach()  # masks: no gradient penalty on them
            g_in = torch.cat([s, act], 1) if c.inputs == "sa" else s
            f = self.g(g_in).squeeze(-1) + c.gamma * (1 - done) * self.h(s2).squeeze(-1) - keep * self.h(s).squeeze(-1)
            if log_probs is None:
                raise ValueError("AIRL needs the policy's log pi(a|s) for every sample (log_probs)")
            return f - log_probs, torch.zeros_like(f)
        out = self.net(x)
        if not c.vail:
            return out.squeeze(-1), torch.zeros(len(x))
        mean, log_std = out.chunk(2, dim=-1)
        log_std = log_std.clamp(-10, 2)
        z = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=self.noise) if sample else mean
        return self.head(z).squeeze(-1), gaussian_kl(mean, log_std)

    def forward(self, batch: DiscBatch) -> torch.Tensor:
        """Logits ``(B,)`` with gradients (VAIL samples its latent in training mode)."""
        return self.score(self.encode(batch), batch.log_probs, sample=self.training)[0]

    # ----- training ---------------------------------------------------------------------------
    def loss(self, expert: DiscBatch, policy: DiscBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Discriminator loss (expert labelled 1) and its statistics; batches of equal size."""
        c = self.config
        x_e, x_p = self.encode(expert), self.encode(policy)
        logit_e, kl_e = self.score(x_e, expert.log_probs, sample=True)
        logit_p, kl_p = self.score(x_p, policy.log_probs, sample=True)
        loss = bce_logits_loss(logit_e, logit_p, smoothing=c.label_smoothing)
        entropy = bernoulli_entropy(torch.cat([logit_e, logit_p])).mean()
        loss = loss - c.entropy_weight * entropy
        stats: dict[str, float] = {}
        if c.gradient_penalty != "none":
            def f(x: torch.Tensor, lp: torch.Tensor | None) -> torch.Tensor:
                return self.score(x, lp)[0]
            if c.gradient_penalty == "wgan-gp":
                n = min(len(x_e), len(x_p))
                lp = None if expert.log_probs is None else torch.zeros(n)
                gp = wgan_gradient_penalty(lambda x: f(x, lp), x_e[:n], x_p[:n], generator=self.noise)
                loss = loss + c.gp_weight * gp
            else:
                lp = None if expert.log_probs is None else expert.log_probs
                gp = r1_penalty(lambda x: f(x, lp), x_e)
                loss = loss + 0.5 * c.gp_weight * gp
            stats["gradient_penalty"] = gp.item()
        if c.vail:
            kl = torch.cat([kl_e, kl_p]).mean()
            loss = loss + self.beta * (kl - c.vail_target_kl)
            stats["kl"], stats["beta"] = kl.item(), self.beta.item()
        with torch.no_grad():
            acc_e = (logit_e > 0).float().mean().item()
            acc_p = (logit_p < 0).float().mean().item()
        stats.update(loss=loss.item(), expert_accuracy=acc_e, policy_accuracy=acc_p,
                     accuracy=0.5 * (acc_e + acc_p), entropy=entropy.item())
        return loss, stats

    def train_step(self, expert: DiscBatch, policy: DiscBatch) -> dict[str, float]:
        """One optimiser step; updates the input statistics with both batches first."""
        if self.config.normalize_inputs:
            for b in (expert, policy):
                if not self.image:  # frames are scaled to [0, 1] instead
                    self.obs_norm.update(b.obs.reshape(len(b.obs), -1))
                if not self.discrete:
                    self.act_norm.update(b.acts.reshape(len(b.acts), -1))
        self.train()
        loss, stats = self.loss(expert, policy)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.config.vail:  # dual ascent on beta keeps the bottleneck at I_c
            with torch.no_grad():
                self.beta.add_(self.config.vail_beta_lr * (stats["kl"] - self.config.vail_target_kl)).clamp_(min=0)
        self.last_stats = stats
        return stats

    # ----- rewards ------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, batch: DiscBatch, *, chunk: int = 65_536) -> torch.Tensor:
        """No-grad, eval-mode logits ``(B,)`` in chunks (VAIL uses the latent mean)."""
        was_training = self.training
        self.eval()
        try:
            out = [self.score(self.encode(DiscBatch(*(None if t is None else t[i : i + chunk] for t in batch))),
                              None if batch.log_probs is None else batch.log_probs[i : i + chunk])[0]
                   for i in range(0, len(batch.obs), chunk)]
        finally:
            self.train(was_training)
        return torch.cat(out)

    def reward(self, obs, acts, next_obs, dones, log_probs=None) -> np.ndarray:
        """Rewards ``(B,)`` float32 for a whole rollout (see the module docstring for signs).

        Args:
            obs, next_obs: ``(B, *obs_shape)``; acts: ``(B,)`` or ``(B, A)``; dones: ``(B,)``;
            log_probs: ``(B,)`` policy log-probabilities (AIRL only).
        """
        logit = self.logits(DiscBatch.from_numpy(obs, acts, next_obs, dones, log_probs))
        kind = self.config.reward_kind
        if kind == "gail":
            r = F.softplus(logit)
        elif kind == "log_d":
            r = -F.softplus(-logit)
        elif kind == "shaped":  # AIRL's f(s, a, s') alone: the entropy term is left to the policy
            r = logit + torch.as_tensor(np.asarray(log_probs), dtype=torch.float32).reshape(-1)
        else:
            r = logit
        return r.numpy().astype(np.float32)

    @torch.no_grad()
    def transfer_reward(self, obs, acts, next_obs, dones) -> np.ndarray:
        """The learned reward on its own, for a new policy to train on: ``(B,)`` float32.

        AIRL: ``g(s)`` (or ``g(s, a)``), the part of ``f`` that is neither shaping nor the
        policy's ``log pi`` (with a state-only ``g`` it is the reward AIRL recovers up to a
        constant, Fu et al., 2018). Otherwise the reward of ``config.reward`` (which needs no
        ``log pi``).
        """
        if not self.config.airl:
            return self.reward(obs, acts, next_obs, dones)
        was_training = self.training
        self.eval()
        try:
            batch = DiscBatch.from_numpy(obs, acts, next_obs, dones)
            s = self._obs(batch.obs)
            g_in = torch.cat([s, self._acts(batch.acts)], 1) if self.config.inputs == "sa" else s
            return self.g(g_in).squeeze(-1).numpy().astype(np.float32)
        finally:
            self.train(was_training)

    # ----- checkpoints ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``discriminator.json``, ``discriminator.safetensors`` and the optimiser state."""
        directory = Path(directory)
        save_tensors(directory / "discriminator.safetensors", self.state_dict())
        save_tensors(directory / "discriminator_optim.safetensors",
                     {**optimizer_tensors(self.optimizer), "noise_generator": self.noise.get_state()})
        write_json(directory / "discriminator.json", {
            "config": dataclasses.asdict(self.config),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "optimizer_steps": optimizer_steps(self.optimizer),
            "versions": versions(),
        })
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Discriminator:
        """Rebuild from :meth:`save`'s files; raises CheckpointError if missing or mismatched."""
        directory = Path(directory)
        meta = read_json(directory / "discriminator.json", what="discriminator")
        disc = cls(space_from_json(meta["observation_space"]), space_from_json(meta["action_space"]),
                   DiscriminatorConfig(**meta["config"]))
        load_weights(disc, directory / "discriminator.safetensors", what="discriminator")
        optim_path = directory / "discriminator_optim.safetensors"
        if optim_path.exists():
            tensors = load_tensors(optim_path, what="discriminator")
            disc.noise.set_state(tensors.pop("noise_generator"))
            load_optimizer_tensors(disc.optimizer, tensors)
        return disc

