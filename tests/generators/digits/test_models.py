"""The digit models: exact likelihoods, masked-convolution causality, learning, save/load."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from gailkit.data.images import ImageData
from gailkit.generators import get_generator
from gailkit.generators.digits import load_data
from gailkit.generators.digits.pixelcnn import MaskedConv2d, PixelCNN, PixelCNNNet
from gailkit.generators.digits.pixels import Pixels
from gailkit.generators.digits.rbm import RBM
from gailkit.nn.checkpoint import CheckpointError

# small but complete settings per model: one or two epochs on a few hundred images
QUICK = {
    "pixels": {},
    "rbm": {"epochs": 2, "hidden": 8, "sample_steps": 20},
    "dbn": {"epochs": 2, "hidden": "32,32", "sample_steps": 20},
    "vae": {"epochs": 2, "hidden": "32", "latent": 4},
    "gan": {"epochs": 2, "hidden": "32,32"},
    "cgan": {"epochs": 2, "hidden": "32,32", "penalty": "gp"},
    "pixelcnn": {"epochs": 1, "channels": 8, "layers": 1, "first_kernel": 3},
}


@pytest.fixture(scope="module")
def train():
    return load_data(None, split="train").subset(np.arange(256))


@pytest.fixture(scope="module")
def test_data():
    return load_data(None, split="test").subset(np.arange(64))


def test_masked_convolutions_are_causal():
    torch.manual_seed(0)
    net = PixelCNNNet(channels=8, layers=3, first_kernel=5).double()
    x = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    logits = net(x)
    for i in range(30):
        (grad,) = torch.autograd.grad(logits.flatten()[i], x, retain_graph=True)
        grad = grad.flatten()
        assert torch.all(grad[i:] == 0), f"pixel {i} sees pixels {torch.nonzero(grad[i:]).flatten() + i}"
        if i % 6 > 0:
            assert grad[i - 1] != 0  # and does see its left neighbour
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, mask_type="C")


def test_pixelcnn_likelihood_normalises_over_all_images():
    model = PixelCNN(channels=8, layers=2, first_kernel=3)
    torch.manual_seed(0)
    model.build({"channels": 1, "height": 2, "width": 3, "n_classes": 0, "name": "tiny"})
    with torch.no_grad():
        for p in model.net.parameters():
            p.normal_(0, 0.5)  # far from uniform, so normalisation is not an accident
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6))).reshape(64, 1, 2, 3)
    ll = model.loglik(ImageData(images.numpy()))
    assert float(torch.logsumexp(ll, 0)) == pytest.approx(0.0, abs=1e-9)
    assert float(ll.std()) > 0.5


def test_pixels_fit_is_closed_form(train, test_data, tmp_path):
    model = Pixels(pseudo_count=0.5).fit(train, progress=False)
    x = (np.asarray(train.images).reshape(len(train), -1) >= 0.5)
    p = (x.sum(0) + 0.5) / (len(x) + 1.0)
    np.testing.assert_allclose(model.p.numpy(), p, rtol=1e-6)
    Pixels().fit(train, out=tmp_path / "run")
    with pytest.raises(CheckpointError, match="already holds"):
        Pixels().fit(train, out=tmp_path / "run")
    t = (np.asarray(test_data.images).reshape(len(test_data), -1) >= 0.5)
    expected = (t * np.log(p) + (1 - t) * np.log(1 - p)).sum(1).mean()
    assert model.likelihood_metrics(test_data)["loglik_nats"] == pytest.approx(expected, rel=1e-6)


def test_rbm_learns_and_pcd_beats_independent_pixels(train, test_data):
    model = RBM(epochs=20, hidden=8, batch_size=16, lr=0.05, grid_every=0).fit(train, progress=False)
    lls = [h["train_loglik"] for h in model.history if "train_loglik" in h]
    baseline = Pixels().fit(train).likelihood_metrics(test_data)["loglik_nats"]
    test_ll = model.likelihood_metrics(test_data)["loglik_nats"]
    # measured with seeds 0 / 1 / 2: training log-likelihood +3.21 / +3.12 / +2.63 nats, held-out +2.75 / +2.52 /
    # +2.29 nats above independent pixels
    assert lls[-1] > lls[0] + 1.3, f"training log-likelihood {lls[0]:.2f} -> {lls[-1]:.2f}"
    assert test_ll > baseline + 1, f"held-out log-likelihood {test_ll:.2f} vs {baseline:.2f} for independent pixels"


def test_vae_and_pixelcnn_losses_drop(train):
    vae = get_generator("digits", "vae")(epochs=4, hidden="64", latent=4, grid_every=0).fit(train, progress=False)
    cnn = PixelCNN(epochs=3, channels=16, layers=1, first_kernel=3, lr=5e-3, grid_every=0).fit(train, progress=False)
    vae_drop = vae.history[0]["neg_elbo"] - vae.history[-1]["neg_elbo"]
    cnn_drop = cnn.history[0]["nll_nats"] - cnn.history[-1]["nll_nats"]
    # measured with seeds 0 / 1 / 2: -ELBO drops 3.24 / 2.83 / 3.88 nats, PixelCNN's NLL 8.56 / 10.38 / 7.96
    assert vae_drop > 1.4, f"VAE: -ELBO dropped {vae_drop:.2f} nats"
    assert cnn_drop > 4, f"PixelCNN: NLL dropped {cnn_drop:.2f} nats"


@pytest.mark.parametrize("name", sorted(QUICK))
def test_save_load_round_trip_and_refusals(name, train, test_data, tmp_path):
    cls = get_generator("digits", name)
    model = cls(**QUICK[name]).fit(train, out=tmp_path / "run", progress=False)
    first = model.sample(6, seed=3)
    assert first.shape == (6, 1, 8, 8) and first.dtype == np.float32
    assert 0 <= first.min() and first.max() <= 1
    loaded = cls.load(tmp_path / "run")
    np.testing.assert_array_equal(loaded.sample(6, seed=3), first)
    assert not np.array_equal(loaded.sample(6, seed=4), first)
    assert loaded.likelihood_metrics(test_data) == pytest.approx(model.likelihood_metrics(test_data))
    assert len(list((tmp_path / "run" / "samples").glob("*.png"))) == 1
    # images of another size, and values outside [0, 1]
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8\)"):
        loaded.evaluate(ImageData(np.zeros((3, 1, 4, 4), np.float32)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loaded.evaluate(np.full((3, 1, 8, 8), 16.0, np.float32))
    # a checkpoint of another model
    other = "rbm" if name != "rbm" else "pixels"
    with pytest.raises(CheckpointError, match=f"not digits/{other}"):
        get_generator("digits", other).load(tmp_path / "run")


def test_conditional_models_draw_the_chosen_digit_and_check_labels(train):
    from gailkit.generators.metrics import judge_for

    full_train, full_test = load_data(None, split="train"), load_data(None, split="test")
    cgan = get_generator("digits", "cgan")(epochs=40, hidden="64,64", lr=2e-3, grid_every=0).fit(full_train,
                                                                                                  progress=False)
    labels = np.repeat(np.arange(10), 20)
    drawn = judge_for(full_train, holdout=full_test).probs(cgan.sample(200, seed=0, labels=labels)).argmax(1)
    agree = (drawn == labels).mean()  # the offline digit judge reads the requested digit (0.1 by chance)
    # measured with seeds 0 / 1 / 2: 0.58 / 0.47 / 0.52 (0.82-0.86 after 60 epochs of a wider cGAN)
    assert agree > 0.3, f"the judge reads the requested digit in {agree:.0%} of 200 samples"
    with pytest.raises(ValueError, match=r"integers in \[0, 10\)"):
        cgan.sample(2, labels=[3, 12])
    gan = get_generator("digits", "gan")(grid_every=0, **QUICK["gan"]).fit(train, progress=False)
    with pytest.raises(ValueError, match="cgan"):
        gan.sample(2, labels=[1, 2])
    dbn = get_generator("digits", "dbn")(grid_every=0, **QUICK["dbn"]).fit(train, progress=False)
    assert dbn.sample(3, labels=[1, 1, 1]).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="hidden must be"):
        get_generator("digits", "dbn")(hidden="32,x").fit(train, progress=False)


def test_latent_interpolation_and_encoding(train):
    vae = get_generator("digits", "vae")(grid_every=0, **QUICK["vae"]).fit(train, progress=False)
    z = vae.latent(2, seed=0)
    path = vae.interpolate(z[0], z[1], 5, spherical=False)
    assert path.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(path[[0, -1]], vae.decode(z), atol=1e-6)
    np.testing.assert_allclose(vae.arithmetic(z[0], z[0], z[1]), vae.decode(z[1:]), atol=1e-6)
    assert vae.encode(train.subset(np.arange(3))).shape == (3, 4)
    cgan = get_generator("digits", "cgan")(grid_every=0, **QUICK["cgan"]).fit(train, progress=False)
    grid = cgan.interpolation_grid(rows=3, steps=4)
    assert grid.shape == (12, 1, 8, 8)
    with pytest.raises(ValueError, match="latents must have"):
        vae.interpolate(torch.zeros(3), torch.zeros(4))


def test_data_specs_are_checked():
    with pytest.raises(ValueError, match="unknown digits data"):
        load_data("emnist", split="train")
    with pytest.raises(ValueError, match="split"):
        load_data(None, split="validation")
    with pytest.raises(ValueError, match="no images"):
        ImageData(np.zeros((0, 1, 8, 8), np.float32))
    train, test = load_data(None, split="train"), load_data(None, split="test")
    assert len(train) + len(test) == 1797 and len(test) == 359  # 20% of each class, rounded
    np.testing.assert_array_equal(load_data("digits", split="test").images, test.images)


def test_rbm_switches_to_ais_above_the_exact_limit(train, test_data, tmp_path):
    from gailkit.generators.metrics import exact_log_partition, rbm_loglik

    model = RBM(epochs=3, hidden=10, exact_max_hidden=6, ais_betas=1000, grid_every=0).fit(
        train, out=tmp_path / "run", progress=False)
    metrics = model.likelihood_metrics(test_data)
    assert set(metrics) == {"loglik_nats_ais"}
    exact = rbm_loglik(model.flat(test_data), model.rbm.W, model.rbm.b, model.rbm.c,
                       exact_log_partition(model.rbm.W, model.rbm.b, model.rbm.c)).mean()
    assert metrics["loglik_nats_ais"] == pytest.approx(float(exact), abs=0.5)
    assert RBM.load(tmp_path / "run").likelihood_metrics(test_data) == pytest.approx(metrics)


def test_model_options(train):
    gauss = get_generator("digits", "vae")(epochs=2, hidden="32", latent=2, likelihood="gaussian",
                                           grid_every=0).fit(train, progress=False)
    drop = gauss.history[0]["neg_elbo"] - gauss.history[-1]["neg_elbo"]
    assert drop > 5, f"-ELBO dropped {drop:.2f}"  # seeds 0 / 1 / 2: 18.0 / 19.8 / 20.3 (from ~490)
    with pytest.raises(ValueError, match="likelihood must be"):
        get_generator("digits", "vae")(likelihood="poisson")
    sn = get_generator("digits", "gan")(epochs=1, hidden="16", spectral_norm=True, ema=0.0, grid_every=0)
    assert sn.fit(train, progress=False).sample(2).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="penalty must be"):
        get_generator("digits", "gan")(penalty="l2")


def test_mnist_spec_trains_and_evaluates_on_28x28(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 10
    x = np.zeros((60, 28, 28), np.uint8)
    for i, label in enumerate(y):  # a bar whose position is the label, plus noise
        x[i, 2 + 2 * label:4 + 2 * label, 4:24] = 255
        x[i] |= (rng.random((28, 28)) < 0.02).astype(np.uint8) * 200
    np.savez(tmp_path / "mini.npz", x=x, y=y)
    spec = f"mnist:{tmp_path / 'mini.npz'}"
    train, test = load_data(spec, split="train"), load_data(spec, split="test")
    assert train.shape == (1, 28, 28) and len(train) + len(test) == 60 and test.name == spec
    model = Pixels().fit(train)
    metrics = model.evaluate(test)  # finds the training split from the spec in the data's name
    assert {"score", "frechet", "nn_ratio", "loglik_nats"} <= set(metrics)
    with pytest.raises(ValueError, match=r"shape \(1, 28, 28\)"):
        model.evaluate(load_data(None, split="test"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .*images-idx3"):
        load_data(f"mnist:{tmp_path / 'empty'}", split="train")


@pytest.mark.parametrize("name", ["rbm", "dbn"])
def test_resume_is_exact_with_persistent_chains(name, train, tmp_path):
    cls = get_generator("digits", name)
    options = dict(QUICK[name], epochs=4, grid_every=0)
    full = cls(**options).fit(train, out=tmp_path / "full", progress=False)
    # the learning rates decay over `epochs`, so the interrupted run must have the same epochs:
    # it crashes in its third epoch, after the checkpoint of the second
    crashing = cls(**options)
    original = crashing.end_epoch

    def end_epoch(epoch: int) -> dict[str, float]:
        if epoch == 2:
            raise KeyboardInterrupt
        return original(epoch)

    crashing.end_epoch = end_epoch
    with pytest.raises(KeyboardInterrupt):
        crashing.fit(train, out=tmp_path / "split", progress=False)
    resumed = cls(**options).fit(train, out=tmp_path / "split", resume=True, progress=False)
    assert len(resumed.history) == 4
    for key, value in full.state_tensors().items():
        assert torch.equal(value, resumed.state_tensors()[key]), key
