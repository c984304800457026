"""Music metrics on four-voice chorales, computed in gailkit from the (4, T) voices arrays.

Every metric takes a list of voices arrays (see :mod:`gailkit.data.chorales`) and returns one
float pooled over the list. Bars are ``steps_per_bar`` sixteenths (16: a 4/4 bar), the same
for generated music and for Bach, so both are cut alike.

Definitions (the choices are ours where the literature leaves room):

- ``empty_bar_rate``: fraction of (voice, bar) pairs in which the voice is silent throughout
  (MuseGAN's EB per track). Only whole bars count.
- ``pitch_classes_per_bar``: mean number of distinct pitch classes a voice sounds in a bar,
  over non-empty (voice, bar) pairs (MuseGAN's UPC per track).
- ``qualified_note_rate``: fraction of notes that are not fragments. Every note on our grid
  lasts at least a sixteenth (MuseGAN's 32nd-note threshold never bites), so a *fragment* is a
  lone sixteenth: a one-step note whose neighbours in its voice are not one-step notes. Runs
  of sixteenths (Bach's passing figures) and everything an eighth or longer qualify.
- ``polyphony``: mean number of voices sounding per step (4 for a full chorale texture).
- ``in_scale_rate``: fraction of notes whose pitch class lies in the piece's key scale (major;
  or natural minor plus its raised seventh, the leading tone). Keys are estimated with the
  Krumhansl-Kessler profiles (:func:`estimate_key`) unless given.
- ``tonal_distance``: Harte, Sandler & Gasser's tonal-centroid distance between the
  duration-weighted chroma of two voices in a bar, averaged over voice pairs and bars where
  both sound (MuseGAN's TD).
- ``pitch_class_overlap``: overlap ``sum(min(p, q))`` of the key-relative pitch-class histogram
  of the notes with that of ``reference`` (1: identical, 0: disjoint).
- ``parallel_fifths`` / ``parallel_octaves``: per 100 voice-pair transitions (a step where both
  voices of a pair sound before and after and at least one changes pitch), the transitions in
  which both voices move and the interval is a perfect fifth (octave, unison) modulo the
  octave before and after.
- ``voice_crossing_rate``: fraction of steps, over adjacent voice pairs (S-A, A-T, T-B) that
  both sound, where the lower voice is above the upper one.
- ``diversity``: mean, over pairs of pieces (cut to the shorter one), of the fraction of
  (voice, step) cells where they sound different pitches (0: all pieces alike; it exposes a
  collapsed generator that the per-piece metrics above cannot see).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gailkit.data.chorales import HOLD, N_VOICES, validate_voices

__all__ = [
    "METRICS",
    "RATE_METRICS",
    "empty_bar_rate",
    "estimate_key",
    "in_scale_rate",
    "metric_distance",
    "music_metrics",
    "note_list",
    "parallel_motion",
    "pitch_class_histogram",
    "pitch_class_overlap",
    "pitch_classes_per_bar",
    "polyphony",
    "qualified_note_rate",
    "scale_pcs",
    "sounding",
    "tonal_distance",
    "voice_crossing_rate",
]

# Krumhansl & Kessler (1982) key profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor + leading tone

#: metrics that are rates in [0, 1]: their distance to Bach is the absolute difference
RATE_METRICS = ("empty_bar_rate", "qualified_note_rate", "in_scale_rate", "pitch_class_overlap",
                "voice_crossing_rate", "diversity")
METRICS = ("empty_bar_rate", "pitch_classes_per_bar", "qualified_note_rate", "polyphony", "in_scale_rate",
           "tonal_distance", "pitch_class_overlap", "parallel_fifths", "parallel_octaves", "voice_crossing_rate",
           "diversity")

Key = tuple[int, str]


def sounding(voices: np.ndarray) -> np.ndarray:
    """(4, T) int: the MIDI pitch each voice sounds at each step, -1 where silent."""
    voices = validate_voices(voices)
    out = np.where(voices == HOLD, -1, voices).astype(np.int32)
    out[voices > HOLD] = -1
    for t in range(1, voices.shape[1]):
        held = voices[:, t] == HOLD
        out[held, t] = out[held, t - 1]
    return out


def note_list(voices: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Per voice, its notes as ``(start step, duration in steps, pitch)``."""
    voices = validate_voices(voices)
    notes: list[list[tuple[int, int, int]]] = []
    for row in voices:
        starts = np.flatnonzero(row < HOLD)
        ends = []
        for s in starts:
            e = s + 1
            while e < len(row) and row[e] == HOLD:
                e += 1
            ends.append(e)
        notes.append([(int(s), int(e - s), int(row[s])) for s, e in zip(starts, ends)])
    return notes


def _chroma(voices: np.ndarray) -> np.ndarray:
    """(12,) duration-weighted pitch-class histogram of all voices."""
    s = sounding(voices)
    return np.bincount(s[s >= 0] % 12, minlength=12).astype(float)


def estimate_key(voices: np.ndarray) -> Key:
    """``(tonic pitch class, "major"|"minor")`` with the highest correlation of the
    duration-weighted chroma with a rotated Krumhansl-Kessler profile (C major if silent)."""
    chroma = _chroma(voices)
    if chroma.sum() == 0 or chroma.std() == 0:
        return 0, "major"
    best, key = -np.inf, (0, "major")
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = np.corrcoef(chroma, np.roll(profile, tonic))[0, 1]
            if r > best:
                best, key = r, (tonic, mode)
    return key


def scale_pcs(key: Key) -> set[int]:
    """The pitch classes of a key's scale (see ``in_scale_rate``)."""
    tonic, mode = key
    return {(tonic + d) % 12 for d in (MAJOR_SCALE if mode == "major" else MINOR_SCALE)}


def _bars(voices: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """(bars, 4, steps_per_bar) sounding pitches of the whole bars (the one partial bar if none)."""
    s = sounding(voices)
    n = s.shape[1] // steps_per_bar
    if n == 0:
        pad = np.full((N_VOICES, steps_per_bar - s.shape[1]), -1)
        return np.concatenate([s, pad], axis=1)[None]
    return s[:, :n * steps_per_bar].reshape(N_VOICES, n, steps_per_bar).transpose(1, 0, 2)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def empty_bar_rate(pieces: Sequence[np.ndarray], *, steps_per_bar: int = 16) -> float:
    """See the module docstring."""
    bars = [_bars(v, steps_per_bar) for v in pieces]
    empty = sum(int((b < 0).all(axis=2).sum()) for b in bars)
    return _ratio(empty, sum(b.shape[0] * N_VOICES for b in bars))


def pitch_classes_per_bar(pieces: Sequence[np.ndarray], *, steps_per_bar: int = 16) -> float:
    """See the module docstring."""
    counts = []
    for v in pieces:
        for bar in _bars(v, steps_per_bar):
            for row in bar:
                if (row >= 0).any():
                    counts.append(len(np.unique(row[row >= 0] % 12)))
    return float(np.mean(counts)) if counts else float("nan")


def qualified_note_rate(pieces: Sequence[np.ndarray]) -> float:
    """See the module docstring."""
    total = fragments = 0
    for v in pieces:
        for notes in note_list(v):
            short = np.array([d == 1 for _, d, _ in notes], bool)
            if not len(short):
                continue
            # a one-step note touching another one-step note of its voice belongs to a run
            before = np.concatenate([[False], short[:-1]])
            after = np.concatenate([short[1:], [False]])
            starts = np.array([s for s, _, _ in notes])
            ends = starts + np.array([d for _, d, _ in notes])
            before &= np.concatenate([[False], ends[:-1] == starts[1:]])
            after &= np.concatenate([ends[:-1] == starts[1:], [False]])
            fragments += int((short & ~before & ~after).sum())
            total += len(notes)
    return 1.0 - _ratio(fragments, total) if total else float("nan")


def polyphony(pieces: Sequence[np.ndarray]) -> float:
    """See the module docstring."""
    sounding_steps = [(sounding(v) >= 0).sum(axis=0) for v in pieces]
    steps = sum(len(s) for s in sounding_steps)
    return _ratio(sum(int(s.sum()) for s in sounding_steps), steps)


def in_scale_rate(pieces: Sequence[np.ndarray], *, keys: Sequence[Key] | None = None) -> float:
    """See the module docstring; ``keys`` (one per piece) skips the estimate."""
    keys = [estimate_key(v) for v in pieces] if keys is None else list(keys)
    if len(keys) != len(pieces):
        raise ValueError(f"{len(keys)} keys for {len(pieces)} pieces; give one (tonic_pc, mode) per piece")
    inside = total = 0
    for v, key in zip(pieces, keys):
        pcs = validate_voices(v)
        pcs = pcs[pcs < HOLD] % 12
        inside += int(np.isin(pcs, sorted(scale_pcs(key))).sum())
        total += len(pcs)
    return _ratio(inside, total)


def _centroid_basis() -> np.ndarray:
    """(6, 12) Harte et al.'s projection of chroma onto circles of fifths and of thirds."""
    pcs = np.arange(12)
    rows = []
    for radius, angle in ((1.0, 7 * np.pi / 6), (1.0, 3 * np.pi / 2), (0.5, 2 * np.pi / 3)):
        rows += [radius * np.sin(pcs * angle), radius * np.cos(pcs * angle)]
    return np.array(rows)


_PHI = _centroid_basis()


def tonal_distance(pieces: Sequence[np.ndarray], *, steps_per_bar: int = 16) -> float:
    """See the module docstring."""
    dists = []
    for v in pieces:
        for bar in _bars(v, steps_per_bar):  # (4, steps)
            chroma = np.stack([np.bincount(r[r >= 0] % 12, minlength=12) for r in bar]).astype(float)
            mass = chroma.sum(axis=1)
            centroids = (_PHI @ chroma.T).T / np.maximum(mass, 1)[:, None]  # (4, 6)
            for i in range(N_VOICES):
                for j in range(i + 1, N_VOICES):
                    if mass[i] and mass[j]:
                        dists.append(float(np.linalg.norm(centroids[i] - centroids[j])))
    return float(np.mean(dists)) if dists else float("nan")


def pitch_class_histogram(pieces: Sequence[np.ndarray], *, keys: Sequence[Key] | None = None) -> np.ndarray:
    """(12,) normalised histogram of note pitch classes relative to each piece's tonic."""
    keys = [estimate_key(v) for v in pieces] if keys is None else list(keys)
    hist = np.zeros(12)
    for v, (tonic, _) in zip(pieces, keys):
        pcs = validate_voices(v)
        hist += np.bincount((pcs[pcs < HOLD].astype(int) - tonic) % 12, minlength=12)
    return hist / hist.sum() if hist.sum() else hist


def pitch_class_overlap(pieces: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """See the module docstring."""
    return float(np.minimum(pitch_class_histogram(pieces), pitch_class_histogram(reference)).sum())


def parallel_motion(pieces: Sequence[np.ndarray]) -> dict[str, float]:
    """``{"parallel_fifths", "parallel_octaves"}`` per 100 voice-pair transitions."""
    fifths = octaves = transitions = 0
    for v in pieces:
        s = sounding(v)
        for upper in range(N_VOICES):
            for lower in range(upper + 1, N_VOICES):
                a0, a1 = s[upper, :-1], s[upper, 1:]
                b0, b1 = s[lower, :-1], s[lower, 1:]
                both = (a0 >= 0) & (a1 >= 0) & (b0 >= 0) & (b1 >= 0)
                changes = both & ((a0 != a1) | (b0 != b1))
                moves = changes & (a0 != a1) & (b0 != b1) & (np.sign(a1 - a0) == np.sign(b1 - b0))
                i0, i1 = (a0 - b0) % 12, (a1 - b1) % 12
                transitions += int(changes.sum())
                fifths += int((moves & (i0 == 7) & (i1 == 7)).sum())
                octaves += int((moves & (i0 == 0) & (i1 == 0)).sum())
    return {"parallel_fifths": 100 * _ratio(fifths, transitions),
            "parallel_octaves": 100 * _ratio(octaves, transitions)}


def voice_crossing_rate(pieces: Sequence[np.ndarray]) -> float:
    """See the module docstring."""
    crossed = total = 0
    for v in pieces:
        s = sounding(v)
        for upper in range(N_VOICES - 1):
            a, b = s[upper], s[upper + 1]
            both = (a >= 0) & (b >= 0)
            total += int(both.sum())
            crossed += int((both & (b > a)).sum())
    return _ratio(crossed, total)


def diversity(pieces: Sequence[np.ndarray], *, max_pairs: int = 500) -> float:
    """See the module docstring; at most ``max_pairs`` pairs, chosen with a fixed seed."""
    played = [sounding(v) for v in pieces]
    pairs = [(i, j) for i in range(len(played)) for j in range(i + 1, len(played))]
    if not pairs:
        return float("nan")
    if len(pairs) > max_pairs:
        pick = np.random.default_rng(0).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[k] for k in sorted(pick)]
    fractions = []
    for i, j in pairs:
        t = min(played[i].shape[1], played[j].shape[1])
        if t:
            fractions.append(float((played[i][:, :t] != played[j][:, :t]).mean()))
    return float(np.mean(fractions)) if fractions else float("nan")


def music_metrics(pieces: Sequence[np.ndarray], *, reference: Sequence[np.ndarray] | None = None,
                  keys: Sequence[Key] | None = None, steps_per_bar: int = 16) -> dict[str, float]:
    """All metrics of :data:`METRICS` (``pitch_class_overlap`` only with a ``reference``)."""
    pieces = [validate_voices(v) for v in pieces]
    if not pieces:
        raise ValueError("music_metrics needs at least one piece")
    keys = [estimate_key(v) for v in pieces] if keys is None else list(keys)
    out = {
        "empty_bar_rate": empty_bar_rate(pieces, steps_per_bar=steps_per_bar),
        "pitch_classes_per_bar": pitch_classes_per_bar(pieces, steps_per_bar=steps_per_bar),
        "qualified_note_rate": qualified_note_rate(pieces),
        "polyphony": polyphony(pieces),
        "in_scale_rate": in_scale_rate(pieces, keys=keys),
        "tonal_distance": tonal_distance(pieces, steps_per_bar=steps_per_bar),
    }
    if reference is not None:
        out["pitch_class_overlap"] = pitch_class_overlap(pieces, reference)
    out.update(parallel_motion(pieces))
    out["voice_crossing_rate"] = voice_crossing_rate(pieces)
    out["diversity"] = diversity(pieces)
    return out


def metric_distance(name: str, value: float, bach: float) -> float:
    """Distance of a metric to Bach's: absolute for rates, relative to Bach's value otherwise."""
    if name in RATE_METRICS:
        return abs(value - bach)
    return abs(value - bach) / abs(bach) if bach else abs(value - bach)
