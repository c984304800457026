"""MIDI, MusicXML and piano-roll files, re-read by music21 to the same notes."""

from __future__ import annotations

import numpy as np
import pytest

from gailkit.data.chorales import HOLD, REST, chorale_from_score
from gailkit.generators.music.output import concatenate, plot_pianoroll, write_midi, write_musicxml

H, R = HOLD, REST
# a repeated pitch, a rest, a note held across the bar line (step 16) and a sixteenth
HAND = np.array([
    [72, H, H, H, 72, H, H, H, 74, H, H, H, 76, H, H, H, H, H, H, H, 74, 72, H, H],
    [67, H, H, H, R, R, R, R, 67, H, H, H, 67, H, 69, H, 71, H, H, H, 67, H, H, H],
    [64, H, H, H, 64, H, H, H, 62, H, H, H, 60, H, H, H, 62, H, H, H, 64, H, H, H],
    [48, H, H, H, 52, H, H, H, 55, H, H, H, 57, H, H, H, H, H, H, H, 48, H, H, H],
], np.int16)


def _reparse(path):
    from music21 import converter

    return chorale_from_score(converter.parse(str(path)), name=path.name).voices


@pytest.mark.parametrize("writer,suffix", [(write_midi, ".mid"), (write_musicxml, ".musicxml")])
def test_files_reparse_to_the_same_notes(tmp_path, chorales, writer, suffix):
    for i, v in enumerate([HAND, chorales[1].voices[:, :64]]):
        path = writer(v, tmp_path / f"piece{i}{suffix}")
        assert path.stat().st_size > 0 and not list(tmp_path.glob(".*tmp"))
        back = _reparse(path)  # MIDI import fills the last bar with rests
        assert np.array_equal(back[:, :v.shape[1]], v) and (back[:, v.shape[1]:] == REST).all()


def test_concatenate_and_pianoroll_png(tmp_path):
    both = concatenate([HAND, HAND[:, :8]], gap=4)
    assert both.shape == (4, 24 + 4 + 8) and (both[:, 24:28] == REST).all()
    path = plot_pianoroll([HAND, both], tmp_path / "roll.png", titles=["a", "b"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one piece"):
        plot_pianoroll([], tmp_path / "none.png")
