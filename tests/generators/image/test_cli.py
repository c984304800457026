"""`gailkit generate train|sample|eval image ...` end to end through gailkit.cli.main."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from gailkit.cli import main
from gailkit.generators import load_family_data
from gailkit.generators.image import DCGAN


def test_dcgan_train_sample_eval(tmp_path, capsys):
    out = tmp_path / "dcgan"
    assert main(["generate", "train", "image", "dcgan", "--data", "digits,size=16", "--epochs", "1", "--width", "8",
                 "--batch-size", "64", "--grid-every", "1", "--no-progress", "--out", str(out)]) == 0
    assert (out / "weights.safetensors").exists() and (out / "samples" / "epoch_0001.png").exists()
    assert main(["generate", "sample", str(out), "-n", "16", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size[0] >= 4 * 16
    assert main(["generate", "eval", str(out), "--data", "digits,size=16", "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"frechet", "nn_ratio"}
    # what the CLI wrote is the saved model's evaluation on the test split (seeded samples)
    test = load_family_data("image", "digits,size=16", split="test")
    assert metrics == pytest.approx(DCGAN.load(out).evaluate(test), rel=1e-6)
    assert "frechet" in capsys.readouterr().out


def test_cyclegan_defaults_to_the_demo_pair(tmp_path):
    out = tmp_path / "cyclegan"
    assert main(["generate", "train", "image", "cyclegan", "--epochs", "0", "--width", "4", "--n-res", "1",
                 "--no-progress", "--out", str(out)]) == 0  # no --data: CycleGAN.default_data, not the family's frames
    assert "posterised photo patches 32x32" in json.loads((out / "config.json").read_text())["data"]["name"]
    assert main(["generate", "sample", str(out), "-n", "4", "--out", str(tmp_path / "rows.png")]) == 0
    # 4 columns of 32x32 tiles; 6 rows: a, G(a), F(G(a)), b, F(b), G(F(b)); 1-pixel padding
    assert Image.open(tmp_path / "rows.png").size == (4 * 32 + 5, 6 * 32 + 7)
