"""gailkit's pictures leave the caller's matplotlib alone: its backend and its open figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gailkit.agents.run import save_learning_curve
from gailkit.generators.base import plot_history
from gailkit.generators.music.output import plot_pianoroll


def test_pictures_keep_the_callers_backend_and_figures(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("pdf")  # a backend of the caller's, not Agg, with a figure open
    try:
        mine = plt.figure()
        history = [{"steps": 512 * i, "return_mean": 10.0 * i, "return_std": 1.0} for i in range(3)]
        paths = [save_learning_curve(tmp_path / "curve.png", {"gail": history}, title="t", expert=30.0),
                 plot_history(tmp_path / "sub" / "history.png", [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}],
                              title="t"),
                 plot_pianoroll([np.full((4, 16), 60, np.int16)], tmp_path / "roll.png")]
        assert matplotlib.get_backend() == "pdf" and plt.fignum_exists(mine.number)
        for path in paths:
            with Image.open(path) as image:
                assert image.format == "PNG" and min(image.size) > 100, path
        assert sorted(p.name for p in tmp_path.rglob("*")) == ["curve.png", "history.png", "roll.png", "sub"]
    finally:
        plt.close("all")
        plt.switch_backend(before)
