"""`gailkit generate train|sample|eval image ...` end to end through gailkit.cli.main."""

from __future__ import annotations

import json

from PIL import Image

from gailkit.cli import main


def test_dcgan_train_sample_eval(tmp_path, capsys):
    out = tmp_path / "dcgan"
    main(["generate", "train", "image", "dcgan", "--data", "digits,size=16", "--epochs", "1", "--width", "8",
          "--batch-size", "64", "--grid-every", "1", "--no-progress", "--out", str(out)])
    assert (out / "weights.safetensors").exists() and (out / "samples" / "epoch_0001.png").exists()
    main(["generate", "sample", str(out), "-n", "16", "--out", str(tmp_path / "g.png")])
    assert Image.open(tmp_path / "g.png").size[0] >= 4 * 16
    main(["generate", "eval", str(out), "--data", "digits,size=16", "--json", str(tmp_path / "m.json")])
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"frechet", "nn_ratio"} and metrics["frechet"] > 0
    assert "frechet" in capsys.readouterr().out


def test_cyclegan_defaults_to_the_demo_pair(tmp_path):
    out = tmp_path / "cyclegan"
    main(["generate", "train", "image", "cyclegan", "--epochs", "0", "--width", "4", "--n-res", "1",
          "--no-progress", "--out", str(out)])  # no --data: CycleGAN.default_data, not the family's frames
    assert "posterised photo patches 32x32" in json.loads((out / "config.json").read_text())["data"]["name"]
    main(["generate", "sample", str(out), "-n", "4", "--out", str(tmp_path / "rows.png")])
    assert (tmp_path / "rows.png").stat().st_size > 0
