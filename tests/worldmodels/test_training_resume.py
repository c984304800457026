"""V's and M's training: a checkpoint every epoch, resumed bit for bit; TensorBoard scalars, history and curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gailkit.nn.checkpoint import CheckpointError, read_json, save_tensors
from gailkit.worldmodels import train
from gailkit.worldmodels.data import collect_chunks
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.train import stopped_training, train_mdn, train_vae

ENV = "gailkit/CartPoleCentredPixels-v1"


class Stop(Exception):
    """Stands for a kill: raised right after the checkpoint of a chosen epoch is written."""


@pytest.fixture
def stop_after(monkeypatch):
    save = train._EpochLog.save

    def arm(n: int | None) -> None:  # None: no more stops
        calls = []

        def counting(self, *args, **kwargs):
            save(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == n:
                raise Stop

        monkeypatch.setattr(train._EpochLog, "save", counting)

    yield arm
    monkeypatch.undo()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("rollouts") / "data"
    collect_chunks(ENV, path, 3, progress=False)
    return path


def tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def losses(model_dir, part: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_json(model_dir / "training.json")[part]]


def test_v_resumed_after_a_stop_ends_as_an_uninterrupted_training(tmp_path, data, stop_after):
    options = dict(latent_dim=8, epochs=3, batch_size=32, seed=4, progress=False)
    straight = train_vae(data, tmp_path / "straight", **options)
    history = losses(tmp_path / "straight", "V")
    assert [r["epoch"] for r in history] == [1, 2, 3] and history[-1]["loss"] < history[0]["loss"]
    assert not (tmp_path / "straight" / "checkpoints").exists()  # finished: the checkpoint is gone
    assert (tmp_path / "straight" / "v_curve.png").stat().st_size > 0
    assert list((tmp_path / "straight" / "tb").glob("events.out.tfevents.*"))

    stop_after(2)
    with pytest.raises(Stop):
        train_vae(data, tmp_path / "stopped", **options)
    assert stopped_training(tmp_path / "stopped", "V") and not stopped_training(tmp_path / "stopped", "M")
    with pytest.raises(CheckpointError, match="stopped after 2 epoch.*pass --resume"):
        train_vae(data, tmp_path / "stopped", **options)  # not thrown away unasked
    with pytest.raises(CheckpointError, match=r"other options or data \(lr: 0.001 -> 0.01\)"):
        train_vae(data, tmp_path / "stopped", **options | {"lr": 1e-2}, resume=True)
    resumed = train_vae(data, tmp_path / "stopped", **options, resume=True)
    assert_same(tensors(resumed.vae), tensors(straight.vae))
    assert_same(tensors(WorldModel.load(tmp_path / "stopped").vae), tensors(straight.vae))
    assert losses(tmp_path / "stopped", "V") == history
    assert not stopped_training(tmp_path / "stopped", "V")
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_vae(data, tmp_path / "stopped", **options, resume=True)


M_OPTIONS = dict(epochs=3, hidden=16, n_mixtures=2, seq_len=8, ensemble=2, fresh_samples=True, seed=1, progress=False)


def copy_files(source, target) -> None:
    target.mkdir()
    for f in source.glob("*.*"):
        (target / f.name).write_bytes(f.read_bytes())


@pytest.fixture(scope="module")
def m_straight(tmp_path_factory, data):
    """``(V's folder, the world model, its M history)``: a V of 1 epoch, and beside a copy of it an ensemble
    of two M's trained with M_OPTIONS without a stop. Made once; the stopped trainings start from V's folder."""
    root = tmp_path_factory.mktemp("m_straight")
    train_vae(data, root / "v", latent_dim=8, epochs=1, progress=False)
    copy_files(root / "v", root / "straight")
    return root / "v", train_mdn(data, root / "straight", **M_OPTIONS), losses(root / "straight", "M")


def test_an_m_ensemble_s_history_has_each_member_s_epochs_beside_v_s(m_straight):
    v, _, history = m_straight
    assert [(r["member"], r["epoch"]) for r in history] == [(j, e) for j in (0, 1) for e in (1, 2, 3)]
    assert losses(v.with_name("straight"), "V")  # V's history kept beside M's


@pytest.mark.parametrize("stop", [2, 3, 5])  # within the first M, between the two, within the second
def test_m_ensemble_resumed_after_a_stop_ends_as_an_uninterrupted_training(tmp_path, data, stop_after, stop,
                                                                           m_straight):
    v_dir, straight, history = m_straight
    copy_files(v_dir, tmp_path / "stopped")

    stop_after(stop)
    with pytest.raises(Stop):
        train_mdn(data, tmp_path / "stopped", **M_OPTIONS)
    assert stopped_training(tmp_path / "stopped", "M")
    with pytest.raises(CheckpointError, match="ensemble: 2 -> 3"):
        train_mdn(data, tmp_path / "stopped", **M_OPTIONS | {"ensemble": 3}, resume=True)
    v = (tmp_path / "stopped" / "vae.safetensors").read_bytes()
    other = WorldModel.load(tmp_path / "stopped").vae
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    save_tensors(tmp_path / "stopped" / "vae.safetensors", other.state_dict())
    with pytest.raises(CheckpointError, match=r"other options or data \(v: "):
        train_mdn(data, tmp_path / "stopped", **M_OPTIONS, resume=True)  # V changed since: M's latents are others
    (tmp_path / "stopped" / "vae.safetensors").write_bytes(v)
    resumed = train_mdn(data, tmp_path / "stopped", **M_OPTIONS, resume=True)
    for a, b in zip(resumed.mdns, straight.mdns, strict=True):
        assert_same(tensors(a), tensors(b))
    assert losses(tmp_path / "stopped", "M") == history
    assert not (tmp_path / "stopped" / "checkpoints").exists()
    train_vae(data, tmp_path / "stopped", latent_dim=8, epochs=1, progress=False)  # a new V: its M is untrained
    assert list(read_json(tmp_path / "stopped" / "training.json")) == ["V"]


def test_command_line_resumes_v_and_says_when_there_is_nothing_to_resume(tmp_path, data, stop_after, capsys):
    from gailkit.cli import main

    (tmp_path / "data").symlink_to(data)
    args = ["worldmodel", "train-vae", "--dir", str(tmp_path), "--env", ENV, "--preset", "quick", "--epochs", "2"]
    assert main([*args, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    stop_after(1)
    with pytest.raises(Stop):
        main(args)
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    stop_after(None)
    assert main([*args[:-1], "3", "--resume"]) in (0, None)  # and on to 3 epochs
    model = WorldModel.load(tmp_path / "model")
    assert np.isfinite(next(iter(model.vae.parameters())).sum().item())
    assert not stopped_training(tmp_path / "model", "V")
    assert [r["epoch"] for r in read_json(tmp_path / "model" / "training.json")["V"]] == [1, 2, 3]
    assert main(["worldmodel", "eval", "--dir", str(tmp_path), "--epochs", "2"]) == 2
    assert "--epochs sets V's (train-vae) or M's (train-mdn, iterate) epochs, not eval's" in capsys.readouterr().err


def test_a_refit_of_m_that_stopped_goes_on_where_it_stopped(tmp_path, data, stop_after):
    """The iterative procedure refits M each round (refit_memory); a rerun after a stop resumes that fit."""
    from gailkit.worldmodels.iterative import refit_memory

    train_vae(data, tmp_path / "v", latent_dim=8, epochs=1, progress=False)
    options = dict(epochs=3, hidden=16, n_mixtures=2, seq_len=8, fresh_samples=True, progress=False)
    straight = refit_memory(tmp_path / "v", [data], tmp_path / "straight", **options)
    stop_after(2)
    with pytest.raises(Stop):
        refit_memory(tmp_path / "v", [data], tmp_path / "stopped", **options)
    stop_after(None)
    resumed = refit_memory(tmp_path / "v", [data], tmp_path / "stopped", **options)
    assert_same(tensors(resumed.mdn), tensors(straight.mdn))
    assert losses(tmp_path / "stopped", "M") == losses(tmp_path / "straight", "M")
