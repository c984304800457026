"""A discriminator over four-part excerpts: the critic of ``gailkit/ChoraleComposer-v0``.

Sign convention (as in :mod:`gailkit.discriminators`): ``D = sigmoid(logit)`` is the
probability that an excerpt is Bach's. :meth:`ChoraleDiscriminator.score` returns
``log D = -softplus(-logit)`` (always <= 0, higher = more like Bach), so a composer that
maximises it writes what the critic mistakes for Bach.

Input: voices ``(B, 4, T)`` in the chorale encoding. Held notes are resolved first, so each
voice-step is seen as (sounding pitch or rest, note starts here or not); voice-specific
embeddings of those are summed over the voices, then a dilated 1-D convolution over time,
mean + max pooling and a spectrally normalised MLP give one logit. Any ``T`` works.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.configs import doc
from gailkit.data.chorales import HOLD, REST, VOCAB_SIZE, Chorale
from gailkit.errors import UsageError
from gailkit.generators.music.theory import sounding_pitches
from gailkit.nn.adversarial import bce_logits_loss
from gailkit.nn.blocks import mlp
from gailkit.nn.checkpoint import (
    CheckpointError,
    load_optimizer_tensors,
    load_tensors,
    load_weights,
    optimizer_tensors,
    read_json,
    save_tensors,
    write_json,
)

__all__ = ["ChoraleDiscriminator", "DiscConfig", "bach_excerpts"]

FORMAT = "gailkit.chorale_discriminator"


@dataclasses.dataclass
class DiscConfig:
    """Size and training options of :class:`ChoraleDiscriminator`."""

    embed: int = dataclasses.field(default=32, metadata=doc("embedding width per voice-step"))
    channels: int = dataclasses.field(default=64, metadata=doc("convolution channels"))
    layers: int = dataclasses.field(default=3, metadata=doc("dilated convolutions (dilation 1, 2, 4, ...)"))
    lr: float = dataclasses.field(default=3e-4, metadata=doc("Adam learning rate"))
    smoothing: float = dataclasses.field(default=0.1, metadata=doc("one-sided label smoothing of Bach's label"))
    seed: int = dataclasses.field(default=0, metadata=doc("initialisation seed"))

    def __post_init__(self) -> None:
        if min(self.embed, self.channels, self.layers) < 1:
            raise UsageError(f"embed, channels and layers must be >= 1, got "
                             f"{self.embed}, {self.channels}, {self.layers}")
        if not 0 <= self.smoothing < 0.5:
            raise UsageError(f"smoothing must be in [0, 0.5), got {self.smoothing}")


def _features(voices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 4, T)`` voices -> pitch ids ``(B, 4, T)`` (0..127, 128 = rest) and onsets ``(B, 4, T)``."""
    v = np.asarray(voices, dtype=np.int64)
    if v.ndim != 3 or v.shape[1] != 4:
        raise ValueError(f"voices must have shape (B, 4, T), got {v.shape}")
    if v.size and (v.min() < 0 or v.max() > REST):
        raise ValueError(f"voices hold tokens outside 0..{REST} (pitches, HOLD, REST); decode tokens first")
    pitch = sounding_pitches(v)
    return torch.from_numpy(np.where(pitch >= 0, pitch, 128)), torch.from_numpy((v < HOLD).astype(np.int64))


class ChoraleDiscriminator(nn.Module):
    """Bach-vs-generated classifier with its own optimiser; ``score`` is the env's reward."""

    def __init__(self, config: DiscConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscConfig()
        with torch.random.fork_rng(devices=[]):  # same seed, same weights; global RNG untouched
            torch.manual_seed(config.seed)
            self.pitch_embed = nn.Embedding(4 * 129, config.embed)
            self.onset_embed = nn.Embedding(4 * 2, config.embed)
            convs, width = [], config.embed
            for i in range(config.layers):
                conv = nn.Conv1d(width, config.channels, kernel_size=3, dilation=2**i, padding=2**i)
                convs.append(nn.utils.parametrizations.spectral_norm(conv))
                width = config.channels
            self.convs = nn.ModuleList(convs)
            self.head = mlp(2 * config.channels, [config.channels], 1, activation=nn.LeakyReLU, spectral_norm=True)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr, betas=(0.5, 0.999))
        self.updates = 0

    def forward(self, pitch: torch.Tensor, onset: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` from pitch ids and onsets ``(B, 4, T)`` (see :func:`_features`); keeps gradients."""
        offset = torch.arange(4, device=pitch.device)[None, :, None]
        x = (self.pitch_embed(pitch + 129 * offset) + self.onset_embed(onset + 2 * offset)).sum(1)  # (B, T, E)
        x = x.transpose(1, 2)  # (B, E, T)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.head(torch.cat([x.mean(2), x.amax(2)], dim=1)).squeeze(1)

    def logits(self, voices: np.ndarray) -> torch.Tensor:
        """Logits ``(B,)`` of voices ``(B, 4, T)``, with gradients."""
        return self(*_features(voices))

    @torch.no_grad()
    def score(self, voices: np.ndarray) -> np.ndarray:
        """``log D`` per excerpt, ``(B, 4, T)`` -> ``(B,)`` float64; no grad, eval mode."""
        was = self.training
        self.eval()
        try:
            return (-F.softplus(-self.logits(voices))).double().numpy()
        finally:
            self.train(was)

    def prob(self, voices: np.ndarray) -> np.ndarray:
        """``D`` = P(Bach) per excerpt, ``(B,)``."""
        return np.exp(self.score(voices))

    def train_step(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        """One Adam step of the BCE loss on Bach ``real`` vs generated ``fake``, each ``(B, 4, T)``."""
        self.train()
        real_logits, fake_logits = self.logits(real), self.logits(fake)
        loss = bce_logits_loss(real_logits, fake_logits, smoothing=self.config.smoothing, one_sided=True)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        with torch.no_grad():
            acc = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
        return {"disc_loss": float(loss.detach()), "disc_acc": float(acc)}

    @torch.no_grad()
    def accuracy(self, real: np.ndarray, fake: np.ndarray) -> float:
        """Balanced accuracy of ``D > 1/2`` on Bach ``real`` vs ``fake``."""
        self.eval()
        return 0.5 * (float((self.logits(real) > 0).float().mean()) + float((self.logits(fake) < 0).float().mean()))

    def save(self, directory: str | Path) -> Path:
        """``config.json`` (format, vocabulary, config) + ``weights`` / ``optimizer`` safetensors."""
        directory = Path(directory)
        save_tensors(directory / "weights.safetensors", self.state_dict())
        save_tensors(directory / "optimizer.safetensors", optimizer_tensors(self.optimizer))
        write_json(directory / "config.json", {"format": FORMAT, "vocab_size": VOCAB_SIZE, "hold": HOLD,
                                               "rest": REST, "updates": self.updates,
                                               "config": dataclasses.asdict(self.config)})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ChoraleDiscriminator:
        """Inverse of :meth:`save`; CheckpointError for a missing, foreign or other-vocabulary directory."""
        directory = Path(directory)
        meta = read_json(directory / "config.json", what="chorale discriminator")
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"chorale discriminator: {directory} holds no chorale discriminator (config.json "
                                  f"format is {meta.get('format')!r}, expected {FORMAT!r}); point at a directory "
                                  f"written by ChoraleDiscriminator.save")
        if (meta.get("vocab_size"), meta.get("hold"), meta.get("rest")) != (VOCAB_SIZE, HOLD, REST):
            raise CheckpointError(f"chorale discriminator: {directory} was trained on another token vocabulary "
                                  f"(vocab_size={meta.get('vocab_size')}, HOLD={meta.get('hold')}, "
                                  f"REST={meta.get('rest')}; "
                                  f"this encoding has {VOCAB_SIZE}, {HOLD}, {REST}); "
                                  "retrain it on the current encoding")
        try:
            disc = cls(DiscConfig(**meta["config"]))
        except (TypeError, KeyError, ValueError) as e:
            raise CheckpointError(f"chorale discriminator: {directory}/config.json has a bad config ({e})") from None
        load_weights(disc, directory / "weights.safetensors", what="chorale discriminator")
        opt = load_tensors(directory / "optimizer.safetensors", what="chorale discriminator")
        if opt:
            load_optimizer_tensors(disc.optimizer, opt)
        disc.updates = int(meta.get("updates", 0))
        return disc


def bach_excerpts(chorales: list[Chorale], n_steps: int, n: int, *, rng: np.random.Generator,
                  max_transpose: int = 0) -> np.ndarray:
    """``n`` random excerpts ``(n, 4, n_steps)`` int16 of the chorales, starting on a beat.

    A note held into the excerpt becomes an onset at its first step, because a composed piece
    cannot begin with a HOLD either; ``max_transpose`` shifts each excerpt by a random
    ``-k..k`` semitones where that stays in MIDI range (augmentation).
    """
    usable = [c for c in chorales if c.steps >= n_steps]
    if not usable:
        raise UsageError(f"no chorale has {n_steps} steps; pass more chorales or fewer bars")
    out = np.empty((n, 4, n_steps), dtype=np.int16)
    for i in range(n):
        c = usable[int(rng.integers(len(usable)))]
        start = 4 * int(rng.integers((c.steps - n_steps) // 4 + 1))
        window = c.voices[:, start:start + n_steps].astype(np.int64)
        for v in range(4):
            j = start
            while j > 0 and c.voices[v, j] == HOLD:  # find the onset of the held note
                j -= 1
            window[v, 0] = c.voices[v, j]
        shift = int(rng.integers(-max_transpose, max_transpose + 1)) if max_transpose else 0
        pitched = window < HOLD
        if pitched.any() and 0 <= window[pitched].min() + shift and window[pitched].max() + shift <= 127:
            window[pitched] += shift
        out[i] = window
    return out

