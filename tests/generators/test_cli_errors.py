"""Bad input to `gailkit generate` and `gailkit worldmodel`: help that lists every flag, values
refused up front, damaged or foreign directories reported in one line (exit 2) naming the
file and the fix, and no half-written output left behind."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gailkit.cli import main
from gailkit.errors import GailkitError
from gailkit.nn.checkpoint import CheckpointError, write_json


def run(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, f"expected a one-line error, got:\n{err}"
    return err


# -- help ---------------------------------------------------------------------------------------


def test_train_help_without_a_model_shows_help(capsys):
    assert run(["generate", "train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "FAMILY" in out and "--out" in out and "gailkit generate list" in out


def test_train_help_lists_every_flag_the_command_takes(capsys):
    from gailkit.generators.text.gpt import GPTConfig

    assert run(["generate", "train", "text", "gpt", "--help"]) == 0
    out = capsys.readouterr().out
    run_flags = ["--out", "--data", "--resume", "--eval", "--no-progress"]
    model_flags = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(GPTConfig)]
    missing = [flag for flag in run_flags + model_flags if f"{flag} " not in out]
    assert not missing, f"missing from the help: {missing}"
    assert "files:a.txt" in out  # --data explains the text family's forms


def test_tune_help_lists_the_run_flags_too(capsys):
    assert run(["generate", "tune", "--help"]) == 0
    out = capsys.readouterr().out
    missing = [f for f in ("--out", "--iterations", "--checkpoint-every", "--resume", "--kl-coef") if f not in out]
    assert not missing, f"missing from the help: {missing}"


def test_train_without_a_model_asks_for_one(capsys):
    assert run(["generate", "train"]) == 2
    assert "give FAMILY and MODEL" in one_line_error(capsys)


# -- values refused up front --------------------------------------------------------------------


@pytest.mark.parametrize("flag, value, rule", [
    ("--epochs", "-1", ">= 0"), ("--batch-size", "0", ">= 1"), ("--lr", "-1", "> 0"), ("--lr", "nan", "> 0"),
    ("--seed", "-1", "[0, 2**32)"), ("--grid-every", "-1", ">= 0"), ("--hidden", "0", ">= 1"),
    ("--momentum", "1", "[0, 1)"), ("--k", "0", ">= 1"),
])
def test_train_refuses_bad_options_before_writing(tmp_path, capsys, flag, value, rule):
    out = tmp_path / "run"
    assert run(["generate", "train", "digits", "rbm", flag, value, "--out", str(out), "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert f"{flag} " in err and rule in err, err
    assert not out.exists()


def test_model_specific_rule_names_the_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["generate", "train", "digits", "pixelcnn", "--first-kernel", "4", "--out", str(out)]) == 2
    assert "--first-kernel 4: must be odd" in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("args, flag", [
    (["-n", "-2"], "-n"), (["-n", "0"], "-n"), (["--seed", "-1"], "--seed"), (["--seed", str(2**32)], "--seed"),
])
def test_sample_refuses_bad_counts_and_seeds(tmp_path, capsys, args, flag):
    target = tmp_path / "s.png"
    assert run(["generate", "sample", str(tmp_path), *args, "--out", str(target)]) == 2
    assert f"argument {flag}: " in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.parametrize("flag", ["--iterations", "--checkpoint-every"])
def test_tune_refuses_zero_counts(tmp_path, capsys, flag):
    out = tmp_path / "tuned"
    assert run(["generate", "tune", str(tmp_path), "--out", str(out), flag, "0"]) == 2
    assert f"argument {flag}: 0: must be >= 1" in capsys.readouterr().err
    assert not out.exists()


def test_cyclegan_on_one_domain_is_a_user_error(tmp_path, capsys):
    out = tmp_path / "cg"
    assert run(["generate", "train", "image", "cyclegan", "--data", "digits", "--out", str(out), "--no-progress"]) == 2
    assert "two image domains" in one_line_error(capsys)
    assert not out.exists()


# -- damaged and foreign generator directories --------------------------------------------------


@pytest.fixture(scope="module")
def pixels_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "pixels"
    assert main(["generate", "train", "digits", "pixels", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def rbm_dir(tmp_path_factory) -> tuple[Path, str]:
    """A one-epoch RBM run, trained with the progress bar on and stderr a log file (not a TTY)."""
    out = tmp_path_factory.mktemp("gen") / "rbm"
    log = io.StringIO()
    with contextlib.redirect_stderr(log), contextlib.redirect_stdout(io.StringIO()):
        assert main(["generate", "train", "digits", "rbm", "--epochs", "1", "--hidden", "4", "--grid-every", "0",
                     "--out", str(out)]) == 0
    return out, log.getvalue()


def test_no_progress_bar_in_a_log(rbm_dir):
    _, log = rbm_dir
    assert "\r" not in log and "it/s" not in log, f"progress bar written into a non-TTY log: {log[:200]!r}"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


DAMAGE = {  # what to break -> words the one-line error must contain
    "missing dir": (lambda d: shutil.rmtree(d), ["config.json is missing"]),
    "empty dir": (lambda d: [p.unlink() if p.is_file() else shutil.rmtree(p) for p in list(d.iterdir())],
                  ["config.json is missing"]),
    "config.json without family": (lambda d: _edit_json(d / "config.json", lambda c: c.pop("family")),
                                   ["config.json", "'family'"]),
    "config.json without data": (lambda d: _edit_json(d / "config.json", lambda c: c.pop("data")),
                                 ["config.json", "'data'"]),
    "config not an object": (lambda d: _edit_json(d / "config.json", lambda c: c.update(config=[1])),
                             ["config.json", "'config'", "damaged"]),
    "data not an object": (lambda d: _edit_json(d / "config.json", lambda c: c.update(data=3)),
                           ["config.json", "'data'", "damaged"]),
    "option out of range": (lambda d: _edit_json(d / "config.json", lambda c: c["config"].update(pseudo_count=-1)),
                            ["config.json", "--pseudo-count -1", "damaged"]),
    "option of the wrong type": (lambda d: _edit_json(d / "config.json", lambda c: c["config"].update(epochs="x")),
                                 ["config.json", "--epochs 'x'", "damaged"]),
    "weights missing": (lambda d: (d / "weights.safetensors").unlink(), ["weights.safetensors is missing"]),
    "weights truncated": (lambda d: (d / "weights.safetensors").write_bytes(
        (d / "weights.safetensors").read_bytes()[:40]), ["weights.safetensors is corrupt"]),
}


@pytest.mark.parametrize("what", list(DAMAGE))
def test_damaged_generator_dir_is_one_line(tmp_path, capsys, pixels_dir, what):
    damage, words = DAMAGE[what]
    d = _copy(pixels_dir, tmp_path / "model")
    damage(d)
    target = tmp_path / "s.png"
    for argv in (["generate", "sample", str(d), "-n", "4", "--out", str(target)], ["generate", "eval", str(d)]):
        assert run(argv) == 2
        err = one_line_error(capsys)
        assert all(w in err for w in words), f"{what}: {err}"
        assert "does not fit" not in err  # a missing or broken file is not a model mismatch
    assert not target.exists()


def test_weights_of_another_model_do_not_fit(tmp_path, capsys, pixels_dir, rbm_dir):
    d = _copy(pixels_dir, tmp_path / "model")
    shutil.copy(rbm_dir[0] / "weights.safetensors", d / "weights.safetensors")
    assert run(["generate", "sample", str(d), "--out", str(tmp_path / "s.png")]) == 2
    err = one_line_error(capsys)
    assert "does not fit the digits/pixels model" in err and "no tensor 'p'" in err, err


def test_output_paths_that_are_folders_are_refused(tmp_path, capsys, pixels_dir):
    assert run(["generate", "sample", str(pixels_dir), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in one_line_error(capsys)
    assert run(["generate", "eval", str(pixels_dir), "--json", str(tmp_path)]) == 2
    assert f"--json {tmp_path} is a folder" in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_eval_json_goes_into_a_new_folder(tmp_path, pixels_dir):
    target = tmp_path / "new" / "dir" / "m.json"
    assert run(["generate", "eval", str(pixels_dir), "--json", str(target)]) == 0
    assert "loglik_nats" in json.loads(target.read_text())


def _shrink_tensors(path: Path) -> None:
    """Keep the first row of every weight: a valid file whose tensors fit no RBM of the run's size."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file({k: (v[:1].contiguous() if k.startswith("rbm.") and v.dim() else v) for k, v in tensors.items()},
              str(path))


@pytest.mark.parametrize("what, damage, words", [
    ("progress config a list", lambda c: _edit_json(c / "progress.json", lambda p: p.update(config=[1])),
     ["progress.json", "damaged"]),
    ("state file missing", lambda c: [p.unlink() for p in c.glob("state_*.safetensors")], ["is missing"]),
    ("state file truncated", lambda c: [p.write_bytes(p.read_bytes()[:50]) for p in c.glob("state_*.safetensors")],
     ["is corrupt"]),
    ("state of another shape", lambda c: _shrink_tensors(next(c.glob("state_*.safetensors"))),
     ["does not fit", "damaged"]),
])
def test_damaged_training_checkpoint_is_one_line(tmp_path, capsys, rbm_dir, what, damage, words):
    d = _copy(rbm_dir[0], tmp_path / "run")
    damage(d / "checkpoint")
    before = sorted(p.relative_to(d) for p in d.rglob("*"))
    assert run(["generate", "train", "digits", "rbm", "--epochs", "2", "--hidden", "4", "--grid-every", "0",
                "--out", str(d), "--resume", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert all(w in err for w in words), f"{what}: {err}"
    assert sorted(p.relative_to(d) for p in d.rglob("*")) == before  # nothing written


# -- world models -------------------------------------------------------------------------------


@pytest.mark.parametrize("env, words", [("NoSuchEnv-v0", "unknown env id"), ("CartPole-v1", "not (64, 64, 3)")])
def test_worldmodel_collect_refuses_an_unusable_env_before_writing(tmp_path, capsys, env, words):
    assert run(["worldmodel", "collect", "--env", env, "--dir", str(tmp_path / "wm"), "--episodes", "1"]) == 2
    assert words in one_line_error(capsys)
    assert not (tmp_path / "wm").exists()


def test_worldmodel_train_vae_without_chunks_is_one_line(tmp_path, capsys):
    write_json(tmp_path / "data" / "meta.json", {"env_id": "x", "action_space": {"type": "Discrete", "n": 2}})
    assert run(["worldmodel", "train-vae", "--dir", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert "no rollout chunks" in err and "worldmodel collect" in err, err
    assert not (tmp_path / "model").exists()


def test_world_model_refuses_unsupported_actions():
    from gailkit.worldmodels.model import WorldModel

    with pytest.raises(GailkitError, match="Discrete or flat Box actions"):
        WorldModel(gym.spaces.Box(0, 1, (2, 2)))


def test_controller_resume_refuses_another_world_model_or_options(tmp_path):
    from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream
    from gailkit.worldmodels.model import WorldModel

    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    config = DreamTrainingConfig(generations=1, popsize=4, rollouts=1, max_steps=3)
    out = tmp_path / "controller"
    train_controller_in_dream(model, config, out, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match="popsize: 4 -> 6"):
        train_controller_in_dream(model, dataclasses.replace(config, generations=2, popsize=6), out, resume=True,
                                  progress=False)
    other = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=16, n_mixtures=2)
    with pytest.raises(CheckpointError, match="parameters"):
        train_controller_in_dream(other, dataclasses.replace(config, generations=2), out, resume=True, progress=False)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    best, history = train_controller_in_dream(model, dataclasses.replace(config, generations=2), out, resume=True,
                                              progress=False)
    assert len(history) == 2 and np.isfinite(best).all()  # same model and options: it goes on
