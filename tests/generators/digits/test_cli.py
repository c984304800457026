"""`gailkit generate train|sample|eval` on a digit model, end to end."""

from __future__ import annotations

import json

from gailkit.cli import main


def test_train_sample_eval_rbm(tmp_path, capsys):
    run = tmp_path / "rbm"
    assert main(["generate", "train", "digits", "rbm", "--epochs", "1", "--out", str(run), "--no-progress",
                 "--sample-steps", "50"]) == 0
    assert (run / "weights.safetensors").exists() and (run / "samples" / "epoch_0001.png").exists()
    assert main(["generate", "sample", str(run), "-n", "16", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["generate", "eval", str(run), "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"score", "frechet", "nn_ratio", "loglik_nats"} <= set(metrics)
    # better than a fair coin per pixel (-44.4 nats) after one epoch: seeds 0 / 1 / 2 give -25.18 / -25.19 / -25.16
    assert metrics["loglik_nats"] > -64 * 0.7, metrics
    assert "loglik_nats" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["generate", "train", "digits", "rbm", "--epochs", "1", "--out", str(tmp_path / "x"),
                 "--data", "emnist"]) == 2
    assert "unknown digits data" in capsys.readouterr().err
    assert main(["generate", "train", "digits", "nope", "--out", str(tmp_path / "y")]) == 2
    assert "choose from" in capsys.readouterr().err
