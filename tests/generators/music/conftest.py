import pytest

from gailkit.data.chorales import load_chorales

LIMIT = 8  # the first 8 chorales: 6 train, 2 test (bwv86.6, bwv17.7)


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
