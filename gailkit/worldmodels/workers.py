"""A process pool that survives its workers: per-task timeouts, restart of dead or hung workers.

CMA-ES in the real environment evaluates every candidate in worker processes. A worker that
crashes (a segfault in a physics engine) or hangs must neither stop the search silently nor hang
it forever: the pool is torn down and rebuilt, the unfinished tasks are resubmitted, and after
``max_retries`` failed attempts the error names what went wrong.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = ["ResilientPool", "WorkerFailure"]


class WorkerFailure(RuntimeError):
    """Tasks still failed (crash or timeout) after every retry."""


class ResilientPool:
    """``map(fn, tasks)`` over spawn-started workers with a wall-clock limit per batch of tasks."""

    def __init__(self, n_workers: int, *, timeout_s: float, max_retries: int = 2,
                 initializer: Callable[..., None] | None = None, initargs: tuple = ()):
        self.n_workers, self.timeout_s, self.max_retries = n_workers, timeout_s, max_retries
        self.initializer, self.initargs = initializer, initargs
        self.restarts = 0
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.n_workers, mp_context=mp.get_context("spawn"),
                                   initializer=self.initializer, initargs=self.initargs)

    def _restart(self) -> None:
        # terminate, not join: a hung worker would never return
        for proc in list(getattr(self._pool, "_processes", {}).values()):
            proc.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()
        self.restarts += 1

    def _submit(self, fn: Callable[[Any], Any], pending: dict[int, Any]) -> tuple[dict[int, Future], bool]:
        """Submit the pending tasks: ``(futures, broken)``. A worker that dies while the batch is still being
        submitted (a fast task that crashes) breaks the executor, and ``submit`` itself raises."""
        futures: dict[int, Future] = {}
        try:
            for i, t in pending.items():
                futures[i] = self._pool.submit(fn, t)
        except BrokenProcessPool:
            return futures, True
        return futures, False

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        results: dict[int, Any] = {}
        pending = dict(enumerate(tasks))
        reasons: list[str] = []
        for _ in range(self.max_retries + 1):
            futures, failed = self._submit(fn, pending)
            if failed:
                reasons.append("a worker died while the tasks were submitted")
            deadline = time.monotonic() + self.timeout_s
            for i, future in futures.items():
                try:
                    results[i] = future.result(timeout=max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    reasons.append(f"task {i} exceeded {self.timeout_s:.0f} s")
                    failed = True
                    break
                except BrokenProcessPool:
                    reasons.append(f"a worker died during task {i}")
                    failed = True
                    break
            pending = {i: t for i, t in pending.items() if i not in results}
            if not pending:
                return [results[i] for i in range(len(tasks))]
            if failed:
                self._restart()
        raise WorkerFailure(f"{len(pending)} of {len(tasks)} tasks failed after {self.max_retries + 1} attempts "
                            f"({'; '.join(reasons[-3:])}); raise the timeout or check the environment "
                            "(if workers die at "
                            "once, they could not start: a script that creates a pool needs an "
                            "`if __name__ == '__main__':` guard)")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ResilientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
