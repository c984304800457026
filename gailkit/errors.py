"""gailkit's own error types: the errors that are the user's to fix.

The command line prints a :class:`GailkitError` as one line (``gailkit: error: ...``) and exits
with status 2; any other exception is a bug and keeps its traceback. Each class also derives
from the built-in error a Python caller would expect (``ValueError``, ``FileNotFoundError``,
...), so ``except ValueError`` keeps working.

Messages name the problem and the fix: ``"--gamma 5: must lie in (0, 1]; the usual values are
0.98-0.999"``.
"""

from __future__ import annotations

__all__ = ["GailkitError", "MissingFileError", "RunInterrupted", "RunLockedError", "UnsupportedError", "UsageError"]


class GailkitError(Exception):
    """Base of the errors a user causes and can fix (bad option, bad file, busy directory)."""


class UsageError(GailkitError, ValueError):
    """An option, argument or value that gailkit cannot use; the message says which and why."""


class UnsupportedError(GailkitError, TypeError):
    """Something of a kind gailkit does not handle (a Dict observation space, a data object of
    another type); the message names what is supported and how to convert."""


class MissingFileError(GailkitError, FileNotFoundError):
    """A file or directory the user named does not exist; the message says how to make one."""


class RunLockedError(GailkitError, RuntimeError):
    """Another process is writing the same run directory."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; the message says what was saved and how to continue (exit 130)."""
