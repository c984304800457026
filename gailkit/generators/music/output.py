"""Chorales out of gailkit: music21 scores, MIDI and MusicXML files, piano-roll pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gailkit.data.chorales import N_VOICES, STEPS_PER_QUARTER, VOICE_NAMES, validate_voices
from gailkit.generators.music.metrics import note_list
from gailkit.nn.checkpoint import atomic_write
from gailkit.plots import figure, save_png

__all__ = ["concatenate", "plot_pianoroll", "voices_to_stream", "write_midi", "write_musicxml"]

VOICE_COLOURS = ("tab:red", "tab:orange", "tab:green", "tab:blue")


def voices_to_stream(voices: np.ndarray, *, beats_per_bar: int = 4, bpm: float = 80.0):
    """A ``music21.stream.Score`` with one part per voice (S, A, T, B), notes and rests.

    Args:
        voices: (4, T) chorale voices on the sixteenth grid.
        beats_per_bar: quarter notes per bar (time signature ``beats_per_bar/4``).
        bpm: tempo in quarter notes per minute.
    """
    from music21 import clef, meter, note, stream, tempo

    voices = validate_voices(voices)
    score = stream.Score()
    for v, (name, notes) in enumerate(zip(VOICE_NAMES, note_list(voices))):
        part = stream.Part(id=name)
        part.partName = name.capitalize()
        part.append(clef.TrebleClef() if v < 2 else (clef.Treble8vbClef() if v == 2 else clef.BassClef()))
        part.append(meter.TimeSignature(f"{beats_per_bar}/4"))
        if v == 0:
            part.append(tempo.MetronomeMark(number=bpm))
        t = 0
        for start, dur, pitch in notes:
            if start > t:
                part.append(note.Rest(quarterLength=(start - t) / STEPS_PER_QUARTER))
            n = note.Note(int(pitch))
            n.quarterLength = dur / STEPS_PER_QUARTER
            part.append(n)
            t = start + dur
        if voices.shape[1] > t:
            part.append(note.Rest(quarterLength=(voices.shape[1] - t) / STEPS_PER_QUARTER))
        score.insert(0, part)
    return score


def write_midi(voices: np.ndarray, path: str | Path, **kwargs) -> Path:
    """Write ``voices`` as a standard MIDI file (atomically); kwargs go to :func:`voices_to_stream`."""
    score = voices_to_stream(voices, **kwargs)
    return atomic_write(path, lambda tmp: score.write("midi", fp=tmp))


def write_musicxml(voices: np.ndarray, path: str | Path, **kwargs) -> Path:
    """Write ``voices`` as uncompressed MusicXML (atomically); notes crossing bar lines become ties."""
    score = voices_to_stream(voices, **kwargs)
    return atomic_write(path, lambda tmp: score.write("musicxml", fp=tmp))


def concatenate(pieces: Sequence[np.ndarray], *, gap: int = 16) -> np.ndarray:
    """Pieces one after another with ``gap`` sixteenths of silence between them: (4, sum T + gaps)."""
    from gailkit.data.chorales import REST

    parts = []
    for i, p in enumerate(pieces):
        if i:
            parts.append(np.full((N_VOICES, gap), REST, np.int16))
        parts.append(validate_voices(p))
    return np.concatenate(parts, axis=1) if parts else np.zeros((N_VOICES, 0), np.int16)


def plot_pianoroll(pieces: Sequence[np.ndarray], path: str | Path, *, steps_per_bar: int = 16,
                   titles: Sequence[str] | None = None) -> Path:
    """A piano-roll PNG: one panel per piece, one colour per voice, bar lines, written atomically."""
    from matplotlib.patches import Patch

    pieces = [validate_voices(p) for p in pieces]
    if not pieces:
        raise ValueError("plot_pianoroll needs at least one piece")
    longest = max(p.shape[1] for p in pieces)
    fig = figure(figsize=(min(16, 4 + longest / 8), 2.6 * len(pieces)), dpi=100)
    axes = fig.subplots(len(pieces), 1, squeeze=False)
    for i, (ax, piece) in enumerate(zip(axes[:, 0], pieces)):
        lo, hi = 127, 0
        for v, notes in enumerate(note_list(piece)):
            for start, dur, pitch in notes:
                ax.broken_barh([(start, dur)], (pitch - 0.4, 0.8), facecolors=VOICE_COLOURS[v],
                               edgecolors="black", linewidth=0.3)
                lo, hi = min(lo, pitch), max(hi, pitch)
        for bar in range(0, piece.shape[1] + 1, steps_per_bar):
            ax.axvline(bar, color="grey", linewidth=0.5, zorder=0)
        ax.set_xlim(0, max(1, piece.shape[1]))
        ax.set_ylim((lo - 2, hi + 2) if hi >= lo else (40, 80))
        ax.set_ylabel("MIDI pitch")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    axes[-1, 0].set_xlabel("sixteenth notes")
    axes[0, 0].legend(handles=[Patch(color=c, label=n) for c, n in zip(VOICE_COLOURS, VOICE_NAMES)],
                      loc="upper right", fontsize=7, ncol=4)
    fig.tight_layout()
    return save_png(fig, path)
