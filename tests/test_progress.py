"""gailkit.progress: bars draw on a terminal, write nothing into a log, iterate either way."""

from __future__ import annotations

import io
import sys

import pytest

from gailkit import progress
from gailkit.progress import progress_bar, show_progress


class FakeTerminal(io.StringIO):
    """A stream that says it is a TTY, so the bar has somewhere to draw that the test can read."""

    def isatty(self) -> bool:
        return True


class BrokenStream(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


@pytest.fixture(autouse=True)
def no_notebook(monkeypatch):
    monkeypatch.setattr(progress, "_in_notebook", lambda: False)


def _run(stream, **kwargs) -> list[int]:
    bar = progress_bar(range(5), desc="work", file=stream, mininterval=0, **kwargs)
    items = list(bar)
    bar.set_postfix({"loss": "0.1"})
    bar.close()
    return items


def test_a_log_file_gets_no_bar_but_every_item():
    log = io.StringIO()
    assert _run(log) == [0, 1, 2, 3, 4]
    assert log.getvalue() == "", f"a non-TTY log got bar output: {log.getvalue()!r}"


def test_a_terminal_gets_the_bar():
    term = FakeTerminal()
    assert _run(term) == [0, 1, 2, 3, 4]
    assert "work" in term.getvalue() and "5/5" in term.getvalue(), term.getvalue()


def test_enabled_false_silences_a_terminal():
    term = FakeTerminal()
    assert _run(term, enabled=False) == [0, 1, 2, 3, 4]
    assert term.getvalue() == ""


def test_default_stream_is_stderr_at_call_time(monkeypatch):
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = progress_bar(total=3, desc="manual", mininterval=0)
    bar.update(3)
    bar.close()
    assert "3/3" in term.getvalue(), term.getvalue()
    monkeypatch.setattr(sys, "stderr", log := io.StringIO())
    bar = progress_bar(total=3, desc="manual")
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""


def test_show_progress_decision(monkeypatch):
    assert show_progress(True, FakeTerminal()) is True
    assert show_progress(False, FakeTerminal()) is False
    assert show_progress(True, io.StringIO()) is False
    assert show_progress(True, BrokenStream()) is False  # a closed stream is no terminal
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)  # notebooks draw a widget: keep it
    assert show_progress(True, io.StringIO()) is True
    assert show_progress(False, io.StringIO()) is False
