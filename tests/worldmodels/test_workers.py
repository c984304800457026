"""The resilient pool: dead and hung workers are replaced; persistent failure is a clear error."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # spawned workers import pool_tasks by name

import pool_tasks  # noqa: E402

from gailkit.worldmodels.workers import ResilientPool, WorkerFailure  # noqa: E402


def test_map_and_recovery(tmp_path):
    with ResilientPool(2, timeout_s=20) as pool:
        assert pool.map(pool_tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]
        marker = str(tmp_path / "died")
        assert pool.map(pool_tasks.die_once, [(x, marker) for x in range(6)]) == [0, 1, 4, 9, 16, 25]
        assert pool.restarts == 1



def test_a_pool_broken_before_submission_is_restarted():
    """A worker that dies while a batch is still being submitted makes ``submit`` itself raise."""
    with ResilientPool(2, timeout_s=20) as pool:
        assert pool.map(pool_tasks.square, range(4)) == [0, 1, 4, 9]
        executor = pool._pool
        os.kill(next(iter(executor._processes)), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not executor._broken and time.monotonic() < deadline:  # the executor notices the death
            time.sleep(0.01)
        assert executor._broken, "the executor did not notice its killed worker within 20 s"
        assert pool.map(pool_tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]
        assert pool.restarts == 1

def test_hung_worker_is_replaced(tmp_path):
    with ResilientPool(2, timeout_s=3) as pool:
        marker = str(tmp_path / "hung")
        assert pool.map(pool_tasks.hang_once, [(x, marker) for x in range(4)]) == [100, 101, 102, 103]
        assert pool.restarts == 1


def test_persistent_failure_is_reported():
    with ResilientPool(1, timeout_s=10, max_retries=1) as pool:
        with pytest.raises(WorkerFailure, match="failed after 2 attempts .*a worker died"):
            pool.map(pool_tasks.always_die, [1, 2])
