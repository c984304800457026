"""Backends: the local pool and a real local Ray instance give the same numbers; Ray survives a
killed worker; bad backends and dead addresses are one-line errors within seconds."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from gailkit.errors import UsageError
from gailkit.worldmodels.backends import make_backend
from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_real
from gailkit.worldmodels.model import WorldModel

ENV = "gailkit/CartPoleCentredPixels-v1"


def test_unknown_backend_and_misplaced_address():
    with pytest.raises(UsageError, match="unknown backend 'dask'.*local, ray"):
        make_backend("dask", 2, timeout_s=10)
    with pytest.raises(UsageError, match="needs --backend ray"):
        make_backend("local", 2, timeout_s=10, ray_address="127.0.0.1:6379")


def test_dead_ray_address_fails_fast():
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(UsageError, match=f"127.0.0.1:{port} does not answer.*ray start --head"):
        make_backend("ray", 2, timeout_s=10, ray_address=f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10
    with pytest.raises(UsageError, match="HOST:PORT"):
        make_backend("ray", 2, timeout_s=10, ray_address="nonsense")


def _ray_task_pids(ray_tmpdir: str) -> list[int]:
    """Workers of *this test's* Ray instance (their environment holds its RAY_TMPDIR) that are
    running one of our tasks right now (``ray::_run``); other Ray instances on the machine are
    left alone."""
    mark = f"RAY_TMPDIR={ray_tmpdir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_run") and \
                        mark in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _kill_first_task_worker(stop: threading.Event, killed: list, ray_tmpdir: str) -> None:
    while not stop.is_set() and not killed:
        pids = _ray_task_pids(ray_tmpdir)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
        time.sleep(0.01)


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A private, removed-afterwards folder for Ray's session files. Not under tmp_path: Ray puts
    Unix sockets in it, whose paths may not exceed 107 bytes."""
    path = tempfile.mkdtemp(prefix="gailkit-ray-")
    monkeypatch.setenv("RAY_TMPDIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's workers through /proc")
def test_ray_equals_local_and_survives_a_killed_worker(tmp_path, ray_tmpdir):
    pytest.importorskip("ray")
    torch.manual_seed(0)
    WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2).save(tmp_path / "model")
    cfg = DreamTrainingConfig(generations=2, popsize=6, rollouts=3, max_steps=100, seed=1)
    kw = dict(workers=2, timeout_s=120, progress=False)
    best_local, local = train_controller_in_real(tmp_path / "model", ENV, cfg, tmp_path / "local", **kw)

    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_task_worker, args=(stop, killed, ray_tmpdir), daemon=True)
    killer.start()
    try:
        best_ray, on_ray = train_controller_in_real(tmp_path / "model", ENV, cfg, tmp_path / "ray",
                                                    backend="ray", **kw)
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker was caught running a task"
    def scores(history):  # each generation's own wall time differs between backends, nothing else may
        return [{k: v for k, v in h.items() if k != "wall_s"} for h in history]

    assert scores(on_ray) == scores(local), f"ray {on_ray} != local {local}"
    np.testing.assert_array_equal(best_ray, best_local)
