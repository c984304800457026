"""Chorale data: parsing, cache, split, transposition, token and piano-roll round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gailkit.data.chorales import (
    BOS,
    EOS,
    HOLD,
    PAD,
    REST,
    VOCAB_SIZE,
    chorale_from_score,
    decode_tokens,
    encode_tokens,
    from_pianoroll,
    load_chorales,
    split_chorales,
    to_pianoroll,
    transpose,
    validate_voices,
)
from gailkit.generators.music import load_data, parse_spec

from .conftest import LIMIT


@st.composite
def random_voices(draw, max_steps: int = 40):
    """Valid (4, T) voices: each cell a pitch, REST, or (after a sounding cell) HOLD."""
    t = draw(st.integers(1, max_steps))
    rows = []
    for _ in range(4):
        row = []
        for step in range(t):
            choices = [st.integers(0, 127), st.just(REST)]
            if step and row[-1] != REST:
                choices.append(st.just(HOLD))
            row.append(draw(st.one_of(*choices)))
        rows.append(row)
    return np.array(rows, np.int16)


def test_parsed_chorales_are_sane(chorales, chorale_cache):
    assert len(chorales) == LIMIT
    assert chorales[0].name == "bach/bwv269" and chorales[0].beats_per_bar == 3
    assert (chorales[0].key_tonic_pc, chorales[0].key_mode) == (7, "major")  # G major
    for c in chorales:
        assert c.voices.shape[0] == 4 and c.voices.dtype == np.int16 and c.steps > 64
        assert not c.voices.flags.writeable
        pitched = [row[row < HOLD] for row in c.voices]
        means = [p.mean() for p in pitched]
        assert means == sorted(means, reverse=True)  # soprano above alto above tenor above bass
        assert 36 <= min(p.min() for p in pitched) and max(p.max() for p in pitched) <= 84
        validate_voices(c.voices)
    assert len(list(chorale_cache.glob("v1/*.npz"))) == LIMIT


def test_cache_is_read_back_identically(chorales, chorale_cache):
    again = load_chorales(limit=LIMIT, cache_dir=chorale_cache)
    assert [c.name for c in again] == [c.name for c in chorales]
    for a, b in zip(again, chorales):
        assert np.array_equal(a.voices, b.voices)
        assert (a.key_tonic_pc, a.key_mode, a.beats_per_bar) == (b.key_tonic_pc, b.key_mode, b.beats_per_bar)


def test_split_is_by_name_disjoint_and_stable(chorales, data_spec):
    train, test = split_chorales(chorales, "train"), split_chorales(chorales, "test")
    assert {c.name for c in test} == {"bach/bwv86.6", "bach/bwv17.7"}
    assert len(train) + len(test) == len(chorales) and not {c.name for c in train} & {c.name for c in test}
    # a chorale's side does not depend on which others are loaded with it
    assert [c.name for c in split_chorales(chorales[::-1], "test")] == [c.name for c in test[::-1]]
    assert [c.name for c in load_data(data_spec, split="test")] == [c.name for c in test]
    with pytest.raises(ValueError, match="split must be"):
        split_chorales(chorales, "valid")


def test_data_spec_errors_name_the_fix():
    assert parse_spec("chorales:limit=3,cache=/x") == {"limit": 3, "cache_dir": "/x"}
    with pytest.raises(ValueError, match="unknown music data"):
        parse_spec("midi:foo")
    with pytest.raises(ValueError, match="positive integer"):
        parse_spec("chorales:limit=0")
    with pytest.raises(ValueError, match="bad option"):
        parse_spec("chorales:size=3")


def test_three_part_score_is_refused():
    from music21 import note, stream

    score = stream.Score([stream.Part([note.Note(60 + i, quarterLength=1)]) for i in range(3)])
    with pytest.raises(ValueError, match="exactly 4 parts.*has 3"):
        chorale_from_score(score, name="trio")


def test_ties_and_rests_on_the_grid():
    from music21 import note, stream, tie

    parts = []
    for pitch in (72, 67, 64, 48):
        a, b = note.Note(pitch, quarterLength=1), note.Note(pitch, quarterLength=0.5)
        a.tie, b.tie = tie.Tie("start"), tie.Tie("stop")
        parts.append(stream.Part([a, b, note.Rest(quarterLength=0.25), note.Note(pitch, quarterLength=0.25)]))
    c = chorale_from_score(stream.Score(parts), name="hand")
    assert c.voices[0].tolist() == [72, HOLD, HOLD, HOLD, HOLD, HOLD, REST, 72]


def test_invalid_voices_are_refused():
    with pytest.raises(ValueError, match=r"shape \(4, T\)"):
        validate_voices(np.zeros((3, 5), np.int16))
    with pytest.raises(ValueError, match="0..127"):
        validate_voices(np.full((4, 2), 200))
    bad = np.full((4, 3), 60)
    bad[2, 1:] = [REST, HOLD]
    with pytest.raises(ValueError, match="HOLD with no note to hold in tenor at step 2"):
        validate_voices(bad)


def test_transpose_keeps_hold_and_rest_and_refuses_to_leave_midi():
    v = np.array([[60, HOLD, REST, 62]] * 4, np.int16)
    assert transpose(v, 3).tolist() == [[63, HOLD, REST, 65]] * 4
    assert np.array_equal(transpose(transpose(v, -7), 7), v)
    with pytest.raises(ValueError, match="outside MIDI 0..127"):
        transpose(v, 70)


def test_common_key_moves_the_tonic_to_c_major_or_a_minor_by_the_smallest_shift(chorales):
    from gailkit.data.chorales import to_common_key
    from gailkit.generators.music.metrics import estimate_key

    for c in chorales:
        moved = to_common_key(c)
        assert moved.key_tonic_pc == (0 if c.key_mode == "major" else 9) and moved.key_mode == c.key_mode
        pitched = c.voices < HOLD
        shift = set((moved.voices[pitched].astype(int) - c.voices[pitched]).tolist())
        assert len(shift) == 1 and -6 <= shift.pop() <= 5  # one shift for every note, the smallest one
        assert np.array_equal(moved.voices[~pitched], c.voices[~pitched])
        tonic, mode = estimate_key(c.voices)  # the estimated key moves with the notes
        assert estimate_key(moved.voices) == ((tonic + moved.key_tonic_pc - c.key_tonic_pc) % 12, mode)


def test_tokens_layout_on_a_hand_example():
    v = np.array([[72, HOLD], [67, 69], [64, REST], [48, HOLD]], np.int16)
    assert encode_tokens(v).tolist() == [BOS, 72, 67, 64, 48, HOLD, 69, REST, HOLD, EOS]
    assert VOCAB_SIZE == PAD + 1
    assert np.array_equal(decode_tokens([BOS, 72, 67, 64, 48, HOLD, 69, REST, HOLD, EOS, PAD, PAD]), v)
    with pytest.raises(ValueError, match="whole number of 4-voice steps"):
        decode_tokens([BOS, 72, 67, EOS])
    with pytest.raises(ValueError, match="token 130 inside"):
        decode_tokens([72, 67, BOS, 48])


@settings(max_examples=60, deadline=None)
@given(random_voices())
def test_token_round_trip_is_exact(voices):
    tokens = encode_tokens(voices)
    assert tokens.dtype == np.int64 and len(tokens) == 4 * voices.shape[1] + 2
    assert np.array_equal(decode_tokens(tokens), voices)


@settings(max_examples=60, deadline=None)
@given(random_voices(), st.sampled_from([4, 12, 16]))
def test_pianoroll_round_trip_is_exact(voices, steps_per_bar):
    roll, onsets = to_pianoroll(voices, steps_per_bar=steps_per_bar, onsets=True)
    bars = -(-voices.shape[1] // steps_per_bar)
    assert roll.shape == onsets.shape == (bars, steps_per_bar, 128, 4) and roll.dtype == bool
    assert (roll.sum(axis=2) <= 1).all()
    assert np.array_equal(from_pianoroll(roll, onsets, length=voices.shape[1]), voices)


def test_pianoroll_of_a_chorale_and_onset_convention(chorales):
    v = chorales[0].voices
    roll, onsets = to_pianoroll(v, onsets=True)
    assert np.array_equal(from_pianoroll(roll, onsets, length=v.shape[1]), v)
    assert roll[0, 0, 67, 0] and roll[0, 3, 67, 0] and onsets[0, 0, 67, 0] and not onsets[0, 3, 67, 0]
    # without onsets a re-struck pitch merges with the note before it
    merged = from_pianoroll(roll, length=v.shape[1])
    assert merged[0, 4] == HOLD and v[0, 4] == 67
    with pytest.raises(ValueError, match="not monophonic"):
        from_pianoroll(roll | np.roll(roll, 1, axis=2))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing array"])
def test_a_damaged_cache_file_is_parsed_again_and_rewritten(chorales, chorale_cache, tmp_path, damage):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(chorale_cache, cache)
    victim = sorted(cache.glob("v1/*.npz"))[1]
    raw = victim.read_bytes()
    victim.write_bytes({"truncated": raw[: len(raw) // 2], "garbage": b"\x93NUMPY not really" * 7}.get(damage, b""))
    if damage == "missing array":
        with open(victim, "wb") as f:
            np.savez(f, voices=np.zeros((4, 1), np.int16))  # no key, no time signature
    with pytest.warns(RuntimeWarning, match=f"chorale cache: {victim} is damaged"):
        again = load_chorales(limit=LIMIT, cache_dir=cache)
    assert [c.name for c in again] == [c.name for c in chorales]
    assert all(np.array_equal(a.voices, b.voices) for a, b in zip(again, chorales))
    with np.load(victim, allow_pickle=False) as z:  # rewritten whole: read back without a warning next time
        assert set(z.files) == {"voices", "key_tonic_pc", "key_mode", "beats_per_bar"}


def test_parsing_the_corpus_neither_reads_nor_writes_music21_pickles(tmp_path, monkeypatch):
    """The chorales come from music21's source files; its pickle cache is never touched."""
    from music21 import environment, freezeThaw

    def no_pickles(*args, **kwargs):
        raise AssertionError("music21 unpickled a cached score")

    monkeypatch.setattr(freezeThaw.StreamThawer, "open", no_pickles)
    scratch = Path(environment.Environment()["directoryScratch"])
    before = set(scratch.rglob("*"))
    assert len(load_chorales(limit=2, cache_dir=tmp_path)) == 2
    written = sorted(p.name for p in set(scratch.rglob("*")) - before)
    assert not written, f"music21 wrote {written} into its scratch directory"
