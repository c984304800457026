"""Module-level tasks for the worker-pool tests (spawned workers import them by name)."""

import os
import time
from pathlib import Path


def square(x):
    return x * x


def die_once(args):
    """Kill the worker the first time (marker file absent), succeed afterwards."""
    x, marker = args
    if x == 3 and not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(1)
    return x * x


def hang_once(args):
    x, marker = args
    if x == 1 and not Path(marker).exists():
        Path(marker).write_text("hung")
        time.sleep(600)
    return x + 100


def always_die(x):
    os._exit(1)


def pid_square(x):
    """``(x * x, the worker's pid)``: which process ran a task."""
    return x * x, os.getpid()
