"""Where independent tasks run: a local process pool (the default) or a Ray cluster.

Both give ``map(fn, tasks) -> results`` in task order, run ``initializer(*initargs)`` once per
worker process before its first task, survive a worker that dies (the task runs again), and
raise :class:`~gailkit.worldmodels.workers.WorkerFailure` when tasks still fail. ``fn``,
``initializer`` and the tasks must be importable module-level functions and plain data.

Ray is optional (``pip install 'gailkit[ray]'``); with no address it starts a private local
instance of ``n_workers`` CPUs, with ``ray_address`` it joins a running cluster (``ray start
--head`` on one machine, ``ray start --address=HEAD:6379`` on the others).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gailkit.errors import UsageError
from gailkit.worldmodels.workers import ResilientPool, WorkerFailure

__all__ = ["BACKENDS", "Backend", "RayBackend", "make_backend"]

BACKENDS = ("local", "ray")
CONNECT_TIMEOUT_S = 5.0


class Backend(Protocol):
    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]: ...

    def close(self) -> None: ...


def make_backend(name: str, n_workers: int, *, timeout_s: float, initializer: Callable[..., None] | None = None,
                 initargs: tuple = (), ray_address: str | None = None, max_retries: int = 2) -> Backend:
    """A started backend (use it as a context manager, or call ``close``).

    Raises:
        UsageError: an unknown backend, Ray not installed, an address that does not answer, or
            ``--ray-address`` given with the local backend.
    """
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if n_workers < 1:
        raise UsageError(f"--workers {n_workers}: must be >= 1")
    if name == "local":
        if ray_address:
            raise UsageError("--ray-address needs --backend ray")
        return ResilientPool(n_workers, timeout_s=timeout_s, max_retries=max_retries,
                             initializer=initializer, initargs=initargs)
    return RayBackend(n_workers, timeout_s=timeout_s, initializer=initializer, initargs=initargs,
                      address=ray_address, max_retries=max_retries)


def _check_reachable(address: str) -> None:
    """UsageError within seconds unless something listens at ``HOST:PORT`` (``ray.init`` itself
    would keep retrying a dead address for a long time)."""
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://"):
        host, sep, port = address[len("ray://"):].rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--ray-address {address!r}: give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379), "
                         "or 'auto' on a machine of a running cluster")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"Ray cluster at {address} does not answer ({exc.strerror or exc}); start it with "
                         f"`ray start --head --port {port}` on {host}, or leave out --ray-address to run Ray "
                         "on this machine") from None


_INITIALISED: set = set()


def _run(initializer: Callable[..., None] | None, initargs: tuple, fn: Callable[[Any], Any], task: Any) -> Any:
    """A Ray task: the worker's one-time set-up, then ``fn(task)``."""
    key = (getattr(initializer, "__qualname__", None), initargs)
    if initializer is not None and key not in _INITIALISED:
        initializer(*initargs)
        _INITIALISED.add(key)
    return fn(task)


class RayBackend:
    """``map`` over Ray tasks (one CPU each), retried ``max_retries`` times if their worker dies."""

    def __init__(self, n_workers: int, *, timeout_s: float, initializer: Callable[..., None] | None = None,
                 initargs: tuple = (), address: str | None = None, max_retries: int = 2):
        try:
            import ray
        except ImportError:
            raise UsageError("--backend ray needs Ray: pip install 'gailkit[ray]'") from None
        if address and address != "auto":
            _check_reachable(address)
        self._ray, self.timeout_s = ray, timeout_s
        self.initializer, self.initargs = initializer, initargs
        self._owns = not ray.is_initialized()
        if self._owns:
            options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if address:
                ray.init(address=address, **options)
            else:
                # Ray starts its workers at nice 15; beside any other busy process they would crawl
                os.environ.setdefault("RAY_worker_niceness", "0")
                ray.init(num_cpus=n_workers, object_store_memory=256 * 1024**2, **options)
        self._task = ray.remote(num_cpus=1, max_retries=max_retries)(_run)

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        ray = self._ray
        refs = [self._task.remote(self.initializer, self.initargs, fn, task) for task in tasks]
        try:
            return ray.get(refs, timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise WorkerFailure(f"Ray tasks did not finish within {self.timeout_s:.0f} s; raise the timeout "
                                "or check the cluster's load") from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
            raise WorkerFailure(f"Ray tasks still failed after their retries: {type(exc).__name__}") from exc

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
