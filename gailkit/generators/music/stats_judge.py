"""A judge of another architecture than the composer's critic: a small MLP on music statistics.

The PPO composer is trained to fool :class:`~gailkit.generators.music.composer_disc.ChoraleDiscriminator`
(learned embeddings, dilated convolutions over time), so a fresh critic of that same
architecture shares its blind spots. This judge sees none of the tokens: each excerpt becomes
:data:`FEATURE_NAMES` (hand-made statistics of pitch, melody, rhythm and harmony; see
:func:`piece_features`), standardised, and a one-hidden-layer MLP separates Bach from the rest.

Several features (in-scale share through the key-relative histogram, parallels, crossing) are
also terms of the theory reward; the judge weighs them together with everything else, as it
learns from the data which ones tell the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.data.chorales import HOLD, N_VOICES, validate_voices
from gailkit.errors import UsageError
from gailkit.generators.music.metrics import estimate_key, parallel_motion, sounding

__all__ = ["FEATURE_NAMES", "StatsJudge", "piece_features"]

_VOICES = ("s", "a", "t", "b")
_LEAPS = ((0, 0), (1, 1), (2, 2), (3, 4), (5, 7), (8, 12), (13, 127))  # melodic |interval| bins, semitones
_DURATIONS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 10_000))  # note length bins, sixteenths

FEATURE_NAMES: tuple[str, ...] = (
    *(f"pc_rel_{k}" for k in range(12)), "minor",
    *(f"{v}_{stat}" for v in _VOICES for stat in ("mean_pitch", "pitch_sd", "rest", "onsets")),
    *(f"{v}_leap_{lo}_{hi}" for v in _VOICES for lo, hi in _LEAPS),
    *(f"duration_{lo}_{hi}" for lo, hi in _DURATIONS),
    *(f"vertical_ic_{k}" for k in range(12)),
    "spacing_sa", "spacing_at", "spacing_tb",
    "parallel_fifths", "parallel_octaves", "crossing", "pcs_per_step",
)


def _hist(values: np.ndarray, bins: Sequence[tuple[int, int]]) -> np.ndarray:
    counts = np.array([((values >= lo) & (values <= hi)).sum() for lo, hi in bins], dtype=float)
    return counts / max(counts.sum(), 1.0)


def piece_features(voices: np.ndarray) -> np.ndarray:
    """``(4, T)`` voices -> ``(len(FEATURE_NAMES),)`` float64 statistics (see the names).

    Pitch classes are relative to the piece's estimated key; pitches are in octaves above MIDI 0
    (``/ 12``) so that the features have comparable scales before standardisation.
    """
    v = validate_voices(voices).astype(np.int64)
    s = sounding(v)  # (4, T) sounding pitch, -1 silent
    onset = v < HOLD
    tonic, mode = estimate_key(v)
    pcs = (v[onset] - tonic) % 12
    out = [np.bincount(pcs, minlength=12) / max(len(pcs), 1), [float(mode == "minor")]]
    per_voice, leaps = [], []
    for i in range(N_VOICES):
        p = s[i][s[i] >= 0]
        notes = v[i][onset[i]]
        per_voice += [p.mean() / 12 if len(p) else 0.0, p.std() / 12 if len(p) else 0.0,
                      float((s[i] < 0).mean()), float(onset[i].mean())]
        leaps.append(_hist(np.abs(np.diff(notes)), _LEAPS))
    out += [per_voice, *leaps]
    lengths = []
    for i in range(N_VOICES):
        starts = np.flatnonzero(onset[i])
        ends = np.append(starts[1:], v.shape[1])
        for a, b in zip(starts, ends):  # a note lasts over its HOLDs, up to a REST or the next onset
            held = v[i, a + 1:b] == HOLD
            lengths.append(1 + (int(np.argmin(held)) if not held.all() else len(held)))
    out.append(_hist(np.array(lengths), _DURATIONS))
    ic, spacing = np.zeros(12), []
    for i in range(N_VOICES):
        for j in range(i + 1, N_VOICES):
            both = (s[i] >= 0) & (s[j] >= 0)
            ic += np.bincount((s[i][both] - s[j][both]) % 12, minlength=12)
            if j == i + 1:
                spacing.append(float((s[i][both] - s[j][both]).mean()) / 12 if both.any() else 0.0)
    out += [ic / max(ic.sum(), 1.0), spacing]
    par = parallel_motion([v])
    adjacent = (s[:-1] >= 0) & (s[1:] >= 0)
    crossing = float((adjacent & (s[1:] > s[:-1])).sum() / max(adjacent.sum(), 1))
    n_pcs = [len(np.unique(col[col >= 0] % 12)) for col in s.T]
    out.append([np.nan_to_num(par["parallel_fifths"]) / 100, np.nan_to_num(par["parallel_octaves"]) / 100,
                crossing, float(np.mean(n_pcs))])
    return np.concatenate([np.asarray(x, dtype=np.float64) for x in out])


class StatsJudge:
    """Bach-vs-other classifier on :func:`piece_features`: standardise, then a small MLP.

    Args:
        hidden: hidden units.
        steps: full-batch Adam steps.
        lr, weight_decay: Adam options (the decay keeps ~100 features from being memorised).
        seed: initialisation seed.
    """

    def __init__(self, *, hidden: int = 32, steps: int = 500, lr: float = 1e-2, weight_decay: float = 1e-3,
                 seed: int = 0) -> None:
        if hidden < 1 or steps < 1:
            raise UsageError(f"hidden and steps must be >= 1, got {hidden} and {steps}")
        self.hidden, self.steps, self.lr, self.weight_decay, self.seed = hidden, steps, lr, weight_decay, seed
        self.net: nn.Module | None = None

    @staticmethod
    def features(pieces: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, len(FEATURE_NAMES))`` features of ``N`` pieces (what :meth:`fit` and :meth:`prob` take)."""
        return np.stack([piece_features(p) for p in pieces])

    def fit(self, real: np.ndarray, fake: np.ndarray) -> StatsJudge:
        """Train on the features of Bach ``real`` vs ``fake`` pieces, each class half of the loss.

        Args:
            real, fake: ``(N, len(FEATURE_NAMES))`` from :meth:`features` (computed once, reused).
        """
        x = np.concatenate([real, fake])
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"expected features of shape (N, {len(FEATURE_NAMES)}), got {x.shape}; "
                             f"pass StatsJudge.features(pieces)")
        y = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-6
        xt = torch.from_numpy((x - self.mean) / self.scale).float()
        weight = torch.where(y > 0, 0.5 / len(real), 0.5 / len(fake))
        with torch.random.fork_rng(devices=[]):  # same seed, same judge; global RNG untouched
            torch.manual_seed(self.seed)
            self.net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1))
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.steps):
            loss = (F.binary_cross_entropy_with_logits(self.net(xt).squeeze(1), y, reduction="none") * weight).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def prob(self, features: np.ndarray) -> np.ndarray:
        """``(N,)`` P(Bach) of each piece, from its features ``(N, len(FEATURE_NAMES))``."""
        if self.net is None:
            raise RuntimeError("StatsJudge.prob before fit(); fit it on Bach and generated pieces first")
        x = torch.from_numpy((features - self.mean) / self.scale).float()
        return torch.sigmoid(self.net(x).squeeze(1)).double().numpy()

    def accuracy(self, real: np.ndarray, fake: np.ndarray) -> float:
        """Balanced accuracy of ``P(Bach) > 1/2`` on the features of Bach ``real`` vs ``fake``."""
        return 0.5 * (float((self.prob(real) > 0.5).mean()) + float((self.prob(fake) <= 0.5).mean()))
