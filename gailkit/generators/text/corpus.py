"""Text datasets: the embedded standard-library corpus and the user's text files.

:class:`TextData` is a tuple of documents (strings). The default corpus needs no download:
it is built at run time from the docstrings of a fixed list of standard-library modules
and from the language-reference topics that ``pydoc`` ships (``pydoc_data.topics``: the
text of ``help("assert")`` and its ~80 siblings, about 0.47 M characters), all of which
every Python install has, in a fixed order, de-duplicated. Its exact text depends on
the Python version, so :meth:`TextData.info` records a hash of it.

Train/test split is by document, decided by a hash of each document's text, so it does not
depend on the order files were named in and a document never straddles the two sides.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gailkit.errors import UsageError

__all__ = [
    "STDLIB_MODULES",
    "TextData",
    "file_documents",
    "load_text",
    "read_text_file",
    "split_documents",
    "stdlib_documents",
    "write_samples",
]

# Pure-Python modules with long docstrings, present in every CPython >= 3.10 on every OS.
STDLIB_MODULES: tuple[str, ...] = (
    "abc", "argparse", "ast", "asyncio", "base64", "bisect", "bz2", "calendar", "cmd", "codecs", "collections",
    "colorsys", "concurrent.futures", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "dis", "doctest", "email", "email.message", "email.utils", "enum", "filecmp",
    "fileinput", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip", "hashlib",
    "heapq", "hmac", "html", "html.parser", "http.client", "http.cookies", "http.server", "imaplib",
    "importlib", "inspect", "io", "ipaddress", "itertools", "json", "keyword", "linecache", "locale",
    "logging", "logging.handlers", "lzma", "mailbox", "mimetypes", "numbers", "operator", "optparse", "os",
    "pathlib", "pdb", "pickle", "pickletools", "pkgutil", "platform", "plistlib", "poplib", "pprint",
    "profile", "pstats", "pydoc", "queue", "quopri", "random", "re", "reprlib", "sched", "secrets",
    "selectors", "shlex", "shutil", "signal", "smtplib", "socket", "socketserver", "sqlite3", "ssl", "stat",
    "statistics", "string", "struct", "subprocess", "symtable", "tarfile", "tempfile", "textwrap",
    "threading", "timeit", "token", "tokenize", "trace", "traceback", "tracemalloc", "types", "typing",
    "unittest", "unittest.mock", "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref",
    "webbrowser", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile", "zoneinfo",
)

TEST_FRACTION = 0.1
_CHUNK_CHARS = 1000  # file paragraphs are merged into documents of at least this many characters


@dataclasses.dataclass(frozen=True)
class TextData:
    """Documents of text for a language model.

    Attributes:
        documents: the texts, each non-empty; a model sees them separated by an
            end-of-text symbol.
        source: where they came from (``"stdlib"``, ``"files:a.txt,b.txt"``).
        split: "train", "test" or "all".
    """

    documents: tuple[str, ...]
    source: str
    split: str = "all"

    def __post_init__(self) -> None:
        if not self.documents:
            raise UsageError(f"text data from {self.source} ({self.split}) holds no documents")
        bad = [i for i, d in enumerate(self.documents) if not isinstance(d, str) or not d]
        if bad:
            raise UsageError(f"text data from {self.source}: document(s) {bad[:5]} are empty or not strings")

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def characters(self) -> int:
        """Characters to predict: every document plus one end-of-text symbol after each."""
        return sum(len(d) + 1 for d in self.documents)

    def sha(self) -> str:
        h = hashlib.sha256()
        for d in self.documents:
            h.update(d.encode("utf-8") + b"\x00")
        return h.hexdigest()[:16]

    def info(self) -> dict[str, Any]:
        return {"source": self.source, "split": self.split, "documents": len(self.documents),
                "characters": self.characters, "sha": self.sha()}


def _docs_of(module_name: str) -> Iterable[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some modules and attributes warn when touched (deprecations)
        yield from _docs_of_module(importlib.import_module(module_name))


def _docs_of_module(module: Any) -> Iterable[str]:
    if doc := inspect.getdoc(module):
        yield doc
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue  # public objects defined here, not re-exports
        if doc := inspect.getdoc(obj):
            yield doc
        if inspect.isclass(obj):
            for attr, member in sorted(vars(obj).items()):
                if not attr.startswith("_") and callable(member) and (doc := inspect.getdoc(member)):
                    yield doc


@functools.cache
def _module_docs(module_name: str) -> tuple[str, ...]:
    return tuple(_docs_of(module_name))


def _topic_documents() -> list[str]:
    """pydoc's language-reference topics, sorted by name, each cut into documents of paragraphs."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a stripped-down Python without pydoc_data
        return []
    return [doc for name in sorted(topics) for doc in file_documents(topics[name])]


def stdlib_documents(modules: Iterable[str] = STDLIB_MODULES, *, min_chars: int = 40,
                     topics: bool = True) -> list[str]:
    """Docstrings of ``modules`` (module, public classes, functions, methods), then (with
    ``topics``) pydoc's language-reference topics, in order, each once.

    Modules that fail to import on this platform are skipped. Docstrings shorter than
    ``min_chars`` are dropped (one-liners like "Return self." add nothing but noise).
    """
    seen: set[str] = set()
    docs = []
    for name in modules:
        try:  # each module's docstrings are read once per process: importing ~130 modules takes seconds
            found = _module_docs(name)
        except Exception:  # noqa: BLE001, S112 (an optional module missing on this platform)
            continue
        for doc in found:
            doc = doc.strip()
            if len(doc) >= min_chars and doc not in seen:
                seen.add(doc)
                docs.append(doc)
    for doc in _topic_documents() if topics else []:
        if doc not in seen:
            seen.add(doc)
            docs.append(doc)
    return docs


def read_text_file(path: str | Path) -> str:
    """The UTF-8 text of ``path``; ValueError naming the file if missing, empty or binary."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"text file {path} does not exist (or is not a file); check the --data path")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise UsageError(f"text file {path} is binary (NUL byte at offset {raw.index(0)}); "
                         f"give UTF-8 text files only")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"text file {path} is not UTF-8 (bad byte at offset {e.start}); "
                         f"convert it, e.g. `iconv -t utf-8`") from None
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    if not text.strip():
        raise UsageError(f"text file {path} is empty; give files that contain text")
    return text


def file_documents(text: str, *, min_chars: int = _CHUNK_CHARS) -> list[str]:
    """Split a file into documents: blank-line paragraphs merged until ``min_chars`` long."""
    docs, current = [], []
    for para in text.split("\n\n"):
        if para.strip():
            current.append(para.strip("\n"))
            if sum(len(p) + 2 for p in current) >= min_chars:
                docs.append("\n\n".join(current))
                current = []
    if current:
        docs.append("\n\n".join(current))
    return docs


def _resolve_files(spec: str) -> list[Path]:
    paths: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        path = Path(part).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise UsageError(f"directory {path} holds no .txt files")
            paths.extend(found)
        else:
            paths.append(path)
    if not paths:
        raise UsageError(f"no text files in --data {spec!r}; give files:a.txt,b.txt or a directory of .txt files")
    return paths


def split_documents(docs: list[str], split: str, *, test_fraction: float = TEST_FRACTION, salt: str = "") -> list[str]:
    """The ``split`` side of ``docs``: a document is held out when a hash of its text says so.

    ``salt`` gives another, independent split of the same documents (e.g. a validation set
    carved out of the training side).
    """
    if split == "all":
        return docs
    cut = int(test_fraction * 2**32)
    is_test = [int.from_bytes(hashlib.sha256((salt + d).encode("utf-8")).digest()[:4], "little") < cut for d in docs]
    if len(docs) >= 2 and not any(is_test):  # too few documents for the hash to pick one
        is_test[-1] = True
    if len(docs) >= 2 and all(is_test):
        is_test[0] = False
    chosen = [d for d, t in zip(docs, is_test) if t == (split == "test")]
    if not chosen:
        raise UsageError(f"too little text for a {split} split ({len(docs)} document(s)); give more text")
    return chosen


def load_text(spec: str | None = None, *, split: str = "all") -> TextData:
    """Text from a ``--data`` spec: None or "stdlib" (the embedded corpus), "files:PATH[,PATH]",
    or a path to a .txt file or a directory of them."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if spec is None or spec == "stdlib":
        return TextData(tuple(split_documents(stdlib_documents(), split)), "stdlib", split)
    files = spec.removeprefix("files:")
    paths = _resolve_files(files)
    docs = [doc for path in paths for doc in file_documents(read_text_file(path))]
    return TextData(tuple(split_documents(docs, split)), f"files:{','.join(str(p) for p in paths)}", split)


def write_samples(path: str | Path, texts: Sequence[str], *, title: str) -> Path:
    """Write generated texts to a UTF-8 .txt file (atomically), one numbered block each.

    A ``.png`` suffix (what the shared training loop asks for) becomes ``.txt``.
    """
    from gailkit.nn.checkpoint import atomic_write

    path = Path(path)
    if path.suffix != ".txt":
        path = path.with_suffix(".txt")
    blocks = [f"# {title}: {len(texts)} samples\n"]
    blocks += [f"--- sample {i} ---\n{t}\n" for i, t in enumerate(texts)]
    body = "\n".join(blocks)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(body, encoding="utf-8"))
