"""A GPT-2 over chorale tokens (time-major S, A, T, B per sixteenth; see gailkit.data.chorales).

Training examples are fixed windows of ``window`` sixteenths cut from the training chorales
every ``stride`` steps, each ``[BOS, S0, A0, T0, B0, S1, ...]``; a window that starts inside a
held note starts with that note struck instead (a window never opens with a HOLD). Every
step transposes each window by a random shift in ``[-transpose, transpose]`` semitones
(shrunk where it would leave MIDI 0..127).

Sampling is batched with a key/value cache and a grammar mask (:func:`grammar_mask`): BOS,
EOS and PAD are never drawn and HOLD is drawn only where the same voice sounded a note one
step before, so every sample decodes to valid voices without repair (the shared
:func:`gailkit.generators.text.decoding.decode` continues one prompt at a time and takes no
logits mask, hence this sampler of its own). Token sequences from elsewhere (a policy, a
truncated run) go through :func:`gailkit.generators.music.common.tokens_to_voices`, which
repairs deterministically: an orphan HOLD becomes REST.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from gailkit.configs import doc
from gailkit.data.chorales import BOS, HOLD, N_VOICES, REST, VOCAB_SIZE, Chorale, encode_tokens
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.music.common import MusicSamplesMixin, check_chorales
from gailkit.generators.music.metrics import sounding
from gailkit.nn.lm import GPT_SIZES, build_causal_lm

__all__ = ["MusicTransformer", "TransformerConfig", "chorale_windows", "filter_logits", "grammar_mask"]


@dataclasses.dataclass
class TransformerConfig(GeneratorConfig):
    """Options of the chorale transformer."""

    epochs: int = dataclasses.field(default=10, metadata=doc("passes over the training windows"))
    batch_size: int = dataclasses.field(default=32, metadata=doc("windows per gradient step"))
    lr: float = dataclasses.field(default=5e-4, metadata=doc("AdamW learning rate"))
    size: str = dataclasses.field(default="small", metadata=doc(f"GPT-2 size preset: {', '.join(GPT_SIZES)}"))
    window: int = dataclasses.field(default=64, metadata=doc("sixteenths per training window (context)"))
    stride: int = dataclasses.field(default=16, metadata=doc("sixteenths between window starts"))
    transpose: int = dataclasses.field(default=5, metadata=doc("random transposition range, semitones (0: off)"))
    dropout: float = dataclasses.field(default=0.1, metadata=doc("GPT-2 dropout"))
    sample_steps: int = dataclasses.field(default=64, metadata=doc("sixteenths per sample (<= window)"))
    temperature: float = dataclasses.field(default=1.0, metadata=doc("sampling temperature (> 0)"))
    top_k: int = dataclasses.field(default=0, metadata=doc("sample from the k likeliest tokens (0: all)"))
    top_p: float = dataclasses.field(default=1.0, metadata=doc("nucleus sampling mass in (0, 1] (1: off)"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "window": "[1, inf)", "stride": "[1, inf)",
                                        "transpose": "[0, inf)", "dropout": "[0, 1)", "sample_steps": "[1, inf)",
                                        "temperature": "(0, inf)", "top_k": "[0, inf)", "top_p": "(0, 1]"}


def chorale_windows(chorales: list[Chorale], *, window: int, stride: int) -> np.ndarray:
    """(N, 4 window + 1) int64 token windows (see the module docstring); chorales shorter than
    ``window`` give none."""
    rows = []
    for c in chorales:
        struck = sounding(c.voices)
        for s in range(0, c.steps - window + 1, stride):
            w = c.voices[:, s:s + window].copy()
            held = w[:, 0] == HOLD
            w[held, 0] = struck[held, s]  # open with the held note struck
            rows.append(encode_tokens(w)[:-1])  # no EOS: a window is not the chorale's end
    return np.stack(rows) if rows else np.zeros((0, 4 * window + 1), np.int64)


def grammar_mask(tokens: torch.Tensor) -> torch.Tensor:
    """Which tokens may come next after ``tokens`` (B, L) that start with BOS: (B, VOCAB_SIZE) bool.

    Pitches and REST always; HOLD only if the same voice's previous token is a pitch or HOLD;
    never BOS, EOS or PAD (samples have a fixed length).
    """
    b, length = tokens.shape
    mask = torch.zeros(b, VOCAB_SIZE, dtype=torch.bool, device=tokens.device)
    mask[:, :REST + 1] = True
    if length - 1 >= N_VOICES:
        mask[:, HOLD] = tokens[:, length - N_VOICES] != REST
    else:
        mask[:, HOLD] = False
    return mask


def filter_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
                  ) -> torch.Tensor:
    """Temperature, top-k and nucleus filtering of (B, V) logits (removed entries become -inf)."""
    if temperature <= 0:
        raise UsageError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise UsageError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token once the mass before it already reaches top_p (the top token always stays)
        drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


@register("music", "transformer")
class MusicTransformer(MusicSamplesMixin, TorchGenerator):
    """GPT-2 over chorale tokens, sampled with a grammar mask (see the module docstring)."""

    Config = TransformerConfig
    drop_last = False

    def _build(self) -> None:
        cfg = self.config
        if cfg.sample_steps > self.data_info["window"]:
            raise UsageError(f"sample_steps {cfg.sample_steps} exceeds the training window {self.data_info['window']};"
                             f" use --sample-steps <= --window")
        self.lm = build_causal_lm(VOCAB_SIZE, size=cfg.size, n_positions=self.data_info["n_positions"],
                                  dropout=cfg.dropout, bos_token_id=BOS, seed=cfg.seed)
        self.opt = torch.optim.AdamW(self.lm.parameters(), lr=cfg.lr, weight_decay=0.01)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"lm": self.lm}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    # GPT-2 ties its output layer to the token embedding; safetensors refuses shared memory, so
    # the tied copy is left out on save and restored from the embedding on load.
    _TIED = ("lm.lm_head.weight", "lm.transformer.wte.weight")

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = super().state_tensors()
        tensors.pop(self._TIED[0], None)
        return tensors

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        super().load_state_tensors({**tensors, self._TIED[0]: tensors[self._TIED[1]]})

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        chorales = check_chorales(data, what="music/transformer.fit")
        cfg = self.config
        windows = chorale_windows(chorales, window=cfg.window, stride=cfg.stride)
        if not len(windows):
            raise UsageError(f"no chorale is {cfg.window} sixteenths long; use a smaller --window")
        if not self.built:
            self.build({"vocab_size": VOCAB_SIZE, "window": cfg.window, "n_positions": 4 * cfg.window + 1})
        elif self.data_info["window"] != cfg.window:
            raise UsageError(f"this model was built for windows of {self.data_info['window']}, not {cfg.window}")
        return (torch.from_numpy(windows),)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Transpose each window (B, L) by a random shift that keeps its pitches in 0..127."""
        k = self.config.transpose
        if k <= 0:
            return x
        pitched = x < HOLD
        lo = torch.where(pitched, x, torch.full_like(x, 127)).min(dim=1).values
        hi = torch.where(pitched, x, torch.zeros_like(x)).max(dim=1).values
        shift = torch.randint(-k, k + 1, (len(x),))
        shift = torch.maximum(torch.minimum(shift, 127 - hi), -lo)
        return torch.where(pitched, x + shift[:, None], x)

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.lm(input_ids=x).logits  # (B, L, V)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (x,) = batch
        loss = self._nll(self._augment(x))
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.lm.parameters(), 1.0)
        self.opt.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def sample_tokens(self, n: int, *, seed: int | None = None, steps: int | None = None,
                      temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                      chunk: int = 64) -> torch.Tensor:
        """(n, 1 + 4 steps) token ids starting with BOS (see the module docstring)."""
        self._require_built("sample")
        cfg = self.config
        steps = cfg.sample_steps if steps is None else steps
        if not 1 <= steps <= self.data_info["window"]:
            raise UsageError(f"steps must be in 1..{self.data_info['window']} (the context), got {steps}")
        opts = {"temperature": cfg.temperature if temperature is None else temperature,
                    "top_k": cfg.top_k if top_k is None else top_k, "top_p": cfg.top_p if top_p is None else top_p}
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        self.lm.eval()
        outs = []
        for start in range(0, n, chunk):
            out = torch.full((min(chunk, n - start), 1), BOS, dtype=torch.long)
            cache = None
            for _ in range(N_VOICES * steps):
                res = (self.lm(input_ids=out, use_cache=True) if cache is None
                       else self.lm(input_ids=out[:, -1:], cache=cache))
                cache = res.cache
                logits = res.logits[:, -1].float().masked_fill(~grammar_mask(out), -math.inf)
                probs = torch.softmax(filter_logits(logits, **opts), dim=-1)
                out = torch.cat([out, torch.multinomial(probs, 1, generator=gen)], dim=1)
            outs.append(out)
        return torch.cat(outs)

    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> list[np.ndarray]:
        """``n`` chorale fragments, each (4, steps) int16 voices; kwargs as :meth:`sample_tokens`."""
        from gailkit.data.chorales import decode_tokens

        return [decode_tokens(row) for row in self.sample_tokens(n, seed=seed, **kwargs).numpy()]

    @torch.no_grad()
    def _extra_scores(self, held_out: list[Chorale]) -> dict[str, float]:
        """``test_nll``: mean negative log-likelihood per token (nats) of held-out windows."""
        w = self.data_info["window"]
        windows = chorale_windows(held_out, window=w, stride=w)
        if not len(windows):
            return {}
        self.lm.eval()
        x = torch.from_numpy(windows)
        total = sum(self._nll(x[i:i + 64]).item() * len(x[i:i + 64]) for i in range(0, len(x), 64))
        return {"test_nll": total / len(x)}
