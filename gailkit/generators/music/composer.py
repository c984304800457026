"""RL fine-tuning of a chorale language model in ``gailkit/ChoraleComposer-v0`` (issue 6).

A causal LM over chorale tokens is the policy: its next-token distribution, masked to the valid
tokens of :class:`~gailkit.envs.composer.ComposerState`, is the action distribution, and a small
value MLP reads its last hidden state (detached, so value regression cannot bend the LM). PPO
(clipped ratio, GAE, entropy bonus) maximises the env's reward minus ``kl_coef * (log pi -
log pi_ref)`` per token, a KL penalty to the frozen supervised model as in RLHF (Ziegler et al.,
2019) that keeps the tuned model sounding like its teacher. Between PPO updates the critic
(:class:`ChoraleDiscriminator`) is trained on Bach excerpts against the pieces just written:
the GAIL loop, applied to composition as in SeqGAN (Yu et al., 2017).

Rollouts write ``B`` pieces in lockstep through the same :class:`ComposerState` that the
registered env wraps, so the env and the fine-tuning play exactly the same game.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.buffers.kernels import gae
from gailkit.configs import doc
from gailkit.data.chorales import BOS, VOCAB_SIZE, Chorale
from gailkit.envs.composer import ComposerState
from gailkit.errors import UsageError
from gailkit.generators.music.composer_disc import ChoraleDiscriminator, DiscConfig, bach_excerpts
from gailkit.generators.music.theory import TheoryRules, TheoryWeights
from gailkit.nn.blocks import mlp
from gailkit.nn.checkpoint import (
    CheckpointError,
    load_optimizer_tensors,
    load_tensors,
    optimizer_tensors,
    read_json,
    save_tensors,
    write_json,
)

__all__ = ["ComposerConfig", "ComposerTrainer", "Rollout", "generate", "pretrain_lm", "sample_pieces"]

FORMAT = "gailkit.chorale_composer"


@dataclasses.dataclass
class ComposerConfig:
    """PPO, KL, critic and reward options of the fine-tuning."""

    n_bars: int = dataclasses.field(default=2, metadata=doc("bars per piece (64 tokens each)"))
    rollout_pieces: int = dataclasses.field(default=64, metadata=doc("pieces written per PPO iteration"))
    ppo_epochs: int = dataclasses.field(default=2, metadata=doc("passes over each rollout"))
    minibatch: int = dataclasses.field(default=16, metadata=doc("pieces per gradient step"))
    lr: float = dataclasses.field(default=1e-4, metadata=doc("Adam learning rate of the policy LM"))
    value_lr: float = dataclasses.field(default=1e-3, metadata=doc("Adam learning rate of the value MLP"))
    clip: float = dataclasses.field(default=0.2, metadata=doc("PPO ratio clip"))
    gamma: float = dataclasses.field(default=1.0, metadata=doc("discount per token"))
    gae_lambda: float = dataclasses.field(default=1.0, metadata=doc(
        "GAE lambda (1: Monte-Carlo; the critic pays at the end)"))
    ent_coef: float = dataclasses.field(default=0.0, metadata=doc("entropy bonus weight"))
    kl_coef: float = dataclasses.field(default=0.2, metadata=doc("per-token KL penalty to the supervised model"))
    max_grad_norm: float = dataclasses.field(default=1.0, metadata=doc("gradient clipping norm"))
    disc_weight: float = dataclasses.field(default=1.0, metadata=doc("weight of the critic's log D (0: theory only)"))
    disc_steps: int = dataclasses.field(default=1, metadata=doc(
        "critic updates per iteration (more: it outruns the policy)"))
    disc_batch: int = dataclasses.field(default=64, metadata=doc("excerpts per critic update, each side"))
    key: str | None = dataclasses.field(default=None, metadata=doc("key of the in-scale term (None: estimated)"))
    invalid_penalty: float = dataclasses.field(default=1.0, metadata=doc("reward of an invalid token"))
    in_scale: float = dataclasses.field(default=1.0, metadata=doc("theory weight: share of onsets in scale per bar"))
    parallel: float = dataclasses.field(default=0.5, metadata=doc("theory penalty per parallel fifth/octave"))
    crossing: float = dataclasses.field(default=0.05, metadata=doc("theory penalty per crossed voice-step"))
    out_of_range: float = dataclasses.field(default=0.02, metadata=doc("theory penalty per voice-step out of range"))
    rest: float = dataclasses.field(default=0.02, metadata=doc("theory penalty per resting voice-step"))
    seed: int = dataclasses.field(default=0, metadata=doc("seeds sampling, minibatches and critic batches"))

    def __post_init__(self) -> None:
        if min(self.rollout_pieces, self.ppo_epochs, self.minibatch) < 1:
            raise UsageError("rollout_pieces, ppo_epochs and minibatch must be >= 1")
        if not 0 < self.clip < 1 or not 0 <= self.gae_lambda <= 1 or not 0 < self.gamma <= 1:
            raise UsageError(f"need 0 < clip < 1, 0 <= gae_lambda <= 1, 0 < gamma <= 1; got {self.clip}, "
                             f"{self.gae_lambda}, {self.gamma}")
        if self.kl_coef < 0 or self.ent_coef < 0 or self.disc_weight < 0:
            raise UsageError("kl_coef, ent_coef and disc_weight must be >= 0")

    def weights(self) -> TheoryWeights:
        return TheoryWeights(in_scale=self.in_scale, parallel=self.parallel, crossing=self.crossing,
                             out_of_range=self.out_of_range, rest=self.rest)


class Rollout(NamedTuple):
    """``B`` pieces of ``L`` tokens written by the policy (arrays on the CPU)."""

    tokens: torch.Tensor  # (B, L) int64 tokens written
    masks: torch.Tensor  # (B, L, V) bool, valid tokens at each position
    env_rewards: np.ndarray  # (B, L) float64, the env's reward (theory + invalid + critic at the end)
    voices: np.ndarray  # (B, 4, T) int16
    disc_scores: np.ndarray  # (B,) the critic's log D (zeros when it is not used)


def _inputs(tokens: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` tokens -> ``(B, L)`` LM inputs ``[BOS, t_0 .. t_{L-2}]`` (position k predicts t_k)."""
    return torch.cat([torch.full_like(tokens[:, :1], BOS), tokens[:, :-1]], dim=1)


def _masked_log_probs(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float().masked_fill(~masks, -1e9), dim=-1)


@torch.no_grad()
def generate(lm: nn.Module, state: ComposerState, *, generator: torch.Generator, temperature: float = 1.0
             ) -> Rollout:
    """Write ``state.batch`` pieces with ``lm``, sampling each token from its masked distribution.

    The env's rewards are collected on the way (the critic's share is added by the caller).
    """
    if temperature <= 0:
        raise UsageError(f"temperature must be > 0, got {temperature}")
    lm.eval()
    state.reset()
    b, length = state.batch, state.length
    masks = torch.zeros((b, length, VOCAB_SIZE), dtype=torch.bool)
    rewards = np.zeros((b, length))
    # transformers 5 renamed past_key_values to cache; accept both
    cache_kw = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
    inputs, cache = torch.full((b, 1), BOS, dtype=torch.long), None
    for k in range(length):
        out = lm(input_ids=inputs, use_cache=True, **{cache_kw: cache})
        cache = getattr(out, cache_kw)
        masks[:, k] = torch.from_numpy(state.action_mask())
        probs = torch.exp(_masked_log_probs(out.logits[:, -1] / temperature, masks[:, k]))
        action = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        rewards[:, k], _ = state.step(action[:, 0].numpy())
        inputs = action
    return Rollout(torch.from_numpy(state.tokens.copy()), masks, rewards, state.voices(), np.zeros(b))


def sample_pieces(lm: nn.Module, n: int, *, n_bars: int = 2, seed: int = 0, batch: int = 64,
                  temperature: float = 1.0) -> np.ndarray:
    """``n`` pieces ``(n, 4, 16 n_bars)`` int16 from ``lm``, masked to valid tokens (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch):
        state = ComposerState(min(batch, n - start), n_bars=n_bars)  # no rules: the rewards are not wanted
        out.append(generate(lm, state, generator=gen, temperature=temperature).voices)
    return np.concatenate(out)


class _Policy(nn.Module):
    """The LM plus a value MLP on its (detached) last hidden state."""

    def __init__(self, lm: nn.Module, *, seed: int) -> None:
        super().__init__()
        self.lm = lm
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.value = mlp(lm.config.hidden_size if hasattr(lm.config, "hidden_size") else lm.config.n_embd,
                             [64], 1, activation=nn.Tanh)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, L)`` inputs -> logits ``(B, L, V)`` and values ``(B, L)``."""
        out = self.lm(input_ids=inputs, output_hidden_states=True)
        return out.logits, self.value(out.hidden_states[-1].detach()).squeeze(-1)


class ComposerTrainer:
    """PPO + KL-to-reference + critic updates, on a copy of ``lm`` (the original is the reference).

    Args:
        lm: the supervised causal LM over :data:`VOCAB_SIZE` tokens (a ``transformers`` model:
            ``lm(input_ids=..., cache=..., use_cache=..., output_hidden_states=...)``).
        chorales: Bach chorales for the critic's real side (not needed when ``disc_weight == 0``).
        config: options; ``disc``: a critic to continue from (default: a fresh one).
    """

    def __init__(self, lm: nn.Module, *, chorales: list[Chorale] | None = None,
                 config: ComposerConfig | None = None, disc: ChoraleDiscriminator | None = None) -> None:
        self.config = config = config or ComposerConfig()
        if lm.get_output_embeddings().out_features != VOCAB_SIZE:
            raise UsageError(f"the LM predicts {lm.get_output_embeddings().out_features} tokens, the chorale "
                             f"encoding has {VOCAB_SIZE}; build it with vocab_size=VOCAB_SIZE")
        self.reference = copy.deepcopy(lm).eval().requires_grad_(False)
        self.policy = _Policy(copy.deepcopy(lm), seed=config.seed)
        self.disc = disc or ChoraleDiscriminator(DiscConfig(seed=config.seed))
        self.chorales = chorales or []
        self.optimizer = torch.optim.Adam([{"params": self.policy.lm.parameters(), "lr": config.lr},
                                           {"params": self.policy.value.parameters(), "lr": config.value_lr}],
                                          eps=1e-5)
        self.state = ComposerState(config.rollout_pieces, n_bars=config.n_bars,
                                   rules=TheoryRules(config.weights(), key=config.key),
                                   invalid_penalty=config.invalid_penalty)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.iteration = 0
        self.history: list[dict[str, float]] = []

    @property
    def lm(self) -> nn.Module:
        """The tuned LM."""
        return self.policy.lm

    def rollout(self) -> Rollout:
        """Write ``rollout_pieces`` pieces; the critic's ``disc_weight * log D`` joins the last reward."""
        ro = generate(self.policy.lm, self.state, generator=self.generator)
        if self.config.disc_weight > 0:
            ro = ro._replace(disc_scores=self.disc.score(ro.voices))
            ro.env_rewards[:, -1] += self.config.disc_weight * ro.disc_scores
        return ro

    def update(self, ro: Rollout) -> dict[str, float]:
        """PPO on one rollout: KL-shaped rewards, GAE, clipped surrogate, value regression."""
        c = self.config
        self.policy.lm.eval()  # no dropout: the ratio must compare the same function
        inputs, actions = _inputs(ro.tokens), ro.tokens
        with torch.no_grad():
            logits, values = self.policy(inputs)
            logp_old = _masked_log_probs(logits, ro.masks).gather(-1, actions[..., None]).squeeze(-1)
            ref_logp = _masked_log_probs(self.reference(input_ids=inputs).logits, ro.masks)
            ref_logp = ref_logp.gather(-1, actions[..., None]).squeeze(-1)
        kl = (logp_old - ref_logp).numpy().astype(np.float64)  # (B, L) sampled-token KL estimate
        rewards = ro.env_rewards - c.kl_coef * kl
        b, length = actions.shape
        done = np.zeros((length, b), dtype=np.bool_)
        done[-1] = True  # every piece ends after its last token
        zeros = np.zeros((length, b))
        adv = gae(np.ascontiguousarray(rewards.T), np.ascontiguousarray(values.numpy().T.astype(np.float64)),
                  np.zeros(b), done, np.zeros_like(done), zeros, c.gamma, c.gae_lambda)
        adv = torch.from_numpy(np.ascontiguousarray(adv.T))  # (B, L)
        returns = adv + values
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [],
                                         "clip_frac": []}
        for _ in range(c.ppo_epochs):
            order = torch.randperm(b, generator=self.generator)
            for start in range(0, b, c.minibatch):
                idx = order[start:start + c.minibatch]
                logits, v = self.policy(inputs[idx])
                logp_all = _masked_log_probs(logits, ro.masks[idx])
                logp = logp_all.gather(-1, actions[idx, :, None]).squeeze(-1)
                ratio = torch.exp(logp - logp_old[idx])
                a = adv[idx]
                policy_loss = -torch.min(ratio * a, ratio.clamp(1 - c.clip, 1 + c.clip) * a).mean()
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
                value_loss = F.mse_loss(v, returns[idx].float())
                loss = policy_loss + value_loss - c.ent_coef * entropy
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), c.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    stats["policy_loss"].append(float(policy_loss))
                    stats["value_loss"].append(float(value_loss))
                    stats["entropy"].append(float(entropy))
                    stats["approx_kl"].append(float(((ratio - 1) - torch.log(ratio)).mean()))
                    stats["clip_frac"].append(float(((ratio - 1).abs() > c.clip).float().mean()))
        out = {k: float(np.mean(v)) for k, v in stats.items()}
        out["kl_to_reference"] = float(kl.sum(1).mean())
        return out

    def train_disc(self, voices: np.ndarray) -> dict[str, float]:
        """``disc_steps`` critic updates on Bach excerpts vs random pieces of ``voices``."""
        c, stats = self.config, {}
        for _ in range(c.disc_steps):
            real = bach_excerpts(self.chorales, voices.shape[2], c.disc_batch, rng=self.rng)
            fake = voices[self.rng.integers(len(voices), size=c.disc_batch)]
            stats = self.disc.train_step(real, fake)
        return stats

    def step(self) -> dict[str, float]:
        """One iteration: rollout, PPO update, critic update. Returns its statistics.

        ``return`` and ``theory_return`` (its theory terms) are the training reward per piece, the
        signal PPO maximises: judge a tuned model with something it was not trained on.
        """
        if self.config.disc_weight > 0 and self.config.disc_steps > 0 and not self.chorales:
            raise UsageError("training the critic (disc_weight > 0, disc_steps > 0) needs Bach chorales for "
                             "its real side; pass chorales=load_chorales(...) or set disc_weight=0")
        ro = self.rollout()
        returns = ro.env_rewards.sum(1)
        row = {"iteration": float(self.iteration), "return": float(returns.mean()),
               "theory_return": float((returns - self.config.disc_weight * ro.disc_scores).mean())}
        if self.config.disc_weight > 0:
            row["mean_d"] = float(np.exp(ro.disc_scores).mean())
        row |= self.update(ro)
        if self.config.disc_weight > 0 and self.config.disc_steps > 0:
            row |= self.train_disc(ro.voices)
        self.iteration += 1
        self.history.append(row)
        return row

    def train(self, iterations: int, *, log: Any = None) -> list[dict[str, float]]:
        """Run ``iterations`` iterations; ``log(row)`` is called after each."""
        for _ in range(iterations):
            row = self.step()
            if log is not None:
                log(row)
        return self.history

    def save(self, directory: str | Path) -> Path:
        """Policy, reference, optimiser, critic (``disc/``), RNG states and history; no pickle."""
        directory = Path(directory)
        clone = lambda sd: {k: v.detach().clone() for k, v in sd.items()}
        save_tensors(directory / "policy.safetensors", clone(self.policy.state_dict()))
        save_tensors(directory / "reference.safetensors", clone(self.reference.state_dict()))
        save_tensors(directory / "optimizer.safetensors", optimizer_tensors(self.optimizer) |
                     {"rng.torch": self.generator.get_state()})
        self.disc.save(directory / "disc")
        write_json(directory / "config.json", {
            "format": FORMAT, "vocab_size": VOCAB_SIZE, "config": dataclasses.asdict(self.config),
            "lm_config": self.policy.lm.config.to_dict(), "iteration": self.iteration,
            "numpy_rng": self.rng.bit_generator.state, "history": self.history})
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, chorales: list[Chorale] | None = None) -> ComposerTrainer:
        """Inverse of :meth:`save` (a GPT-2 config is rebuilt from ``config.json``)."""
        from transformers import GPT2Config, GPT2LMHeadModel

        directory = Path(directory)
        meta = read_json(directory / "config.json", what="chorale composer")
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"chorale composer: {directory} holds no composer checkpoint (format "
                                  f"{meta.get('format')!r}); point at a directory written by ComposerTrainer.save")
        if meta.get("vocab_size") != VOCAB_SIZE:
            raise CheckpointError(f"chorale composer: {directory} was trained on {meta.get('vocab_size')} tokens, "
                                  f"this encoding has {VOCAB_SIZE}; retrain on the current encoding")
        lm = GPT2LMHeadModel(GPT2Config.from_dict(meta["lm_config"]))
        trainer = cls(lm, chorales=chorales, config=ComposerConfig(**meta["config"]),
                      disc=ChoraleDiscriminator.load(directory / "disc"))
        for module, name in ((trainer.policy, "policy"), (trainer.reference, "reference")):
            try:
                module.load_state_dict(load_tensors(directory / f"{name}.safetensors", what="chorale composer"))
            except RuntimeError as e:
                raise CheckpointError(f"chorale composer: {directory}/{name}.safetensors does not fit its "
                                      f"config ({str(e).splitlines()[0]})") from None
        opt = load_tensors(directory / "optimizer.safetensors", what="chorale composer")
        trainer.generator.set_state(opt.pop("rng.torch"))
        load_optimizer_tensors(trainer.optimizer, opt)
        trainer.rng.bit_generator.state = meta["numpy_rng"]
        trainer.iteration, trainer.history = int(meta["iteration"]), list(meta["history"])
        return trainer


def pretrain_lm(chorales: list[Chorale], *, n_bars: int = 2, size: str = "tiny", steps: int = 500,
                batch: int = 32, lr: float = 1e-3, max_transpose: int = 5, seed: int = 0,
                log: Any = None) -> nn.Module:
    """A supervised GPT-2 on ``[BOS] + tokens`` of random ``n_bars`` Bach excerpts (the env's format).

    The fallback teacher when no music transformer is given: teacher forcing with cross-entropy,
    excerpts transposed by up to ``max_transpose`` semitones. Returns the LM in eval mode.
    """
    from gailkit.nn.lm import build_causal_lm

    length = 64 * n_bars
    lm = build_causal_lm(VOCAB_SIZE, size=size, n_positions=length + 1, dropout=0.0, bos_token_id=BOS, seed=seed)
    opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    lm.train()
    for i in range(steps):
        ex = bach_excerpts(chorales, 16 * n_bars, batch, rng=rng, max_transpose=max_transpose)
        tokens = torch.from_numpy(ex.transpose(0, 2, 1).reshape(batch, -1).astype(np.int64))  # time-major
        logits = lm(input_ids=_inputs(tokens)).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), tokens.reshape(-1))
        for g in opt.param_groups:  # linear warm-up, then cosine decay
            g["lr"] = lr * min(1.0, (i + 1) / 50) * 0.5 * (1 + np.cos(np.pi * i / steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        if log is not None:
            log({"step": i, "loss": float(loss.detach())})
    return lm.eval()
