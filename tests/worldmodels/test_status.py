"""`gailkit worldmodel status`: where a run folder stands, stage by stage, read from what each stage left."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gailkit.cli import main
from gailkit.nn.checkpoint import read_json, write_json
from gailkit.worldmodels import train
from gailkit.worldmodels.cmaes import CMAES
from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream
from gailkit.worldmodels.data import collect_chunks
from gailkit.worldmodels.iterative import IterativeConfig, train_iteratively
from gailkit.worldmodels.status import run_status
from gailkit.worldmodels.train import start_latents, train_mdn, train_vae

ENV = "gailkit/CartPoleCentredPixels-v1"


class Stop(Exception):
    """Stands for a kill right after a checkpoint is written."""


def stop_after(monkeypatch, owner, name: str, n: int) -> None:
    """``owner.name`` (a checkpoint's save) raises Stop once it has run ``n`` times."""
    save, calls = getattr(owner, name), []

    def counting(*args, **kwargs):
        out = save(*args, **kwargs)
        calls.append(1)
        if len(calls) == n:
            raise Stop
        return out

    monkeypatch.setattr(owner, name, counting)


def test_status_follows_a_run_through_its_stages_and_stops(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert dict(run_status(run)) == {"data": "not collected (`collect`)", "V": "not trained (`train-vae`)",
                                     "M": "not trained (`train-mdn`)"}
    collect_chunks(ENV, run / "data", 3, episodes_per_chunk=2, progress=False)
    (run / "data" / "chunk_00001.npz").write_bytes(b"cut short")
    data = dict(run_status(run))["data"]
    assert data.startswith("2 of 3 episodes (") and data.endswith(f"of {ENV}; 1 chunk(s) cut short, recorded "
                                                                     "again by `collect`"), data
    collect_chunks(ENV, run / "data", 3, episodes_per_chunk=2, progress=False)  # records the cut chunk again
    steps = sum(int(np.load(p)["lengths"].sum()) for p in sorted((run / "data").glob("chunk_*")))
    assert dict(run_status(run))["data"] == f"3 of 3 episodes ({steps:,} steps) of {ENV}"

    def killed(*args, **kwargs):  # in V's first epoch, before its first checkpoint
        raise Stop

    monkeypatch.setattr(train._EpochLog, "save", killed)
    with pytest.raises(Stop):
        train_vae(run / "data", run / "model", latent_dim=8, epochs=2, progress=False)
    monkeypatch.undo()
    v = dict(run_status(run))["V"]
    assert re.fullmatch(r"begun \d{4}-\d\d-\d\d \d\d:\d\d UTC \(2 epochs\), no epoch finished yet: under way, or "
                        r"stopped in its first epoch \(`train-vae` starts it again\)", v), v
    train_vae(run / "data", run / "model", latent_dim=8, epochs=2, progress=False)  # starts again, unasked
    assert not (run / "model" / "checkpoints").exists()  # finished: the start's mark went with the checkpoint
    v_loss = read_json(run / "model" / "training.json")["V"][-1]["loss"]
    assert dict(run_status(run))["V"] == f"trained, 2 epochs (last: loss {v_loss:.4g})"
    assert dict(run_status(run))["M"] == "not trained (`train-mdn`)"  # V's folder holds an untrained M
    options = dict(epochs=2, hidden=16, n_mixtures=2, seq_len=8, ensemble=2, progress=False)
    monkeypatch.setattr(train._EpochLog, "save", killed)
    with pytest.raises(Stop):
        train_mdn(run / "data", run / "model", **options)
    monkeypatch.undo()
    assert "(2 epochs each of 2 M's), no epoch finished yet" in dict(run_status(run))["M"]
    stop_after(monkeypatch, train._EpochLog, "save", 3)  # the first M fitted, the second stopped after epoch 1
    with pytest.raises(Stop):
        train_mdn(run / "data", run / "model", **options)
    monkeypatch.undo()
    m = dict(run_status(run))["M"]
    assert m.startswith("stopped after epoch 1 of M 2 of 2 (last: nll ") and \
        m.endswith("): `train-mdn --resume` goes on"), m
    model = train_mdn(run / "data", run / "model", **options, resume=True)
    m_nll = read_json(run / "model" / "training.json")["M"][-1]["nll"]
    assert dict(run_status(run))["M"] == f"trained, 2 epochs, 2 M's (last: nll {m_nll:.4g})"

    cfg = DreamTrainingConfig(generations=3, popsize=4, rollouts=1, max_steps=10)
    stop_after(monkeypatch, CMAES, "save", 2)
    with pytest.raises(Stop):
        train_controller_in_dream(model, cfg, run / "controller_dream", start_z=start_latents(model, run / "data"),
                                  progress=False)
    monkeypatch.undo()
    last = read_json(run / "controller_dream" / "history.json")["history"][1]
    assert dict(run_status(run))["controller_dream"] == (
        "2 of 3 generations (`train-controller --where dream --resume` goes on); "
        f"last: candidates' mean {last['mean']:.1f}, best {last['best']:.1f}")

    it = IterativeConfig(iterations=1, episodes=2, mdn_epochs=1, eval_episodes=1, select_episodes=2)
    records = train_iteratively(run / "model", run / "data", ENV, it, cfg, run / "iterations",
                                mdn_options={"hidden": 16, "n_mixtures": 2}, progress=False)
    assert dict(run_status(run))["iterations"] == (f"1 of 1 rounds; the best on the selection tracks: round 0 "
                                                   f"({records[0]['select_return']:.1f})")
    state = read_json(run / "iterations" / "iterations.json")  # as if `iterate --iterations 2` had stopped
    write_json(run / "iterations" / "iterations.json", state | {"config": state["config"] | {"iterations": 2}})
    assert dict(run_status(run))["iterations"].startswith("1 of 2 rounds (`iterate` goes on); the best")

    assert main(["worldmodel", "status", "--dir", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{run}:" and [line.split()[0] for line in out[1:]] == [
        "data", "V", "M", "controller_dream", "iterations"], out


def test_status_of_a_folder_that_is_not_there_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["worldmodel", "status", "--dir", str(tmp_path / "nowhere")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "no run folder" in captured.err, captured
