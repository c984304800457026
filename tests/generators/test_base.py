"""The generator protocol: save/load, checkpoints and exact resume, refusals, grids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gailkit.data.images import ImageData, load_digits_data
from gailkit.generators import _REGISTRY, FAMILIES, register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.pictures import image_grid
from gailkit.nn.checkpoint import CheckpointError


@dataclasses.dataclass
class TinyConfig(GeneratorConfig):
    hidden: int = 8


class Tiny(TorchGenerator):
    """A one-layer autoencoder with dropout: enough state (weights, Adam, RNG) to test the loop."""

    Config = TinyConfig

    def _build(self):
        d = self.data_info["channels"] * self.data_info["height"] * self.data_info["width"]
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, self.config.hidden),
                                       torch.nn.Dropout(0.2), torch.nn.Linear(self.config.hidden, d))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}

    def prepare(self, data: ImageData):
        if not self.built:
            self.build(data.info())
        return (torch.from_numpy(np.array(data.images)),)

    def train_step(self, batch):
        (x,) = batch
        loss = ((self.net(x) - x.flatten(1)) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def sample(self, n, *, seed=None, **kwargs):
        g = torch.Generator().manual_seed(0 if seed is None else seed)
        return torch.rand(n, self.data_info["width"] ** 2, generator=g).numpy()

    def evaluate(self, data, **kwargs):
        with torch.no_grad():
            x = torch.from_numpy(np.array(data.images))
            return {"mse": float(((self.net(x) - x.flatten(1)) ** 2).mean())}


@pytest.fixture(scope="module", autouse=True)
def _registered():
    FAMILIES.setdefault("test", "gailkit.generators")
    register("test", "tiny")(Tiny)
    yield
    _REGISTRY.pop(("test", "tiny"), None)
    FAMILIES.pop("test", None)


@pytest.fixture(scope="module")
def digits():
    return load_digits_data().subset(np.arange(300))


def _weights(model):
    return {k: v.clone() for k, v in model.state_tensors().items()}


def test_fit_learns_and_round_trips(tmp_path, digits):
    model = Tiny(epochs=3, batch_size=64, grid_every=0).fit(digits, out=tmp_path / "run", progress=False)
    first, last = model.history[0]["loss"], model.history[-1]["loss"]
    assert last < first, f"loss {first:.4f} -> {last:.4f}"  # seeds 0 / 1 / 2: x0.87 / x0.94 / x0.92
    loaded = Tiny.load(tmp_path / "run")
    assert loaded.config == model.config and loaded.history == model.history
    for k, v in _weights(model).items():
        assert torch.equal(v, loaded.state_tensors()[k])
    assert loaded.evaluate(digits) == pytest.approx(model.evaluate(digits))
    assert (tmp_path / "run" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_bit_for_bit(tmp_path, digits):
    full = Tiny(epochs=4, batch_size=64, grid_every=0).fit(digits, out=tmp_path / "full", progress=False)
    Tiny(epochs=2, batch_size=64, grid_every=0).fit(digits, out=tmp_path / "split", progress=False)
    resumed = Tiny(epochs=4, batch_size=64, grid_every=0).fit(digits, out=tmp_path / "split", resume=True,
                                                              progress=False)
    for k, v in _weights(full).items():
        assert torch.equal(v, resumed.state_tensors()[k]), k
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert len(list((tmp_path / "split" / "checkpoint").glob("state_*.safetensors"))) == 1


def test_refuses_to_overwrite_or_resume_with_other_options(tmp_path, digits):
    Tiny(epochs=1, batch_size=64, grid_every=0).fit(digits, out=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="--resume"):
        Tiny(epochs=1, batch_size=64).fit(digits, out=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="hidden: 8 -> 16"):
        Tiny(epochs=2, hidden=16, batch_size=64, grid_every=0).fit(digits, out=tmp_path / "run", resume=True,
                                                                   progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Tiny(epochs=1).fit(digits, out=tmp_path / "fresh", resume=True, progress=False)


def test_load_refuses_other_model_and_broken_weights(tmp_path, digits):
    Tiny(epochs=1, batch_size=64, grid_every=0).fit(digits, out=tmp_path / "run", progress=False)

    @dataclasses.dataclass
    class OtherConfig(GeneratorConfig):
        pass

    class Other(Tiny):
        Config = OtherConfig

    Other.family, Other.name = "test", "other"
    with pytest.raises(CheckpointError, match="holds a test/tiny model, not test/other"):
        Other.load(tmp_path / "run")
    (tmp_path / "run" / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        Tiny.load(tmp_path / "run")
    with pytest.raises(CheckpointError, match="missing"):
        Tiny.load(tmp_path / "nowhere")


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="no option.*hiden"):
        Tiny(hiden=3)


def test_image_data_refuses_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageData(np.full((2, 1, 8, 8), 16.0))
    with pytest.raises(ValueError, match="shape"):
        ImageData(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        ImageData(np.full((2, 1, 8, 8), np.nan))
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        ImageData(np.zeros((2, 1, 8, 8)), np.zeros(3))


def test_split_is_stratified_and_disjoint(digits):
    train, test = digits.split(0.25, seed=0)
    assert len(train) + len(test) == len(digits)
    assert set(np.unique(test.labels)) == set(range(10))


def test_image_grid_layout():
    images = np.zeros((5, 1, 8, 8), dtype=np.float32)
    images[2] = 1.0
    grid = image_grid(images, nrow=3, pad=1, min_size=16)  # tiles 16x16, 2 rows of 3
    assert grid.shape == (2 * 17 + 1, 3 * 17 + 1, 3)
    assert grid[1 + 8, 1 + 2 * 17 + 8, 0] == 255 and grid[1 + 8, 1 + 8, 0] == 0
    assert grid[0, 0, 0] == 128  # padding
