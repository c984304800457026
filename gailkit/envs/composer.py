"""``gailkit/ChoraleComposer-v0``: write a four-part chorale token by token, rewarded by a critic.

The agent writes the chorale tokens of :mod:`gailkit.data.chorales` in their time-major order
(soprano, alto, tenor, bass for each sixteenth step). An episode is ``n_bars`` bars of 16
sixteenths, ``64 * n_bars`` tokens, and always ends (``terminated``) after the last one.

Invalid tokens are *penalised and repaired*, deterministically: a ``HOLD`` for a voice that has
no sounding note (at the start, or after a ``REST``) and the specials ``BOS`` / ``EOS`` / ``PAD``
are written as ``REST`` and cost ``invalid_penalty``. ``info["action_mask"]`` (``(VOCAB_SIZE,)``
int8, 1 = valid) says which tokens are valid next, for agents that mask their logits.

Reward, all terms with weights as options (0 switches a term off):

* music-theory terms (:func:`theory_terms`): penalties per parallel fifth / octave, per
  voice-step of crossing voices, out of a voice's range, or resting, paid on the token that
  completes the sixteenth step where they happen; and at the end of every bar, the share of the
  bar's note onsets in the key's scale (the key given, or estimated from the notes written so
  far by Krumhansl-Kessler profile correlation). A bar's terms are in ``info["theory"]``;
* at the end of the episode, ``disc_weight * log D(voices)`` from a reward model (the GAIL
  idea applied to composition, as in SeqGAN): any object with ``score(voices (B, 4, T)) ->
  (B,)`` or a directory saved by
  :class:`gailkit.generators.music.composer_disc.ChoraleDiscriminator`. Without one the reward
  is theory-only, which is what ``check_env`` sees.

:class:`ComposerState` is the whole game on a batch of ``B`` pieces written in lockstep; the
env is that state with ``B = 1``, and the PPO fine-tuning in
:mod:`gailkit.generators.music.composer` steps the same class with ``B`` in the hundreds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from gailkit.data.chorales import BOS, HOLD, PAD, REST, VOCAB_SIZE

__all__ = [
    "STEPS_PER_BAR",
    "VOICE_RANGES",
    "ChoraleComposerEnv",
    "ComposerState",
    "RewardModel",
    "TheoryWeights",
    "estimate_key",
    "load_reward_model",
    "sounding_pitches",
    "theory_terms",
]

STEPS_PER_BAR = 16
N_VOICES = 4
MAX_BARS = 16  # the registered time limit is this many bars of tokens
# Inclusive MIDI ranges (soprano, alto, tenor, bass), a little wider than the textbook ones
# because Bach's chorales are.
VOICE_RANGES = np.array([[59, 81], [53, 77], [47, 71], [36, 64]], dtype=np.int64)
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR_SCALE = np.array([0, 2, 3, 5, 7, 8, 10, 11])  # natural minor plus the leading tone
_PITCH_CLASSES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


class RewardModel(Protocol):
    """What the env needs of a critic: a score per piece, higher = more like Bach."""

    def score(self, voices: np.ndarray) -> np.ndarray:
        """``(B, 4, T)`` int voices -> ``(B,)`` float reward (e.g. ``log D``)."""
        ...


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
                raise ValueError(f"TheoryWeights.{f.name} must be a finite number >= 0, got {getattr(self, f.name)}")


def _scale_mask(tonic_pc: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """``(B,)`` tonic pitch classes and minor flags -> ``(B, 12)`` bool: pitch class in scale."""
    major = np.zeros(12, bool)
    major[_MAJOR_SCALE] = True
    minor_m = np.zeros(12, bool)
    minor_m[_MINOR_SCALE] = True
    base = np.where(minor[:, None], minor_m[None], major[None])  # (B, 12) relative to the tonic
    idx = (np.arange(12)[None, :] - tonic_pc[:, None]) % 12
    return np.take_along_axis(base, idx, axis=1)


def estimate_key(histogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Krumhansl-Kessler key finding: correlate a pitch-class histogram with the 24 key profiles.

    Args:
        histogram: ``(B, 12)`` non-negative weights per pitch class (e.g. sixteenths sounding).

    Returns:
        ``(tonic_pc (B,) int, minor (B,) bool)``; an empty histogram gives C major.
    """
    h = np.asarray(histogram, dtype=np.float64)
    profiles = np.stack([np.roll(p, k) for p in (_MAJOR_PROFILE, _MINOR_PROFILE) for k in range(12)])  # (24, 12)
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
        raise ValueError(f"key {key!r} is not understood; write it like 'C major', 'F# minor' or 'Bb major', "
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


class ComposerState:
    """``B`` pieces of ``n_bars`` bars written in lockstep, one token per call to :meth:`step`.

    Attributes:
        tokens: ``(B, L)`` int64, the tokens written so far, ``PAD`` after ``position``.
        position: number of tokens written (the same for every piece).
    """

    def __init__(self, batch: int, *, n_bars: int = 2, weights: TheoryWeights = TheoryWeights(),
                 key: str | None = None, invalid_penalty: float = 1.0) -> None:
        if not 1 <= n_bars <= MAX_BARS:
            raise ValueError(f"n_bars must be in 1..{MAX_BARS}, got {n_bars}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.batch, self.n_bars, self.weights, self.invalid_penalty = batch, n_bars, weights, float(invalid_penalty)
        self.n_steps = n_bars * STEPS_PER_BAR
        self.length = self.n_steps * N_VOICES
        self.fixed_key = None if key is None else parse_key(key)
        self.reset()

    def reset(self) -> None:
        self.tokens = np.full((self.batch, self.length), PAD, dtype=np.int64)
        self.pitch = np.full((self.batch, N_VOICES, self.n_steps), -1, dtype=np.int64)  # sounding pitch
        self.onset = np.zeros((self.batch, N_VOICES, self.n_steps), dtype=bool)
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= self.length

    def action_mask(self) -> np.ndarray:
        """``(B, VOCAB_SIZE)`` bool: the tokens that are valid next."""
        mask = np.zeros((self.batch, VOCAB_SIZE), dtype=bool)
        if self.done:
            return mask
        mask[:, :HOLD] = True
        mask[:, REST] = True
        step, voice = divmod(self.position, N_VOICES)
        mask[:, HOLD] = self.pitch[:, voice, step - 1] >= 0 if step > 0 else False
        return mask

    def voices(self) -> np.ndarray:
        """``(B, 4, n_steps)`` int16 voices of what is written so far (PAD where not yet)."""
        return self.tokens.reshape(self.batch, self.n_steps, N_VOICES).transpose(0, 2, 1).astype(np.int16)

    def key_scale(self) -> np.ndarray:
        """``(B, 12)`` bool scale of the fixed key, or of the key estimated from the notes so far."""
        if self.fixed_key is not None:
            tonic, minor = self.fixed_key
            return _scale_mask(np.full(self.batch, tonic), np.full(self.batch, minor))
        end = self.position // N_VOICES
        p = self.pitch[:, :, :end].reshape(self.batch, -1)
        hist = np.zeros((self.batch, 12))
        rows, cols = np.nonzero(p >= 0)
        np.add.at(hist, (rows, p[rows, cols] % 12), 1.0)
        return _scale_mask(*estimate_key(hist))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Write one token per piece.

        Args:
            actions: ``(B,)`` token ids.

        Returns:
            ``(B,)`` float64 reward (invalid-token penalty; the step's parallel, crossing, range and
            rest penalties when this token completes a step; the in-scale share when it completes
            a bar) and a dict with ``invalid`` ``(B,)`` bool and, at a bar end, the bar's terms.
        """
        if self.done:
            raise RuntimeError("the pieces are complete; call reset() first")
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        if actions.shape != (self.batch,):
            raise ValueError(f"expected {self.batch} actions, got shape {actions.shape}")
        valid = self.action_mask()[np.arange(self.batch), np.clip(actions, 0, VOCAB_SIZE - 1)]
        valid &= (actions >= 0) & (actions < VOCAB_SIZE)
        written = np.where(valid, actions, REST)
        step, voice = divmod(self.position, N_VOICES)
        self.tokens[:, self.position] = written
        held = self.pitch[:, voice, step - 1] if step > 0 else np.full(self.batch, -1)
        self.pitch[:, voice, step] = np.where(written < HOLD, written, np.where(written == HOLD, held, -1))
        self.onset[:, voice, step] = written < HOLD
        self.position += 1
        reward = -self.invalid_penalty * (~valid)
        info: dict[str, Any] = {"invalid": ~valid}
        w = self.weights
        if voice == N_VOICES - 1:  # a step is complete: its penalties are paid now (denser credit)
            s = slice(step, step + 1)
            prev = self.pitch[:, :, step - 1] if step > 0 else None
            t = theory_terms(self.pitch[:, :, s], self.onset[:, :, s], prev, np.ones((self.batch, 12), bool))
            reward = reward - (w.parallel * t["parallel"] + w.crossing * t["crossing"]
                               + w.out_of_range * t["out_of_range"] + w.rest * t["rest"])
        if self.position % (STEPS_PER_BAR * N_VOICES) == 0:
            terms = self.bar_terms(self.position // (STEPS_PER_BAR * N_VOICES) - 1)
            reward = reward + w.in_scale * terms["in_scale"]
            info["theory"] = terms
        return reward.astype(np.float64), info

    def bar_terms(self, bar: int) -> dict[str, np.ndarray]:
        """:func:`theory_terms` of bar ``bar`` (0-based), which must be written."""
        s = slice(bar * STEPS_PER_BAR, (bar + 1) * STEPS_PER_BAR)
        prev = self.pitch[:, :, s.start - 1] if bar > 0 else None
        return theory_terms(self.pitch[:, :, s], self.onset[:, :, s], prev, self.key_scale())


def load_reward_model(reward_model: Any) -> RewardModel | None:
    """None, an object with ``score``, or a directory saved by ``ChoraleDiscriminator.save``."""
    if reward_model is None or hasattr(reward_model, "score"):
        return reward_model
    if isinstance(reward_model, (str, Path)):
        from gailkit.generators.music.composer_disc import ChoraleDiscriminator

        return ChoraleDiscriminator.load(reward_model)
    raise TypeError(f"reward_model must be None, a directory or an object with score(voices), "
                    f"got {type(reward_model).__name__}")


class ChoraleComposerEnv(gym.Env):
    """Compose ``n_bars`` bars of a four-part chorale, one token per step (see the module doc).

    Observation: ``{"tokens": (1 + L,) int64`` = ``BOS`` then the tokens written, ``PAD`` after;
    ``"position": Discrete(L + 1)}`` = tokens written. Action: ``Discrete(VOCAB_SIZE)``.

    Args:
        n_bars: bars per episode (``L = 64 * n_bars`` tokens).
        reward_model: critic for the episode-end reward: None (theory only), an object with
            ``score(voices (B, 4, T)) -> (B,)``, or a ``ChoraleDiscriminator`` directory.
        disc_weight: weight of the critic's score.
        key: ``"C major"``-style key for the in-scale term, or None to estimate it from the notes.
        invalid_penalty: reward for an invalid token (written as ``REST``) is ``-invalid_penalty``.
        in_scale, parallel, crossing, out_of_range, rest: :class:`TheoryWeights`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, *, n_bars: int = 2, reward_model: Any = None, disc_weight: float = 1.0,
                 key: str | None = None, invalid_penalty: float = 1.0, in_scale: float = 1.0,
                 parallel: float = 0.5, crossing: float = 0.05, out_of_range: float = 0.02,
                 rest: float = 0.02) -> None:
        weights = TheoryWeights(in_scale=in_scale, parallel=parallel, crossing=crossing,
                                out_of_range=out_of_range, rest=rest)
        self.state = ComposerState(1, n_bars=n_bars, weights=weights, key=key, invalid_penalty=invalid_penalty)
        self.reward_model = load_reward_model(reward_model)
        self.disc_weight = float(disc_weight)
        length = self.state.length
        self.observation_space = gym.spaces.Dict({
            "tokens": gym.spaces.Box(0, VOCAB_SIZE - 1, shape=(1 + length,), dtype=np.int64),
            "position": gym.spaces.Discrete(length + 1),
        })
        self.action_space = gym.spaces.Discrete(VOCAB_SIZE)

    def _obs(self) -> dict[str, Any]:
        return {"tokens": np.concatenate([[BOS], self.state.tokens[0]]).astype(np.int64),
                "position": int(self.state.position)}

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self.state.action_mask()[0].astype(np.int8)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)  # the game itself has no randomness
        self.state.reset()
        return self._obs(), self._info()

    def step(self, action):
        reward, extra = self.state.step(np.array([int(action)]))
        info = self._info() | {"invalid": bool(extra["invalid"][0])}
        if "theory" in extra:
            info["theory"] = {k: float(v[0]) for k, v in extra["theory"].items()}
        r = float(reward[0])
        if self.state.done:
            if self.reward_model is not None and self.disc_weight != 0:
                score = float(np.asarray(self.reward_model.score(self.state.voices()))[0])
                info["disc_score"] = score
                r += self.disc_weight * score
            info["voices"] = self.state.voices()[0]
        return self._obs(), r, self.state.done, False, info

