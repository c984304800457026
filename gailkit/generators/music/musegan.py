"""A MuseGAN-style multi-track GAN (Dong et al., 2018, hybrid model) over chorale piano rolls.

A sample is ``bars`` bars of four tracks (S, A, T, B). Four latents make it, as in MuseGAN:
*chords* (shared by the tracks, one vector per bar from a temporal generator), *style*
(shared, the same for every bar), *melody* (per track, one vector per bar from the track's
temporal generator) and *groove* (per track, the same for every bar). Each track's bar
generator maps the four vectors of a bar to that bar's roll.

The roll is kept small: pitches are restricted to the range the training chorales use, and
the grid is ``resolution`` sixteenths per step (default 2, eighth notes: Bach's chorales
move in quarters and eighths, and a coarser grid spares the GAN from learning to hold
notes). Each track and step is a categorical over that pitch range plus a *rest* class, so
the piano roll is monophonic by construction. The critic sees one-hot rolls on both sides:
real ones, and draws from the generator's categoricals made differentiable with the
straight-through Gumbel-softmax (Jang et al., 2017; one-hot forward, softmax gradient
backward). Feeding the critic the softmax itself (``gumbel=False``, the WGAN-GP setting of
Gulrajani et al.'s character model) lets it win on sharpness alone, and in our runs the
generator collapsed to one fragment (sample diversity 0.10 against Bach's 0.92). Samples are
binarised the same way: one seeded draw per track and step (with ``gumbel=False``: the argmax,
where rest wins when its probability beats every pitch's); a note starts where the pitch
changes or follows a rest, so repeated notes of the same pitch merge.

By default the training chorales are first transposed to C major / A minor
(:func:`gailkit.data.chorales.to_common_key`), so the generator learns one scale: trained on
chorales in every key it mixed keys within a piece (in-scale rate 0.75 against Bach's 0.95).

Training is WGAN-GP (:func:`gailkit.nn.adversarial.wgan_gradient_penalty`) with
``n_critic`` critic steps per generator step; the critic is a 1-D convolution over time with
the tracks' pitch classes as channels, with a minibatch-deviation feature.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from gailkit.configs import doc
from gailkit.data.chorales import HOLD, N_VOICES, REST, Chorale, to_common_key
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.music.common import MusicSamplesMixin, check_chorales
from gailkit.generators.music.metrics import sounding
from gailkit.nn.adversarial import wgan_gradient_penalty
from gailkit.nn.blocks import mlp
from gailkit.nn.checkpoint import optimizer_steps

__all__ = ["MuseGAN", "MuseGANConfig", "classes_to_voices", "roll_windows"]


@dataclasses.dataclass
class MuseGANConfig(GeneratorConfig):
    """Options of the multi-track chorale GAN."""

    epochs: int = dataclasses.field(default=30, metadata=doc("passes over the training windows"))
    batch_size: int = dataclasses.field(default=64, metadata=doc("windows per critic step"))
    lr: float = dataclasses.field(default=2e-4, metadata=doc("Adam learning rate (both networks)"))
    bars: int = dataclasses.field(default=4, metadata=doc("bars (of 16 sixteenths) per sample"))
    resolution: int = dataclasses.field(default=2, metadata=doc("sixteenths per GAN time step (1, 2 or 4)"))
    stride: int = dataclasses.field(default=16, metadata=doc("sixteenths between training window starts"))
    latent: int = dataclasses.field(default=32, metadata=doc("size of each latent (chords, style, melody, groove)"))
    hidden: int = dataclasses.field(default=256, metadata=doc("hidden width of the generator and critic"))
    n_critic: int = dataclasses.field(default=5, metadata=doc("critic steps per generator step"))
    gp_weight: float = dataclasses.field(default=10.0, metadata=doc("gradient-penalty weight"))
    minibatch_std: bool = dataclasses.field(default=True, metadata=doc("critic sees the batch's feature spread"))
    gumbel: bool = dataclasses.field(default=True, metadata=doc(
        "critic sees straight-through Gumbel one-hot samples (else softmax outputs); samples are drawn, not argmax"))
    temperature: float = dataclasses.field(default=1.0, metadata=doc(
        "sampling temperature of the draws with --gumbel (0: the argmax)"))
    common_key: bool = dataclasses.field(default=True, metadata=doc(
        "train on every chorale transposed to C major / A minor (one scale to learn, not twelve)"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "bars": "[1, inf)", "stride": "[1, inf)",
                                        "latent": "[1, inf)", "hidden": "[1, inf)", "n_critic": "[1, inf)",
                                        "gp_weight": "[0, inf)", "temperature": "[0, inf)"}


def roll_windows(chorales: list[Chorale], *, bars: int, resolution: int, stride: int, pitch_lo: int,
                 pitch_hi: int) -> np.ndarray:
    """(N, 4, steps) int64 class windows: pitch - pitch_lo, or ``pitch_hi - pitch_lo + 1`` for rest.

    ``steps = bars * 16 / resolution``; each step takes the pitch sounding at its first sixteenth.
    """
    length = bars * 16
    rest = pitch_hi - pitch_lo + 1
    rows = []
    for c in chorales:
        s = sounding(c.voices)
        for start in range(0, c.steps - length + 1, stride):
            w = s[:, start:start + length:resolution].astype(np.int64)
            rows.append(np.where(w < 0, rest, np.clip(w, pitch_lo, pitch_hi) - pitch_lo))
    return np.stack(rows) if rows else np.zeros((0, N_VOICES, length // resolution), np.int64)


def classes_to_voices(classes: np.ndarray, *, pitch_lo: int, n_pitches: int, resolution: int) -> np.ndarray:
    """(4, steps) argmax classes -> (4, steps * resolution) int16 voices (see the module docstring)."""
    classes = np.asarray(classes)
    pitch = np.where(classes >= n_pitches, -1, classes + pitch_lo)
    prev = np.concatenate([np.full((N_VOICES, 1), -1), pitch[:, :-1]], axis=1)
    coarse = np.where(pitch < 0, REST, np.where(pitch != prev, pitch, HOLD))
    fine = np.repeat(coarse, resolution, axis=1)
    tail = np.ones(fine.shape[1], bool)
    tail[::resolution] = False  # the later sixteenths of a step hold its note (or stay silent)
    fine[:, tail] = np.where(fine[:, tail] == REST, REST, HOLD)
    return fine.astype(np.int16)


class BarGenerator(nn.Module):
    """MuseGAN's generator: temporal generators for chords and melodies, one bar generator per track."""

    def __init__(self, *, bars: int, steps: int, classes: int, latent: int, hidden: int) -> None:
        super().__init__()
        self.bars, self.steps, self.classes, self.latent = bars, steps, classes, latent
        self.chords = mlp(latent, [hidden], bars * latent)
        self.melody = nn.ModuleList(mlp(latent, [hidden], bars * latent) for _ in range(N_VOICES))
        self.bar = nn.ModuleList(mlp(4 * latent, [hidden, hidden], steps * classes) for _ in range(N_VOICES))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, 10 latent) noise [chords, style, 4 melodies, 4 grooves] -> (B, 4, bars * steps, classes) logits."""
        b, k = len(z), self.latent
        chords = self.chords(z[:, :k]).view(b, self.bars, k)
        style = z[:, k:2 * k, None].transpose(1, 2).expand(b, self.bars, k)
        tracks = []
        for i in range(N_VOICES):
            melody = self.melody[i](z[:, (2 + i) * k:(3 + i) * k]).view(b, self.bars, k)
            groove = z[:, (6 + i) * k:(7 + i) * k, None].transpose(1, 2).expand(b, self.bars, k)
            logits = self.bar[i](torch.cat([chords, style, melody, groove], dim=-1))  # (B, bars, steps*classes)
            tracks.append(logits.view(b, self.bars * self.steps, self.classes))
        return torch.stack(tracks, dim=1)


class Critic(nn.Module):
    """WGAN critic: (B, 4 * steps * classes) flat rolls -> (B,) scores.

    With ``minibatch_std`` (Karras et al., 2018) the spread of the features across the batch
    is one more input of the head, so a batch of near-identical samples is easy to tell from
    real music (a standard remedy for mode collapse; on its own it did not stop the collapse
    described in the module docstring, the Gumbel draws did).
    """

    def __init__(self, *, steps: int, classes: int, hidden: int, minibatch_std: bool = True) -> None:
        super().__init__()
        self.steps, self.classes, self.minibatch_std = steps, classes, minibatch_std
        self.conv = nn.Sequential(
            nn.Conv1d(N_VOICES * classes, hidden, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear((hidden + int(minibatch_std)) * (steps // 4), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        x = x.view(b, N_VOICES, self.steps, self.classes).permute(0, 1, 3, 2).reshape(b, -1, self.steps)
        h = self.conv(x)  # (B, hidden, steps / 4)
        if self.minibatch_std:
            spread = h.std(dim=0, unbiased=False).mean()
            h = torch.cat([h, spread.expand(b, 1, h.shape[2])], dim=1)
        return self.head(h.flatten(1)).squeeze(1)


@register("music", "musegan")
class MuseGAN(MusicSamplesMixin, TorchGenerator):
    """MuseGAN-style multi-track WGAN-GP over chorale piano rolls (see the module docstring)."""

    Config = MuseGANConfig

    @property
    def n_pitches(self) -> int:
        return self.data_info["pitch_hi"] - self.data_info["pitch_lo"] + 1

    @property
    def steps(self) -> int:
        return self.data_info["bars"] * 16 // self.data_info["resolution"]

    def _build(self) -> None:
        cfg, info = self.config, self.data_info
        classes = self.n_pitches + 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.gen = BarGenerator(bars=info["bars"], steps=16 // info["resolution"], classes=classes,
                                    latent=cfg.latent, hidden=cfg.hidden)
            self.critic = Critic(steps=self.steps, classes=classes, hidden=cfg.hidden,
                                 minibatch_std=cfg.minibatch_std)
        self.g_opt = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        self.d_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))

    def modules(self) -> dict[str, nn.Module]:
        return {"gen": self.gen, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g_opt": self.g_opt, "d_opt": self.d_opt}

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        chorales = check_chorales(data, what="music/musegan.fit")
        cfg = self.config
        if cfg.common_key:
            chorales = [to_common_key(c) for c in chorales]
        if cfg.resolution not in (1, 2, 4):
            raise UsageError(f"resolution must be 1, 2 or 4 sixteenths, got {cfg.resolution}")
        if not self.built:
            pitches = np.concatenate([c.voices[c.voices < HOLD] for c in chorales])
            self.build({"bars": cfg.bars, "resolution": cfg.resolution, "pitch_lo": int(pitches.min()),
                        "pitch_hi": int(pitches.max())})
        info = self.data_info
        windows = roll_windows(chorales, bars=info["bars"], resolution=info["resolution"], stride=cfg.stride,
                               pitch_lo=info["pitch_lo"], pitch_hi=info["pitch_hi"])
        if not len(windows):
            raise UsageError(f"no chorale is {info['bars']} bars long; use fewer --bars")
        return (torch.from_numpy(windows),)

    def _noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, 10 * self.config.latent, generator=generator)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (classes,) = batch
        cfg = self.config
        real = nn.functional.one_hot(classes, self.n_pitches + 1).float().flatten(1)
        fake = self._fake(len(real)).flatten(1)
        d_real, d_fake = self.critic(real).mean(), self.critic(fake.detach()).mean()
        gp = wgan_gradient_penalty(self.critic, real, fake)
        d_loss = d_fake - d_real + cfg.gp_weight * gp
        self.d_opt.zero_grad()
        d_loss.backward()
        self.d_opt.step()
        # g_loss is the generator's loss on this batch, logged every step so epoch means compare
        logs = {"d_loss": d_loss.item(), "g_loss": -d_fake.item(), "wasserstein": (d_real - d_fake).item(),
                "gp": gp.item()}
        # the optimiser's step count is checkpointed, so the critic/generator rhythm survives a resume
        if optimizer_steps(self.d_opt) % cfg.n_critic == 0:
            g_loss = -self.critic(self._fake(len(real)).flatten(1)).mean()
            self.g_opt.zero_grad()
            g_loss.backward()
            self.g_opt.step()
        return logs

    def _fake(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """(n, 4, steps, classes) generated rolls as the critic sees them."""
        logits = self.gen(self._noise(n, generator))
        if not self.config.gumbel:
            return torch.softmax(logits, dim=-1)
        u = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
        soft = torch.softmax(logits / temperature + gumbel if temperature > 0 else logits, dim=-1)
        hard = nn.functional.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
        return hard - soft.detach() + soft  # one-hot forward, softmax gradient backward

    @torch.no_grad()
    def sample_probs(self, n: int, *, seed: int | None = None) -> torch.Tensor:
        """(n, 4, steps, n_pitches + 1) rolls (last class: rest): one-hot draws with ``gumbel``,
        else per-step class probabilities."""
        self._require_built("sample")
        self.gen.eval()
        return self._fake(n, torch.Generator().manual_seed(0 if seed is None else seed), self.config.temperature)

    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> list[np.ndarray]:
        """``n`` pieces of ``bars`` bars, each (4, bars * 16) int16 voices."""
        classes = self.sample_probs(n, seed=seed).argmax(dim=-1).numpy()
        info = self.data_info
        return [classes_to_voices(c, pitch_lo=info["pitch_lo"], n_pitches=self.n_pitches,
                                  resolution=info["resolution"]) for c in classes]
