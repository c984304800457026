"""Each music metric on a hand-made passage whose value is worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from gailkit.data.chorales import HOLD, REST, transpose
from gailkit.generators.music.metrics import (
    METRICS,
    diversity,
    empty_bar_rate,
    estimate_key,
    in_scale_rate,
    metric_distance,
    music_metrics,
    parallel_motion,
    pitch_class_histogram,
    pitch_class_overlap,
    pitch_classes_per_bar,
    polyphony,
    qualified_note_rate,
    tonal_distance,
    voice_crossing_rate,
)

R, H = REST, HOLD


def voices(*rows):
    return np.array(rows, np.int16)


def test_exactly_one_parallel_fifth_in_six_transitions():
    # tenor C4->D4 over bass F3->G3 is the one parallel fifth; the alto holds, so its pairs do not count
    v = voices([76, 77], [72, H], [60, 62], [53, 55])
    assert parallel_motion([v]) == pytest.approx({"parallel_fifths": 100 / 6, "parallel_octaves": 0.0})


def test_parallel_octave_and_no_motion():
    v = voices([72, 74], [R, R], [R, R], [48, 50])
    assert parallel_motion([v]) == {"parallel_fifths": 0.0, "parallel_octaves": 100.0}
    contrary = voices([72, 74], [R, R], [R, R], [48, 46])  # octave to tenth-less: contrary motion
    assert parallel_motion([contrary])["parallel_octaves"] == 0.0


def test_voice_crossing_rate():
    v = voices([60, H], [64, H], [55, H], [48, H])  # alto above soprano at both steps
    assert voice_crossing_rate([v]) == pytest.approx(2 / 6)


def test_empty_bars_polyphony_and_pitch_classes_per_bar():
    v = voices([60, H, H, H, R, R, R, R],
               [R] * 8,
               [60, 64, 60, 67, 55, H, H, H],
               [48, H, H, H, H, H, H, H])
    assert empty_bar_rate([v], steps_per_bar=4) == pytest.approx(3 / 8)  # S bar 2, A bars 1 and 2
    assert polyphony([v]) == pytest.approx((4 + 0 + 8 + 8) / 8)
    # non-empty (voice, bar): S1 {C}, T1 {C, E, G}, T2 {G}, B1 {C}, B2 {C}
    assert pitch_classes_per_bar([v], steps_per_bar=4) == pytest.approx((1 + 3 + 1 + 1 + 1) / 5)


def test_qualified_note_rate_counts_lone_sixteenths_only():
    row = [60, H, H, H, 62, 64, H, H, H, 65, 67, 69, H, H, H]  # 4, 1 (lone), 4, 1+1 (a run), 4
    v = voices(row, [R] * 15, [R] * 15, [R] * 15)
    assert qualified_note_rate([v]) == pytest.approx(5 / 6)


def test_in_scale_rate_with_given_and_estimated_keys():
    v = voices([60, 62, 66, 67], [R] * 4, [R] * 4, [R] * 4)  # C D F# G in C major: F# is out
    assert in_scale_rate([v], keys=[(0, "major")]) == pytest.approx(3 / 4)
    minor = voices([69, 68, 66], [R] * 3, [R] * 3, [R] * 3)  # A G# F# in A minor: G# is the leading tone
    assert in_scale_rate([minor], keys=[(9, "minor")]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one \\(tonic_pc, mode\\) per piece"):
        in_scale_rate([v, v], keys=[(0, "major")])


def test_key_estimate_agrees_with_music21_krumhansl_kessler(chorales):
    from music21 import analysis

    from gailkit.generators.music.output import voices_to_stream

    for c in chorales[:4]:
        k = analysis.discrete.KrumhanslKessler().getSolution(voices_to_stream(c.voices))
        assert estimate_key(c.voices) == (k.tonic.pitchClass, k.mode), c.name
    triad = voices([72, H, 76, H], [67, H, H, H], [64, H, 60, H], [48, H, H, H])
    assert estimate_key(triad) == (0, "major")


def test_tonal_distance_closed_form():
    same = voices([72, H], [60, H], [R, R], [R, R])
    assert tonal_distance([same], steps_per_bar=2) == pytest.approx(0.0)
    fifth = voices([67, H], [60, H], [R, R], [R, R])
    # |e^{i d t} - 1|^2 = 2 - 2 cos(d t) on each circle; d = 7 semitones
    expected = np.sqrt(sum(r * r * (2 - 2 * np.cos(7 * t)) for r, t in
                           ((1, 7 * np.pi / 6), (1, 3 * np.pi / 2), (0.5, 2 * np.pi / 3))))
    assert tonal_distance([fifth], steps_per_bar=2) == pytest.approx(expected)
    tritone = voices([66, H], [60, H], [R, R], [R, R])
    assert tonal_distance([tritone], steps_per_bar=2) > expected  # a fifth is closer than a tritone


def test_pitch_class_histogram_and_overlap(chorales):
    v = voices([60, 60, 67, 64], [R] * 4, [R] * 4, [R] * 4)
    hist = pitch_class_histogram([v], keys=[(0, "major")])
    assert hist[[0, 4, 7]].tolist() == [0.5, 0.25, 0.25] and hist.sum() == pytest.approx(1)
    bach = [c.voices for c in chorales]
    assert pitch_class_overlap(bach, bach) == pytest.approx(1.0)
    # key-relative: a transposed chorale has the same histogram
    assert pitch_class_overlap([transpose(bach[0], 3)], bach[:1]) == pytest.approx(1.0)
    assert pitch_class_overlap([v], bach) < 0.8


def test_bach_scores_like_bach(chorales):
    m = music_metrics([c.voices for c in chorales], reference=[c.voices for c in chorales])
    assert set(m) == set(METRICS)
    assert m["polyphony"] > 3.9 and m["empty_bar_rate"] < 0.05 and m["qualified_note_rate"] > 0.95
    assert m["in_scale_rate"] > 0.85 and m["parallel_fifths"] < 1 and m["voice_crossing_rate"] < 0.05
    keys = [(c.key_tonic_pc, c.key_mode) for c in chorales]
    assert music_metrics([c.voices for c in chorales], keys=keys)["in_scale_rate"] > 0.85


def test_metric_distance_is_absolute_for_rates_and_relative_otherwise():
    assert metric_distance("in_scale_rate", 0.8, 0.9) == pytest.approx(0.1)
    assert metric_distance("polyphony", 3.0, 4.0) == pytest.approx(0.25)


def test_diversity_counts_differing_cells():
    a = voices([72, H, H, H], [67, H, H, H], [64, H, H, H], [48, H, H, H])
    b = voices([72, H, 74, H], [67, H, H, H], [64, H, H, H], [48, H, H, H])  # 2 of 16 cells differ
    assert diversity([a, a]) == 0.0
    assert diversity([a, b]) == pytest.approx(2 / 16)
    assert diversity([a, b, a]) == pytest.approx((2 / 16 + 0 + 2 / 16) / 3)
    assert np.isnan(diversity([a]))
