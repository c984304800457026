"""Fuzzing the demonstration loader: a damaged or hostile file gives DemoFormatError, never
another exception, and never data that differs from what was saved.

Three families of damage: byte flips anywhere in the archive, truncation at any length, and
structural mutations (arrays dropped, added, or replaced by arrays of other dtypes, shapes and
values). Hypothesis runs derandomised and without its example database, so the test is the
same on every machine and writes nothing outside tmp_path.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gailkit.data import Trajectory, load_demos, save_demos
from gailkit.data.demos import DemoFormatError

FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = gym.spaces.Discrete(2)


def _episodes() -> list[Trajectory]:
    rng = np.random.default_rng(0)
    return [Trajectory(rng.normal(size=(n + 1, 3)).astype(np.float32), rng.integers(0, 2, n),
                       rng.normal(size=n).astype(np.float32), terminal=bool(i % 2))
            for i, n in enumerate((5, 3, 7))]


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[bytes, dict[str, np.ndarray]]:
    """A valid file's bytes and its arrays as written."""
    path = save_demos(tmp_path_factory.mktemp("fuzz") / "valid.npz", _episodes(), env_id="Fuzz-v0",
                      observation_space=OBS_SPACE, action_space=ACT_SPACE, metadata={"note": "fuzz"})
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return path.read_bytes(), arrays


def _same_as_saved(demos) -> bool:
    original = _episodes()
    return (demos.env_id == "Fuzz-v0" and len(demos) == len(original)
            and demos.observation_space == OBS_SPACE and demos.action_space == ACT_SPACE
            and all(np.array_equal(a.obs, b.obs) and np.array_equal(a.acts, b.acts)
                    and np.array_equal(a.rews, b.rews) and a.terminal == b.terminal
                    and a.obs.dtype == b.obs.dtype for a, b in zip(demos.trajectories, original)))


def _load(tmp_path, blob: bytes, outcomes: Counter):
    path = tmp_path / "damaged.npz"
    path.write_bytes(blob)
    try:
        demos = load_demos(path)
    except DemoFormatError:
        outcomes["refused"] += 1
        return None
    outcomes["loaded"] += 1
    return demos


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4))
def test_byte_flips_are_refused_or_harmless(tmp_path, valid, flips):
    blob, _ = valid
    damaged = bytearray(blob)
    for position, mask in flips:
        damaged[position % len(damaged)] ^= mask
    demos = _load(tmp_path, bytes(damaged), Counter())
    assert demos is None or _same_as_saved(demos), f"flips {flips} changed the data silently"


@FUZZ
@given(keep=st.floats(0, 1, exclude_max=True))
def test_truncations_are_refused(tmp_path, valid, keep):
    blob, _ = valid
    demos = _load(tmp_path, blob[: int(keep * len(blob))], Counter())
    assert demos is None, f"a file cut to {int(keep * len(blob))} of {len(blob)} bytes loaded"


_WEIRD = st.sampled_from([
    np.array(["yes", "no", "yes"]), np.array([1 + 2j, 3j]), np.array([1, 2], dtype="timedelta64[s]"),
    np.array([True, False, True]), np.array([np.nan, 1.0]), np.array(1.5), np.array(-1), np.array(0),
    np.array([[1, 2], [3, 4]]), np.zeros((0,)), np.array([5, 3, 7], dtype=np.float64), np.array([5, 3, 7, 1]),
    np.array([5, -3, 7]), np.array([2**62, 2**62, 2**62]), np.array([True, False, True, False]),
    np.array('{"env_id": 3}'), np.array("not json"), np.array("[]"), np.zeros((18, 3), np.complex64),
    np.zeros((18, 3), bool), np.zeros((15,), "datetime64[D]"), np.array([1, 0, 1], dtype=np.int8),
    np.zeros((18, 3), np.float32), np.zeros(15, np.int64), np.full(15, 7), np.array([b"a", b"b"]),
])


@FUZZ
@given(drop=st.sets(st.sampled_from(["schema_version", "meta_json", "obs", "acts", "rews", "lengths", "terminal"]),
                    max_size=2),
       replace=st.dictionaries(st.sampled_from(["schema_version", "meta_json", "obs", "acts", "rews", "lengths",
                                                "terminal", "extra"]), _WEIRD, max_size=2))
def test_structural_mutations_are_refused_or_valid(tmp_path, valid, drop, replace):
    _, arrays = valid
    mutated = {k: v for k, v in arrays.items() if k not in drop} | replace
    buffer = io.BytesIO()
    np.savez(buffer, **mutated)
    demos = _load(tmp_path, buffer.getvalue(), Counter())
    if demos is not None:  # whatever loads is consistent: episodes of the recorded spaces
        assert sum(len(t) for t in demos.trajectories) == demos.n_steps
        for t in demos.trajectories:
            assert t.obs.shape[1:] == demos.observation_space.shape and t.obs.dtype.kind in "fiu"
            assert isinstance(t.terminal, bool)


def test_pickled_members_are_never_unpickled(tmp_path, valid):
    """An object array whose unpickling would run code is refused before it is read."""
    _, arrays = valid
    ran = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(ran), "w"))

    path = tmp_path / "evil.npz"
    np.savez(path, **{**arrays, "obs": np.array([Payload()], dtype=object)})
    with pytest.raises(DemoFormatError, match="pickled"):
        load_demos(path)
    assert not ran.exists()


def test_counts_of_a_seeded_sweep(tmp_path, valid):
    """Every single-byte flip of the file's first 4 KiB: how many are refused, how many are
    harmless (zip metadata such as timestamps); none changes the data."""
    blob, _ = valid
    outcomes: Counter = Counter()
    for position in range(min(len(blob), 4096)):
        damaged = bytearray(blob)
        damaged[position] ^= 0x5A
        demos = _load(tmp_path, bytes(damaged), outcomes)
        assert demos is None or _same_as_saved(demos), f"flip at byte {position} changed the data silently"
    print(f"single-byte flips: {dict(outcomes)}")
    assert outcomes["refused"] > outcomes["loaded"], f"most flips should be refused: {dict(outcomes)}"


def test_meta_json_that_is_valid_json_but_not_a_description(tmp_path, valid):
    _, arrays = valid
    for meta in ({"env_id": "X"}, {"env_id": "X", "observation_space": {"type": "Box", "shape": "abc"},
                                   "action_space": {"type": "Discrete", "n": 2}}, [1, 2], 7):
        path = tmp_path / "m.npz"
        np.savez(path, **{**arrays, "meta_json": np.array(json.dumps(meta))})
        with pytest.raises(DemoFormatError, match="metadata"):
            load_demos(path)


def test_members_are_checked_against_the_zip_crc(tmp_path, valid):
    """A member whose bytes changed but whose header still parses is caught by the CRC."""
    _, arrays = valid
    path = tmp_path / "stored.npz"
    np.savez(path, **arrays)  # stored, not deflated: the array bytes lie in the file as they are
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("obs.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 4  # inside the data
    blob[start] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(DemoFormatError, match="corrupt|CRC"):
        load_demos(path)


def test_a_member_flagged_as_encrypted_is_refused(tmp_path, valid):
    """One flipped flag bit makes zipfile ask for a password (a RuntimeError inside zipfile)."""
    blob = bytearray(valid[0])
    entry = blob.find(b"PK\x01\x02")  # the first central-directory entry
    blob[entry + 8] |= 0x01  # its general-purpose flags: bit 0, "encrypted"
    assert _load(tmp_path, bytes(blob), Counter()) is None
