"""The music family: four-voice chorale generators trained on Bach (music21's bundled corpus).

Models: ``transformer`` (GPT-2 over chorale tokens) and ``musegan`` (multi-track WGAN-GP over
piano rolls). Both take a list of :class:`gailkit.data.chorales.Chorale`, sample lists of
(4, T) voices arrays, write MIDI + piano-roll PNG samples and evaluate with
:mod:`gailkit.generators.music.metrics` beside held-out Bach.
"""

from __future__ import annotations

from gailkit.data.chorales import Chorale, load_chorales, split_chorales
from gailkit.errors import UsageError
from gailkit.generators.music import musegan, transformer  # noqa: F401  (register the models)

__all__ = ["DATA_HELP", "load_data", "parse_spec"]

DATA_HELP = ("chorales[:limit=N][,cache=DIR]: Bach's four-part chorales bundled with music21 (default; "
             "limit: the first N in corpus order, before the train/test split by name; cache: where the "
             "parsed chorales are kept, default $GAILKIT_CACHE/chorales or ~/.cache/gailkit/chorales)")


def parse_spec(spec: str | None) -> dict[str, object]:
    """``"chorales:limit=20,cache=/tmp/c"`` -> ``{"limit": 20, "cache_dir": "/tmp/c"}``."""
    if spec is None or spec == "chorales":
        return {}
    name, _, opts = spec.partition(":")
    if name != "chorales":
        raise UsageError(f"unknown music data {spec!r}; the music family reads {DATA_HELP}")
    out: dict[str, object] = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in ("limit", "cache"):
            raise UsageError(f"bad option {item!r} in music data spec {spec!r}; expected {DATA_HELP}")
        if key == "limit":
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"limit must be a positive integer, got {value!r} in {spec!r}")
            out["limit"] = int(value)
        else:
            out["cache_dir"] = value
    return out


def load_data(spec: str | None, *, split: str) -> list[Chorale]:
    """The chorales of ``spec`` (see :data:`DATA_HELP`) in ``split`` ("train", "test" or "all")."""
    chorales = split_chorales(load_chorales(**parse_spec(spec)), split)
    if not chorales:
        raise UsageError(f"the {split} split of {spec or 'chorales'} is empty; load more chorales (a larger limit)")
    return chorales
