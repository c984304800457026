import pytest

from gailkit.data.chorales import load_chorales

LIMIT = 8  # the first 8 chorales: 6 train, 2 test (bwv86.6, bwv17.7)


@pytest.fixture(scope="session", autouse=True)
def music21_scratch(tmp_path_factory):
    """Point music21's scratch directory into this session's tmp.

    music21's ``corpus.parse`` caches each parsed file as a pickle in its scratch directory (the
    system temp dir by default) and reads it back later; two test processes parsing the same
    chorale at once read each other's half-written file (``zlib.error``). Here each process has
    its own, and nothing is left outside pytest's tmp.
    """
    from music21 import environment

    env = environment.Environment()
    before = env["directoryScratch"]
    env["directoryScratch"] = str(tmp_path_factory.mktemp("music21"))  # in memory only: no ~/.music21rc write
    yield
    env["directoryScratch"] = before


@pytest.fixture(scope="session")
def chorale_cache(tmp_path_factory):
    """A chorale cache holding the first LIMIT chorales, parsed once per session."""
    return tmp_path_factory.mktemp("chorales")


@pytest.fixture(scope="session")
def chorales(chorale_cache):
    return load_chorales(limit=LIMIT, cache_dir=chorale_cache)


@pytest.fixture(scope="session")
def data_spec(chorales, chorale_cache):
    return f"chorales:limit={LIMIT},cache={chorale_cache}"
