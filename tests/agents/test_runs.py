"""Run directories that cannot be corrupted: whole checkpoints, refused option changes on
resume, portable and protected folders, and Ctrl-C that tells the truth."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gailkit.agents.gail import GAIL
from gailkit.agents.run import claim_run_dir
from gailkit.cli import main
from gailkit.nn.checkpoint import (
    CheckpointError,
    describe_changes,
    load_tensors,
    read_progress,
    save_tensors,
    verify_dir,
    write_json,
    write_progress,
    write_verified_dir,
)

# 128 steps a round, a checkpoint every other round: a run of 768 steps is a few seconds
TINY = ["--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "2", "--eval-every", "256",
        "--eval-episodes", "2", "--checkpoint-every", "256", "--disc-updates", "2", "--no-progress"]


def gail(demos: Path, out: Path, steps: int = 768, *extra: str) -> list[str]:
    return ["imitate", "gail", "--env", "CartPole-v1", "--demos", str(demos), "--out", str(out),
            "--steps", str(steps), *TINY, *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cartpole_demos) -> Path:
    """A finished 256-step run with its checkpoint, made once; tests work on copies."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(gail(cartpole_demos, out, 256)) == 0
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def weights(path: Path) -> dict:
    return {k: v.clone() for k, v in load_tensors(path).items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


# ----- one atomic, verified checkpoint -----------------------------------------------------------
KILLER = textwrap.dedent("""
    import os, signal, sys
    import gailkit.agents.base as base
    from gailkit.cli import main

    calls, kill_at, original = [0], int(sys.argv[1]), base.save_tensors

    def save_then_die(path, tensors):
        calls[0] += 1
        if calls[0] == kill_at:  # some files of this checkpoint are written, others are not
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, tensors)

    base.save_tensors = save_then_die
    sys.exit(main(sys.argv[2:]))
""")


def test_kill_9_during_a_save_resumes_from_the_last_whole_checkpoint(tmp_path, cartpole_demos):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert main(gail(cartpole_demos, full, 512)) == 0
    # Each checkpoint saves 3 files through base.save_tensors (policy, its optimiser, RNGs; the
    # discriminator saves its own):
    # call 5 is the middle of the second checkpoint, the last one, at 512 steps.
    proc = subprocess.run([sys.executable, "-c", KILLER, "5", *gail(cartpole_demos, killed, 512)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (killed / ".checkpoint.tmp").is_dir(), "the half-written checkpoint was not where expected"
    state = json.loads((verify_dir(killed / "checkpoint") / "state.json").read_text())
    assert state["num_timesteps"] == 256, f"the whole checkpoint left behind holds step {state['num_timesteps']}"

    assert main(gail(cartpole_demos, killed, 512, "--resume")) == 0
    assert same_weights(weights(killed / "policy.safetensors"), weights(full / "policy.safetensors")), \
        "resumed run's final policy differs from the uninterrupted run's"
    history = [json.loads((run / "eval.json").read_text())["history"] for run in (full, killed)]
    assert [(h["steps"], h["return_mean"]) for h in history[0]] == [(h["steps"], h["return_mean"]) for h in history[1]]
    assert not (killed / ".checkpoint.tmp").exists()


def test_a_checkpoint_folder_is_verified_before_it_is_read(tmp_path):
    def write(folder: Path) -> None:
        write_json(folder / "state.json", {"step": 1})
        (folder / "weights.bin").write_bytes(b"\0" * 64)

    ckpt = write_verified_dir(tmp_path / "checkpoint", write)
    verify_dir(ckpt)
    (ckpt / "weights.bin").write_bytes(b"\1" + b"\0" * 63)
    with pytest.raises(CheckpointError, match="changed since it was written"):
        verify_dir(ckpt)
    (ckpt / "weights.bin").unlink()
    with pytest.raises(CheckpointError, match="weights.bin is missing"):
        verify_dir(ckpt)
    (ckpt / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        verify_dir(ckpt)


def test_a_swap_cut_between_its_two_renames_is_recovered(tmp_path):
    ckpt = write_verified_dir(tmp_path / "checkpoint", lambda d: write_json(d / "state.json", {"step": 1}))
    ckpt.rename(tmp_path / ".checkpoint.old")  # the old folder moved aside, the new one not yet in
    (tmp_path / ".checkpoint.tmp").mkdir()
    read = verify_dir(ckpt)  # a reader reads the old folder where it lies and moves nothing
    assert json.loads((read / "state.json").read_text()) == {"step": 1} and not ckpt.exists()
    write_verified_dir(ckpt, lambda d: write_json(d / "state.json", {"step": 2}))  # the writer recovers
    assert json.loads((verify_dir(ckpt) / "state.json").read_text()) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_training_checkpoint_cut_between_its_two_writes_reads_the_previous_pair(tmp_path):
    import torch

    write_progress(tmp_path, 1, {"w": torch.ones(3)}, {"epoch": 1})
    save_tensors(tmp_path / "state_00002.safetensors", {"w": torch.zeros(3)})  # the stop: progress.json not yet
    progress = read_progress(tmp_path)
    assert progress == {"epoch": 1, "state": "state_00001.safetensors"}
    assert load_tensors(tmp_path / progress["state"])["w"].tolist() == [1.0, 1.0, 1.0]
    write_progress(tmp_path, 2, {"w": torch.full((3,), 2.0)}, {"epoch": 2})  # the next save replaces both
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.json", "state_00002.safetensors"]
    assert load_tensors(tmp_path / read_progress(tmp_path)["state"])["w"].tolist() == [2.0, 2.0, 2.0]
    changes = describe_changes({"lr": 0.1, "seed": 0}, {"lr": 0.2, "seed": 0, "beta": 1})
    assert changes == "beta: None -> 1, lr: 0.1 -> 0.2"


def test_a_tampered_checkpoint_is_refused_on_resume(tmp_path, cartpole_demos, capsys, finished):
    out = copy_of(finished, tmp_path)
    with open(out / "checkpoint" / "rng.safetensors", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x7f")
    capsys.readouterr()
    assert main(gail(cartpole_demos, out, 512, "--resume")) == 2
    err = capsys.readouterr().err
    assert "rng.safetensors changed since it was written" in err and err.count("\n") == 1, err


# ----- resume keeps the run's options ------------------------------------------------------------
@pytest.mark.parametrize("change, named", [
    (["--seed", "1"], "--seed 1"), (["--n-envs", "4"], "--n-envs 4"), (["--disc-lr", "0.01"], "--disc-lr 0.01"),
    (["--gamma", "0.9"], "--gamma 0.9"), (["--no-absorbing"], "--absorbing False"),
    (["--disc-updates", "3"], "--disc-updates 3"), (["--disc-hidden", "32"], "--disc-hidden 32"),
])
def test_resume_refuses_a_changed_option_and_names_it(tmp_path, cartpole_demos, capsys, finished, change, named):
    out = copy_of(finished, tmp_path)
    before = (out / "checkpoint" / "manifest.json").read_text()
    capsys.readouterr()
    assert main(gail(cartpole_demos, out, 512, "--resume", *change)) == 2
    err = capsys.readouterr().err
    assert named in err and "only --steps may change" in err, err
    assert (out / "checkpoint" / "manifest.json").read_text() == before, "the refused resume touched the run"


def test_a_resume_with_preset_tuned_continues_a_tuned_run_and_names_the_preset_for_another(tmp_path, cartpole_demos,
                                                                                         capsys):
    """The command that started a run, with ``--resume`` and more steps, continues it; on a run started
    without the preset, the refusal names what the preset sets (not a flag the user did not type)."""
    def dac(out: Path, steps: int, *extra: str) -> list[str]:
        return ["imitate", "dac", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(out),
                "--steps", str(steps), "--eval-episodes", "2", "--no-progress", *extra]

    tuned = tmp_path / "tuned"
    assert main(dac(tuned, 300, "--preset", "tuned")) == 0
    first = json.loads((tuned / "eval.json").read_text())["history"]
    assert main(dac(tuned, 600, "--preset", "tuned", "--resume")) == 0
    history = json.loads((tuned / "eval.json").read_text())["history"]
    assert history[: len(first)] == first and history[-1]["steps"] >= 600 > first[-1]["steps"], history
    assert json.loads((tuned / "config.json").read_text())["config"]["eval_every"] == 5000  # CartPole's DAC setting
    plain = tmp_path / "plain"
    assert main(dac(plain, 300)) == 0
    capsys.readouterr()
    assert main(dac(plain, 600, "--preset", "tuned", "--resume")) == 2
    err = capsys.readouterr().err
    assert ("--preset tuned sets --eval-every 5000, but the run has --eval-every 10000: drop --preset, or give "
            "--eval-every 10000 beside it") in err, err
    assert main(dac(plain, 600, "--preset", "tuned", "--resume", "--eval-every", "10000")) == 0


def test_resume_as_another_algorithm_is_refused_and_names_the_run_s(tmp_path, cartpole_demos, capsys, finished):
    out = copy_of(finished, tmp_path)
    before = (out / "checkpoint" / "manifest.json").read_text()
    capsys.readouterr()
    argv = gail(cartpole_demos, out, 512, "--resume")
    argv[argv.index("gail")] = "airl"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a gail run, not airl" in err and "gailkit imitate gail ... --resume" in err, err
    assert (out / "checkpoint" / "manifest.json").read_text() == before, "the refused resume touched the run"


def test_resume_refuses_other_demonstrations_and_another_env(tmp_path, cartpole_demos, capsys, finished):
    out = copy_of(finished, tmp_path)
    from gailkit.data import load_demos, save_demos

    demos = load_demos(cartpole_demos)
    other = save_demos(tmp_path / "other.npz", demos.trajectories[:-1], env_id=demos.env_id,
                       observation_space=demos.observation_space, action_space=demos.action_space,
                       metadata=demos.metadata)
    same = shutil.copy(cartpole_demos, tmp_path / "same_bytes.npz")
    capsys.readouterr()
    assert main(gail(other, out, 512, "--resume")) == 2
    assert "--demos" in (err := capsys.readouterr().err) and "holds other demonstrations" in err, err
    assert main(gail(Path(same), out, 384, "--resume")) == 0, "a copy of the run's demonstrations was refused"
    argv = gail(cartpole_demos, out, 512, "--resume")
    argv[argv.index("--env") + 1] = "gailkit/CartPoleFixedHorizon-v1"
    assert main(argv) == 2
    assert "--env gailkit/CartPoleFixedHorizon-v1 differs" in capsys.readouterr().err


def test_python_resume_compares_every_option(tmp_path, cartpole_demos):
    from gailkit.agents.gail import GAILConfig
    from gailkit.agents.imitate import imitate
    from gailkit.discriminators import DiscriminatorConfig
    from gailkit.errors import UsageError

    fast = dict(n_envs=2, n_steps=64, batch_size=64, n_epochs=2, eval_every=256, eval_episodes=2,
                checkpoint_every=256, disc_updates=2, progress=False)
    imitate(GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path, steps=256, **fast))
    with pytest.raises(UsageError, match="--ent-coef 0.5 differs"):
        imitate(GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path, steps=512, ent_coef=0.5,
                           **fast), resume=True)
    with pytest.raises(UsageError, match="--disc-lr 0.5 differs"):
        imitate(GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path, steps=512, **fast),
                disc=DiscriminatorConfig(lr=0.5), resume=True)
    result = imitate(GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path, steps=512, **fast),
                     resume=True)
    assert result["steps"] == 512


# ----- a run directory is portable and protected --------------------------------------------------
def test_a_run_started_with_relative_paths_is_evaluated_and_resumed_from_elsewhere(
        tmp_path, cartpole_demos, monkeypatch):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    shutil.copy(cartpole_demos, start / "demos.npz")
    monkeypatch.chdir(start)
    assert main(gail(Path("demos.npz"), Path("run"), 256)) == 0
    (start / "demos.npz").unlink()  # the run keeps its own copy
    monkeypatch.chdir(elsewhere)
    run = start / "run"
    assert main(["eval", "--run", str(run), "--episodes", "2"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert Path(saved["demos"]["path"]).is_absolute(), saved["demos"]
    # the run's own copy serves as --demos too: the same bytes as the file it started with
    assert main(["imitate", "gail", "--env", "CartPole-v1", "--demos", str(run / "demos.npz"),
                 "--out", str(run), "--steps", "512", *TINY, "--resume"]) == 0
    assert json.loads((run / "eval.json").read_text())["history"][-1]["steps"] == 512


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, cartpole_demos, capsys, finished):
    out = copy_of(finished, tmp_path)
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert main(gail(cartpole_demos, out, 256)) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["imitate", "bc", "--env", "CartPole-v1", "--demos", str(cartpole_demos),
                 "--out", str(out), "--bc-steps", "10", "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_folder_in_use_by_another_process_is_refused(tmp_path, cartpole_demos, capsys):
    out = tmp_path / "run"
    with claim_run_dir(out, resume=False):  # as a concurrent run holds it
        assert main(gail(cartpole_demos, out, 256)) == 2
        assert f"in use by another gailkit process (pid {os.getpid()})" in capsys.readouterr().err
    assert main(gail(cartpole_demos, out, 256)) == 0  # free again once released


def test_a_failed_start_leaves_no_folder(tmp_path, cartpole_demos, capsys):
    out = tmp_path / "runs" / "gail" / "run"  # nor the folders made to hold it
    argv = gail(cartpole_demos, out, 256)
    argv[argv.index("--env") + 1] = "Pendulum-v1"  # demonstrations of another env
    assert main(argv) == 2
    assert "does not match Pendulum-v1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert main([*gail(cartpole_demos, out, 256), "--fixed-std", "0.5"]) == 2  # CartPole's actions are discrete
    assert "--fixed-std 0.5: needs a Box action space" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# ----- Ctrl-C ------------------------------------------------------------------------------------
def interrupt_on_evaluation(monkeypatch, which: int, times: int = 1) -> None:
    """Deliver SIGINT ``times`` times during the ``which``-th evaluation (1 = the first)."""
    original, count = GAIL.evaluate, [0]

    def evaluate(self, episodes=None):
        count[0] += 1
        if count[0] == which:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)
        return original(self, episodes)

    monkeypatch.setattr(GAIL, "evaluate", evaluate)


def test_ctrl_c_during_the_first_evaluation_saves_and_exits_130(tmp_path, cartpole_demos, capsys, monkeypatch):
    out = tmp_path / "run"
    interrupt_on_evaluation(monkeypatch, which=1)
    assert main(gail(cartpole_demos, out, 512)) == 130
    captured = capsys.readouterr()
    assert "holds step 0: continue with the same command and --resume" in captured.err, captured.err
    assert "return" not in captured.out, "an interrupted run printed results as if it had finished"
    assert not (out / "policy.safetensors").exists()
    monkeypatch.undo()
    assert main(gail(cartpole_demos, out, 512, "--resume")) == 0
    assert json.loads((out / "eval.json").read_text())["history"][-1]["steps"] == 512


def test_a_second_ctrl_c_stops_at_once_and_names_the_last_checkpoint(tmp_path, cartpole_demos, capsys,
                                                                       monkeypatch):
    out = tmp_path / "run"
    interrupt_on_evaluation(monkeypatch, which=3, times=2)  # the evaluation at 512 steps
    assert main(gail(cartpole_demos, out, 768)) == 130
    err = capsys.readouterr().err
    assert "holds step 256" in err, err
    assert json.loads((verify_dir(out / "checkpoint") / "state.json").read_text())["num_timesteps"] == 256
