"""What the music models share: data checks, repair of generated voices, evaluation, sample files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gailkit.data.chorales import HOLD, N_VOICES, REST, Chorale
from gailkit.errors import UsageError
from gailkit.generators.music.metrics import METRICS, metric_distance, music_metrics

__all__ = [
    "MusicSamplesMixin",
    "bach_windows",
    "check_chorales",
    "evaluate_against_bach",
    "repair_voices",
    "tokens_to_voices",
]


def check_chorales(data: Any, *, what: str) -> list[Chorale]:
    """``data`` as a non-empty list of :class:`Chorale`, or a ValueError that says what to pass."""
    if isinstance(data, Chorale):
        data = [data]
    if not isinstance(data, Sequence) or not data or not all(isinstance(c, Chorale) for c in data):
        raise UsageError(f"{what} takes a non-empty list of gailkit.data.chorales.Chorale (from load_chorales or "
                         f"load_family_data('music', 'chorales:limit=20')), got {type(data).__name__}")
    return list(data)


def repair_voices(voices: np.ndarray) -> np.ndarray:
    """Make generated voices valid, deterministically: values outside 0..129 become REST and a
    HOLD with no note to hold (at the start or after a REST) becomes REST.

    Returns:
        (4, T) int16 voices that pass :func:`gailkit.data.chorales.validate_voices`.
    """
    arr = np.asarray(voices).astype(np.int64)
    if arr.ndim != 2 or arr.shape[0] != N_VOICES:
        raise ValueError(f"expected shape (4, T), got {arr.shape}")
    arr = np.where((arr < 0) | (arr > REST), REST, arr)
    for t in range(arr.shape[1]):
        orphan = (arr[:, t] == HOLD) & ((arr[:, t - 1] == REST) if t else True)
        arr[orphan, t] = REST
    return arr.astype(np.int16)


def tokens_to_voices(tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    """Voices from any token sequence a model or a policy produced (lenient :func:`decode_tokens`).

    A leading BOS is dropped, everything from the first EOS or PAD on is dropped, an
    incomplete last step is dropped, other special tokens inside become REST, and
    :func:`repair_voices` fixes orphan HOLDs.
    """
    from gailkit.data.chorales import BOS, EOS, PAD

    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if len(tokens) and tokens[0] == BOS:
        tokens = tokens[1:]
    stops = np.flatnonzero((tokens == EOS) | (tokens == PAD))
    if len(stops):
        tokens = tokens[:stops[0]]
    tokens = tokens[:len(tokens) - len(tokens) % N_VOICES]
    return repair_voices(tokens.reshape(-1, N_VOICES).T)


def bach_windows(chorales: Sequence[Chorale], length: int) -> list[np.ndarray]:
    """Non-overlapping (4, length) windows of each chorale (a chorale shorter than ``length``
    whole); a window that opens inside a held note strikes it instead."""
    from gailkit.generators.music.metrics import sounding

    out = []
    for c in chorales:
        if c.steps <= length:
            out.append(np.array(c.voices))
            continue
        struck = sounding(c.voices)
        for start in range(0, c.steps - length + 1, length):
            w = c.voices[:, start:start + length].copy()
            held = w[:, 0] == HOLD
            w[held, 0] = struck[held, start]
            out.append(w)
    return out


def evaluate_against_bach(generated: Sequence[np.ndarray], held_out: Sequence[Chorale]) -> dict[str, float]:
    """Metrics of ``generated`` beside held-out Bach, and the distance of each to Bach.

    Keys: ``m`` (generated), ``bach_m`` (held-out chorales, cut into windows as long as the
    generated pieces when these share one length: :func:`bach_windows`) and ``dist_m``
    (:func:`~gailkit.generators.music.metrics.metric_distance`) for every metric ``m``. Bach's
    ``pitch_class_overlap`` compares the two halves of the held-out windows with each other (the
    agreement one can expect between Bach and Bach).
    """
    lengths = {np.shape(g)[1] for g in generated}
    # Bach is cut to the generated length, so that keys are estimated (and bars counted) over
    # stretches of the same size: a whole chorale modulates, a short fragment rarely does.
    bach = bach_windows(held_out, lengths.pop()) if len(lengths) == 1 else [c.voices for c in held_out]
    gen = music_metrics(generated, reference=bach)
    half = max(1, len(bach) // 2)
    ref = music_metrics(bach, reference=bach[half:] or bach)
    if len(bach) > 1:
        ref["pitch_class_overlap"] = music_metrics(bach[:half], reference=bach[half:])["pitch_class_overlap"]
    out: dict[str, float] = {}
    for m in METRICS:
        out[m] = float(gen[m])
        out[f"bach_{m}"] = float(ref[m])
        out[f"dist_{m}"] = float(metric_distance(m, gen[m], ref[m]))
    return out


class MusicSamplesMixin:
    """``save_samples`` and ``evaluate`` for a generator whose ``sample(n, seed=...)`` returns a
    list of (4, T) voices arrays."""

    eval_samples: int = 32

    def save_samples(self, path: str | Path, *, n: int = 4, seed: int = 0, title: str | None = None) -> Path | None:
        """Write ``n`` samples: ``path`` with suffix ``.mid`` (one after another, a bar of
        silence between them), ``.png`` (a piano roll of the first four, panels titled
        ``title``, default ``family/name``) and, if ``path`` ends in ``.musicxml``, MusicXML;
        returns ``path``."""
        from gailkit.generators.music.output import concatenate, plot_pianoroll, write_midi

        path = Path(path)
        pieces = self.sample(n, seed=seed)
        write_midi(concatenate(pieces), path.with_suffix(".mid"))
        if path.suffix == ".musicxml":
            from gailkit.generators.music.output import write_musicxml

            write_musicxml(concatenate(pieces), path)
        plot_pianoroll(pieces[:4], path.with_suffix(".png"),
                       titles=[f"{title or f'{self.family}/{self.name}'} sample {i} (seed {seed})"
                               for i in range(min(4, n))])
        return path

    def evaluate(self, data: Any, *, n: int | None = None, seed: int = 0, **kwargs: Any) -> dict[str, float]:
        """Music metrics of ``n`` samples beside the held-out chorales ``data`` (see
        :func:`evaluate_against_bach`), plus model-specific scores from ``_extra_scores``."""
        held_out = check_chorales(data, what=f"{self.family}/{self.name}.evaluate")
        self._require_built("evaluate")
        out = evaluate_against_bach(self.sample(n or self.eval_samples, seed=seed), held_out)
        out.update(self._extra_scores(held_out))
        return out

    def _extra_scores(self, held_out: list[Chorale]) -> dict[str, float]:
        return {}
