"""Bach's four-part chorales on a sixteenth-note grid, and their token and piano-roll forms.

A chorale is ``voices``: int16 ``(4, T)`` (soprano, alto, tenor, bass), one column per
sixteenth note. A cell holds the MIDI pitch (0..127) where a note starts, :data:`HOLD` where
the note of the previous step sounds on, and :data:`REST` where the voice is silent (every
step of a rest is REST, so a HOLD always follows a pitch or another HOLD). Step 0 is the
score's first beat: a pickup bar is not padded, so in a chorale with an anacrusis the bar
lines do not fall on multiples of ``4 * beats_per_bar``.

The chorales come from the corpus bundled with music21 (no download), are parsed once and
cached as one ``.npz`` per chorale (no pickle) under ``$GAILKIT_CACHE/chorales`` or
``~/.cache/gailkit/chorales``. A damaged cache file is parsed again and rewritten, with a
warning (the cache is derived data: nothing is lost).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from gailkit.errors import UsageError
from gailkit.nn.checkpoint import atomic_write

__all__ = [
    "BOS",
    "EOS",
    "HOLD",
    "N_VOICES",
    "PAD",
    "REST",
    "STEPS_PER_QUARTER",
    "VOCAB_SIZE",
    "VOICE_NAMES",
    "Chorale",
    "chorale_from_score",
    "decode_tokens",
    "encode_tokens",
    "from_pianoroll",
    "load_chorales",
    "split_chorales",
    "to_common_key",
    "to_pianoroll",
    "transpose",
    "validate_voices",
]

HOLD = 128  #: the note of the previous step sounds on
REST = 129  #: silence
BOS = 130  #: token: start of a chorale
EOS = 131  #: token: end of a chorale
PAD = 132  #: token: padding after EOS (never predicted)
VOCAB_SIZE = 133
N_VOICES = 4
VOICE_NAMES = ("soprano", "alto", "tenor", "bass")
STEPS_PER_QUARTER = 4  # the grid is in sixteenth notes
CACHE_VERSION = 1
TEST_EVERY = 5  # a chorale is held out when crc32(name) % TEST_EVERY == 0 (about 20 %)


@dataclasses.dataclass(frozen=True, eq=False)
class Chorale:
    """One chorale (compared by identity: ``==`` on arrays has no single truth value).

    Attributes:
        name: corpus name, e.g. ``"bach/bwv269"``.
        voices: (4, T) int16, read-only (see the module docstring).
        key_tonic_pc: pitch class of the tonic, 0 = C .. 11 = B.
        key_mode: ``"major"`` or ``"minor"``.
        beats_per_bar: numerator of the first time signature.
    """

    name: str
    voices: np.ndarray
    key_tonic_pc: int
    key_mode: str
    beats_per_bar: int

    def __post_init__(self) -> None:
        voices = validate_voices(self.voices, what=self.name or "chorale").copy()
        voices.setflags(write=False)
        object.__setattr__(self, "voices", voices)
        if not 0 <= int(self.key_tonic_pc) < 12:
            raise ValueError(f"{self.name}: key_tonic_pc must be in 0..11, got {self.key_tonic_pc}")
        if self.key_mode not in ("major", "minor"):
            raise ValueError(f"{self.name}: key_mode must be 'major' or 'minor', got {self.key_mode!r}")
        if int(self.beats_per_bar) < 1:
            raise ValueError(f"{self.name}: beats_per_bar must be >= 1, got {self.beats_per_bar}")

    @property
    def steps(self) -> int:
        """Length T in sixteenth notes."""
        return self.voices.shape[1]


def validate_voices(voices: Any, *, what: str = "voices") -> np.ndarray:
    """``voices`` as an int16 (4, T) array, or a ValueError naming what is wrong.

    Checks the shape, that values lie in 0..129 and that no HOLD follows a REST or starts a
    voice (generated music that breaks this is repaired by ``gailkit.generators.music.repair``).
    """
    arr = np.asarray(voices)
    if arr.ndim != 2 or arr.shape[0] != N_VOICES:
        raise ValueError(f"{what}: expected shape (4, T) (soprano, alto, tenor, bass), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what}: expected integer pitches/HOLD/REST, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > REST):
        raise ValueError(f"{what}: values must lie in 0..127 (pitch), {HOLD} (HOLD) or {REST} (REST); "
                         f"found {arr.min()}..{arr.max()}")
    arr = arr.astype(np.int16)
    if arr.shape[1]:
        prev = np.concatenate([np.full((N_VOICES, 1), REST, np.int16), arr[:, :-1]], axis=1)
        bad = (arr == HOLD) & (prev == REST)
        if bad.any():
            v, t = np.argwhere(bad)[0]
            raise ValueError(f"{what}: HOLD with no note to hold in {VOICE_NAMES[v]} at step {t}; a held note "
                             f"must follow its onset pitch (use REST for silence)")
    return arr


# -- parsing ----------------------------------------------------------------------------------


def _part_grid(part: Any, steps: int) -> np.ndarray:
    """One part's notes on the grid; chords keep their highest pitch, grace notes are dropped."""
    grid = np.full(steps, REST, np.int16)
    for n in part.flatten().notes:
        ql = float(n.quarterLength)
        if ql <= 0:
            continue
        start = round(float(n.offset) * STEPS_PER_QUARTER)
        end = max(start + 1, round((float(n.offset) + ql) * STEPS_PER_QUARTER))
        if start >= steps:
            continue
        end = min(end, steps)
        pitch = max(p.midi for p in n.pitches) if n.isChord else n.pitch.midi
        tied_on = n.tie is not None and n.tie.type in ("stop", "continue")
        # a tie continues the note before only if that note really sounds up to here
        grid[start] = HOLD if tied_on and start > 0 and grid[start - 1] != REST else pitch
        tail = grid[start + 1:end]
        tail[tail == REST] = HOLD  # overlapping notes (two voices in one part): the earlier keeps its cells
    return grid


def chorale_from_score(score: Any, *, name: str = "score") -> Chorale:
    """Convert a parsed music21 score of four parts (S, A, T, B) to a :class:`Chorale`.

    The key is music21's estimate (``score.analyze('key')``, a Krumhansl-style profile
    correlation), since MusicXML key signatures carry no mode.

    Raises:
        ValueError: the score does not have exactly four parts.
    """
    parts = list(score.parts)
    if len(parts) != N_VOICES:
        raise ValueError(f"{name}: a chorale needs exactly 4 parts (soprano, alto, tenor, bass), this score "
                         f"has {len(parts)}; pass a four-part score (load_chorales skips the others)")
    steps = int(np.ceil(float(score.highestTime) * STEPS_PER_QUARTER - 1e-6))
    voices = np.stack([_part_grid(p, steps) for p in parts])
    signatures = list(score.recurse().getElementsByClass("TimeSignature"))
    beats = int(signatures[0].numerator) if signatures else 4
    key = score.analyze("key")
    return Chorale(name=name, voices=voices, key_tonic_pc=int(key.tonic.pitchClass), key_mode=str(key.mode),
                   beats_per_bar=beats)


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        base = os.environ.get("GAILKIT_CACHE")
        cache_dir = Path(base) / "chorales" if base else Path.home() / ".cache" / "gailkit" / "chorales"
    return Path(cache_dir) / f"v{CACHE_VERSION}"


def _cache_file(root: Path, name: str) -> Path:
    return root / (name.replace("/", "__") + ".npz")


def _save_cached(path: Path, chorale: Chorale | None, reason: str = "") -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            if chorale is None:  # a skipped score is cached too, so it is not parsed again
                np.savez(f, skipped=np.array(reason))
            else:
                np.savez(f, voices=chorale.voices, key_tonic_pc=np.array(chorale.key_tonic_pc),
                         key_mode=np.array(chorale.key_mode), beats_per_bar=np.array(chorale.beats_per_bar))

    atomic_write(path, write)


def _load_cached(path: Path, name: str) -> Chorale | str | None:
    """The cached chorale, the reason it was skipped, or None if the file is damaged.

    The cache is derived data, so a damaged file (cut short, overwritten, from another
    program) is not an error: the caller parses the chorale again and rewrites the file.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            if "skipped" in z:
                return str(z["skipped"])
            return Chorale(name=name, voices=z["voices"], key_tonic_pc=int(z["key_tonic_pc"]),
                           key_mode=str(z["key_mode"]), beats_per_bar=int(z["beats_per_bar"]))
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error) as e:
        warnings.warn(f"chorale cache: {path} is damaged ({type(e).__name__}: {e}); parsing {name} again "
                      f"and rewriting it", RuntimeWarning, stacklevel=3)
        return None


def corpus_names() -> list[str]:
    """The distinct chorale files of music21's Bach corpus, in Riemenschneider order."""
    from music21 import corpus

    names = corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename")
    return list(dict.fromkeys(str(n) for n in names))


def load_chorales(*, limit: int | None = None, cache_dir: str | os.PathLike | None = None,
                  report: dict[str, Any] | None = None) -> list[Chorale]:
    """The four-part Bach chorales of music21's corpus (parsed once, then read from the cache).

    Args:
        limit: stop after this many chorales (in corpus order); None: all (~330, a cold
            parse takes about a minute).
        cache_dir: where the parsed chorales are kept (see the module docstring).
        report: if given, filled with ``{"skipped": {name: reason}, "duplicates": n}``.

    Returns:
        Chorales with distinct names and distinct music, four parts each; scores with another
        number of parts are skipped (their count is in ``report``).
    """
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be a positive number of chorales or None, got {limit}")
    root = _cache_root(cache_dir)
    out: list[Chorale] = []
    seen: set[bytes] = set()
    skipped: dict[str, str] = {}
    duplicates = 0
    for name in corpus_names():
        if limit is not None and len(out) >= limit:
            break
        path = _cache_file(root, name)
        item = _load_cached(path, name) if path.is_file() else None
        if item is None:
            from music21 import corpus

            try:
                # forceSource: music21 would otherwise read (and write) a pickled copy of the
                # score in its scratch directory; gailkit keeps its own pickle-free cache
                item = chorale_from_score(corpus.parse(name, forceSource=True), name=name)
                _save_cached(path, item)
            except ValueError as e:
                item = str(e)
                _save_cached(path, None, item)
        if isinstance(item, str):
            skipped[name] = item
            continue
        digest = item.voices.tobytes() + str(item.voices.shape).encode()
        if digest in seen:  # the same harmonisation filed under two BWV numbers
            duplicates += 1
            continue
        seen.add(digest)
        out.append(item)
    if report is not None:
        report.update(skipped=skipped, duplicates=duplicates)
    return out


def split_chorales(chorales: list[Chorale], split: str) -> list[Chorale]:
    """The ``"train"``, ``"test"`` or ``"all"`` part, fixed by each chorale's name (not by order)."""
    if split == "all":
        return list(chorales)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    held_out = [zlib.crc32(c.name.encode()) % TEST_EVERY == 0 for c in chorales]
    return [c for c, h in zip(chorales, held_out) if h == (split == "test")]


# -- transforms -------------------------------------------------------------------------------


def transpose(voices: np.ndarray, semitones: int) -> np.ndarray:
    """``voices`` shifted by ``semitones`` (HOLD and REST unchanged).

    Raises:
        ValueError: a pitch would leave 0..127.
    """
    voices = validate_voices(voices)
    pitched = voices < HOLD
    out = voices.copy()
    out[pitched] += int(semitones)
    if pitched.any() and (out[pitched].min() < 0 or out[pitched].max() > 127):
        raise ValueError(f"transposing by {semitones} semitones takes pitches {voices[pitched].min()}.."
                         f"{voices[pitched].max()} outside MIDI 0..127; use a smaller shift")
    return out


def to_common_key(chorale: Chorale) -> Chorale:
    """``chorale`` transposed to C major or A minor (one scale: the white keys) by the
    smallest shift (-6..+5 semitones) that takes its tonic there.

    A common preprocessing for generative models of tonal music: a model that sees every
    piece in one key learns one scale instead of twelve.
    """
    target = 0 if chorale.key_mode == "major" else 9
    shift = (target - int(chorale.key_tonic_pc) + 6) % 12 - 6
    return dataclasses.replace(chorale, voices=transpose(chorale.voices, shift),
                               key_tonic_pc=(int(chorale.key_tonic_pc) + shift) % 12)


# -- tokens -----------------------------------------------------------------------------------


def encode_tokens(voices: np.ndarray) -> np.ndarray:
    """Tokens of a chorale: ``[BOS, S0, A0, T0, B0, S1, A1, ..., B_{T-1}, EOS]``, int64 (4 T + 2,)."""
    voices = validate_voices(voices)
    body = voices.T.reshape(-1).astype(np.int64)  # time-major: step t is tokens 4t..4t+3
    return np.concatenate([[BOS], body, [EOS]]).astype(np.int64)


def decode_tokens(tokens: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_tokens`: (4, T) int16 voices.

    A leading BOS and a trailing EOS (and PADs after it) are optional. Raises ValueError on
    special tokens inside, a length that is not a multiple of 4, or invalid voices.
    """
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if len(tokens) and tokens[0] == BOS:
        tokens = tokens[1:]
    eos = np.flatnonzero(tokens == EOS)
    if len(eos):
        if not np.all(tokens[eos[0] + 1:] == PAD):
            raise ValueError("tokens after EOS must all be PAD")
        tokens = tokens[:eos[0]]
    if len(tokens) and (tokens.min() < 0 or tokens.max() > REST):
        raise ValueError(f"token {tokens[(tokens < 0) | (tokens > REST)][0]} inside a chorale: only pitches "
                         f"0..127, HOLD ({HOLD}) and REST ({REST}) may lie between BOS and EOS")
    if len(tokens) % N_VOICES:
        raise ValueError(f"{len(tokens)} note tokens is not a whole number of 4-voice steps")
    return validate_voices(tokens.reshape(-1, N_VOICES).T, what="decoded tokens")


# -- piano rolls ------------------------------------------------------------------------------


def to_pianoroll(voices: np.ndarray, *, steps_per_bar: int = 16, onsets: bool = False
                 ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Piano roll: bool ``(bars, steps_per_bar, 128, 4)``, True where voice v sounds pitch p.

    The end is padded with silence to whole bars. A roll alone cannot tell a held note
    from the same pitch struck again; with ``onsets=True`` a second array of the same shape
    marks the steps where notes start, and :func:`from_pianoroll` restores ``voices`` exactly.
    """
    voices = validate_voices(voices)
    if steps_per_bar < 1:
        raise ValueError(f"steps_per_bar must be >= 1, got {steps_per_bar}")
    t = voices.shape[1]
    bars = max(1, -(-t // steps_per_bar))
    sounding = voices.copy()
    for step in range(1, t):  # a HOLD sounds the pitch that is held
        held = sounding[:, step] == HOLD
        sounding[held, step] = sounding[held, step - 1]
    roll = np.zeros((bars * steps_per_bar, 128, N_VOICES), bool)
    onset = np.zeros_like(roll)
    vv, tt = np.nonzero(sounding < HOLD)
    roll[tt, sounding[vv, tt], vv] = True
    vv, tt = np.nonzero(voices < HOLD)
    onset[tt, voices[vv, tt], vv] = True
    shape = (bars, steps_per_bar, 128, N_VOICES)
    return (roll.reshape(shape), onset.reshape(shape)) if onsets else roll.reshape(shape)


def from_pianoroll(roll: np.ndarray, onsets: np.ndarray | None = None, *, length: int | None = None
                   ) -> np.ndarray:
    """Voices from a monophonic piano roll (bars, steps, 128, 4) (inverse of :func:`to_pianoroll`).

    Args:
        roll: bool, at most one pitch per voice and step.
        onsets: the onset array of ``to_pianoroll(..., onsets=True)``; without it a note starts
            where its voice's pitch changes or follows a rest (repeated notes merge into one).
        length: keep the first ``length`` steps (drops the padding to whole bars).
    """
    roll = np.asarray(roll, bool)
    if roll.ndim != 4 or roll.shape[2] != 128 or roll.shape[3] != N_VOICES:
        raise ValueError(f"expected a piano roll of shape (bars, steps, 128, 4), got {roll.shape}")
    flat = roll.reshape(-1, 128, N_VOICES)
    if (flat.sum(axis=1) > 1).any():
        raise ValueError("piano roll is not monophonic: a voice sounds two pitches at one step; binarise "
                         "it with one pitch per voice and step first")
    t = flat.shape[0]
    pitch = np.where(flat.any(axis=1), flat.argmax(axis=1), -1).T  # (4, t); -1 silent
    prev = np.concatenate([np.full((N_VOICES, 1), -1), pitch[:, :-1]], axis=1)
    if onsets is not None:
        onsets = np.asarray(onsets, bool).reshape(-1, 128, N_VOICES)
        if onsets.shape != flat.shape:
            raise ValueError(f"onsets shape {onsets.shape} does not match the roll's {flat.shape}")
        struck = onsets.any(axis=1).T | (pitch != prev)
    else:
        struck = pitch != prev
    voices = np.where(pitch < 0, REST, np.where(struck, pitch, HOLD)).astype(np.int16)
    if length is not None:
        if not 0 <= length <= t:
            raise ValueError(f"length {length} outside 0..{t} (the roll's steps)")
        voices = voices[:, :length]
    return validate_voices(voices)
