"""The music-theory game of ``gailkit/ChoraleComposer-v0``: rule-based rewards for four-part writing.

:class:`TheoryRules` is what the env and the PPO fine-tuning hand to
:class:`gailkit.envs.composer.ComposerState` as its ``rules``: after every token it pays what
that token completes, with the weights of :class:`TheoryWeights` (0 switches a term off):

* when a token completes a sixteenth step: a penalty per parallel fifth / octave, per
  voice-step of crossing voices, out of a voice's range, or resting (:func:`theory_terms`);
* when it completes a bar: the share of the bar's note onsets in the key's scale (the key
  given, or estimated from the notes written so far by Krumhansl-Kessler profile correlation),
  and the bar's terms in ``info["theory"]``.

The env lives in :mod:`gailkit.envs` and knows none of this: rules and critic are objects
handed to it, so envs never import generators.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from gailkit.data.chorales import HOLD, N_VOICES
from gailkit.envs.composer import STEPS_PER_BAR
from gailkit.errors import UsageError
from gailkit.generators.music.metrics import MAJOR_PROFILE, MAJOR_SCALE, MINOR_PROFILE, MINOR_SCALE

if TYPE_CHECKING:
    from gailkit.envs.composer import ComposerState

__all__ = [
    "VOICE_RANGES",
    "TheoryRules",
    "TheoryWeights",
    "estimate_keys",
    "parse_key",
    "sounding_pitches",
    "theory_terms",
]

# Inclusive MIDI ranges (soprano, alto, tenor, bass), a little wider than the textbook ones
# because Bach's chorales are.
VOICE_RANGES = np.array([[59, 81], [53, 77], [47, 71], [36, 64]], dtype=np.int64)
_PITCH_CLASSES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


@dataclasses.dataclass(frozen=True)
class TheoryWeights:
    """Weights of the music-theory reward terms (0 switches one off)."""

    in_scale: float = 1.0  # per bar, times the share of onsets in the key's scale
    parallel: float = 0.5  # per parallel fifth or octave between any two voices
    crossing: float = 0.05  # per sixteenth step on which a lower voice sounds above the one above it
    out_of_range: float = 0.02  # per voice-step outside VOICE_RANGES
    rest: float = 0.02  # per voice-step of rest (chorales hardly rest; silence must not be a refuge)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not np.isfinite(getattr(self, f.name)) or getattr(self, f.name) < 0:
                raise UsageError(f"TheoryWeights.{f.name} must be a finite number >= 0, got {getattr(self, f.name)}")


def _scale_mask(tonic_pc: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """``(B,)`` tonic pitch classes and minor flags -> ``(B, 12)`` bool: pitch class in scale."""
    major = np.zeros(12, bool)
    major[list(MAJOR_SCALE)] = True
    minor_m = np.zeros(12, bool)
    minor_m[list(MINOR_SCALE)] = True
    base = np.where(minor[:, None], minor_m[None], major[None])  # (B, 12) relative to the tonic
    idx = (np.arange(12)[None, :] - tonic_pc[:, None]) % 12
    return np.take_along_axis(base, idx, axis=1)


def estimate_keys(histogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Krumhansl-Kessler key finding for a batch: correlate pitch-class histograms with the 24 profiles.

    (:func:`gailkit.generators.music.metrics.estimate_key` is the one-piece form over voices.)

    Args:
        histogram: ``(B, 12)`` non-negative weights per pitch class (e.g. sixteenths sounding).

    Returns:
        ``(tonic_pc (B,) int, minor (B,) bool)``; an empty histogram gives C major.
    """
    h = np.asarray(histogram, dtype=np.float64)
    profiles = np.stack([np.roll(p, k) for p in (MAJOR_PROFILE, MINOR_PROFILE) for k in range(12)])  # (24, 12)
    hc = h - h.mean(1, keepdims=True)
    pc = profiles - profiles.mean(1, keepdims=True)
    corr = hc @ pc.T / (np.linalg.norm(hc, axis=1, keepdims=True) * np.linalg.norm(pc, axis=1)[None] + 1e-12)
    best = corr.argmax(1)  # ties (and all-zero rows) pick the first: C major
    return best % 12, best >= 12


def parse_key(key: str) -> tuple[int, bool]:
    """``"C major"``, ``"F# minor"``, ``"Bb major"`` -> ``(tonic pitch class, minor)``."""
    parts = key.split()
    names = {n: i for i, n in enumerate(_PITCH_CLASSES)} | {"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10}
    if len(parts) != 2 or parts[0] not in names or parts[1] not in ("major", "minor"):
        raise UsageError(f"key {key!r} is not understood; write it like 'C major', 'F# minor' or 'Bb major', "
                         f"or pass key=None to estimate it from the notes")
    return names[parts[0]], parts[1] == "minor"


def sounding_pitches(voices: np.ndarray) -> np.ndarray:
    """Resolve ``HOLD`` / ``REST``: ``(..., 4, T)`` tokens -> sounding MIDI pitch, -1 for silence."""
    v = np.asarray(voices, dtype=np.int64)
    out = np.where(v < HOLD, v, -1)
    for t in range(1, v.shape[-1]):
        out[..., t] = np.where(v[..., t] == HOLD, out[..., t - 1], out[..., t])
    return out


def theory_terms(pitch: np.ndarray, onset: np.ndarray, prev_pitch: np.ndarray | None, in_scale: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Counts for the theory reward over one stretch (a bar) of ``S`` steps.

    Args:
        pitch: ``(B, 4, S)`` sounding MIDI pitch, -1 where a voice rests.
        onset: ``(B, 4, S)`` bool, a note starts here.
        prev_pitch: ``(B, 4)`` sounding pitch on the step before the stretch (None: no step before),
            so a parallel across the bar line counts in the bar it arrives in.
        in_scale: ``(B, 12)`` bool, pitch class in the key's scale.

    Returns:
        ``(B,)`` arrays: ``in_scale`` share of onsets in the scale (0 with no onsets), ``parallel``
        number of parallel perfect fifths / octaves (both voices move the same way from one
        perfect interval class to the same one), ``crossing`` voice-steps on which voice ``v + 1``
        sounds above voice ``v``, ``out_of_range`` and ``rest`` voice-steps.
    """
    b = pitch.shape[0]
    full = pitch if prev_pitch is None else np.concatenate([prev_pitch[:, :, None], pitch], axis=2)
    n_on = onset.sum((1, 2))
    pcs = np.where(pitch >= 0, pitch % 12, 0)
    scale_hit = np.take_along_axis(in_scale, pcs.reshape(b, -1), axis=1).reshape(pitch.shape) & onset
    parallel = np.zeros(b, np.int64)
    a0, a1 = full[:, :, :-1], full[:, :, 1:]  # (B, 4, S') before / after each step
    for i in range(N_VOICES):
        for j in range(i + 1, N_VOICES):
            sounding = (a0[:, i] >= 0) & (a0[:, j] >= 0) & (a1[:, i] >= 0) & (a1[:, j] >= 0)
            move_i, move_j = a1[:, i] - a0[:, i], a1[:, j] - a0[:, j]
            same_way = (move_i != 0) & (np.sign(move_i) == np.sign(move_j))
            ic0, ic1 = (a0[:, i] - a0[:, j]) % 12, (a1[:, i] - a1[:, j]) % 12
            perfect = (ic0 == ic1) & ((ic1 == 0) | (ic1 == 7))
            parallel += (sounding & same_way & perfect).sum(1)
    both = (pitch[:, :-1] >= 0) & (pitch[:, 1:] >= 0)
    crossing = (both & (pitch[:, 1:] > pitch[:, :-1])).sum((1, 2))
    lo, hi = VOICE_RANGES[None, :, 0, None], VOICE_RANGES[None, :, 1, None]
    out_of_range = ((pitch >= 0) & ((pitch < lo) | (pitch > hi))).sum((1, 2))
    return {"in_scale": scale_hit.sum((1, 2)) / np.maximum(n_on, 1), "parallel": parallel,
            "crossing": crossing, "out_of_range": out_of_range, "rest": (pitch < 0).sum((1, 2))}


class TheoryRules:
    """The theory reward as the ``rules`` of a :class:`~gailkit.envs.composer.ComposerState`.

    Args:
        weights: the terms' weights.
        key: ``"C major"``-style key for the in-scale term, or None to estimate it from the notes
            written so far.
    """

    def __init__(self, weights: TheoryWeights = TheoryWeights(), *, key: str | None = None) -> None:
        self.weights = weights
        self.fixed_key = None if key is None else parse_key(key)

    def key_scale(self, state: ComposerState) -> np.ndarray:
        """``(B, 12)`` bool scale of the fixed key, or of the key estimated from the notes so far."""
        if self.fixed_key is not None:
            tonic, minor = self.fixed_key
            return _scale_mask(np.full(state.batch, tonic), np.full(state.batch, minor))
        end = state.position // N_VOICES
        p = state.pitch[:, :, :end].reshape(state.batch, -1)
        hist = np.zeros((state.batch, 12))
        rows, cols = np.nonzero(p >= 0)
        np.add.at(hist, (rows, p[rows, cols] % 12), 1.0)
        return _scale_mask(*estimate_keys(hist))

    def bar_terms(self, state: ComposerState, bar: int) -> dict[str, np.ndarray]:
        """:func:`theory_terms` of bar ``bar`` (0-based) of ``state``, which must be written."""
        s = slice(bar * STEPS_PER_BAR, (bar + 1) * STEPS_PER_BAR)
        prev = state.pitch[:, :, s.start - 1] if bar > 0 else None
        return theory_terms(state.pitch[:, :, s], state.onset[:, :, s], prev, self.key_scale(state))

    def reward(self, state: ComposerState) -> tuple[np.ndarray, dict[str, Any]]:
        """``(B,)`` reward of the token just written, and ``{"theory": the bar's terms}`` at a bar end."""
        w, info = self.weights, {}
        reward = np.zeros(state.batch)
        step, voice = divmod(state.position - 1, N_VOICES)
        if voice == N_VOICES - 1:  # a step is complete: its penalties are paid now (denser credit)
            s = slice(step, step + 1)
            prev = state.pitch[:, :, step - 1] if step > 0 else None
            t = theory_terms(state.pitch[:, :, s], state.onset[:, :, s], prev, np.ones((state.batch, 12), bool))
            reward -= (w.parallel * t["parallel"] + w.crossing * t["crossing"]
                       + w.out_of_range * t["out_of_range"] + w.rest * t["rest"])
        if state.position % (STEPS_PER_BAR * N_VOICES) == 0:
            terms = self.bar_terms(state, state.position // (STEPS_PER_BAR * N_VOICES) - 1)
            reward += w.in_scale * terms["in_scale"]
            info["theory"] = terms
        return reward, info
