"""The command line's contract: a user error is one line on stderr naming the problem and the
fix, exit status 2, nothing written; a bug keeps its traceback; ``--help`` stays light."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gailkit.cli import main
from gailkit.errors import UsageError

FAST = ["--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1", "--eval-every", "128",
        "--eval-episodes", "1", "--checkpoint-every", "128", "--disc-updates", "1", "--no-progress"]


def fails_cleanly(argv: list[str], capsys, *expected: str) -> str:
    """Run ``argv``; it must exit 2 with one line on stderr containing each of ``expected``."""
    capsys.readouterr()
    assert main(argv) == 2, f"{argv} did not exit 2"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gailkit: error: "), f"not one error line: {err!r}"
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    return err


def imitate(demos, out, *extra: str) -> list[str]:
    return ["imitate", "gail", "--env", "CartPole-v1", "--demos", str(demos), "--out", str(out),
            "--steps", "128", *FAST, *extra]


@pytest.mark.parametrize("flag, value, says", [
    ("--gamma", "5", "--gamma 5.0: must be in (0, 1]"), ("--gamma", "0", "must be in (0, 1]"),
    ("--gae-lambda", "1.5", "--gae-lambda 1.5: must be in [0, 1]"),
    ("--checkpoint-every", "0", "--checkpoint-every 0: must be >= 1"),
    ("--eval-every", "-1", "--eval-every -1: must be >= 1"),
    ("--learning-rate", "0", "--learning-rate 0.0: must be > 0"),
    ("--env", "NoSuchEnv-v0", "unknown env id 'NoSuchEnv-v0'"), ("--env", "CartPole-v2", "did you mean CartPole-v1"),
    ("--disc-batch-size", "0", "batch_size"),
])
def test_bad_imitate_options_are_refused_before_anything_is_written(tmp_path, cartpole_demos, capsys,
                                                                    flag, value, says):
    out = tmp_path / "run"
    argv = imitate(cartpole_demos, out)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    fails_cleanly(argv, capsys, says)
    assert not out.exists(), f"{flag} {value} left {sorted(p.name for p in out.iterdir())}"


@pytest.mark.parametrize("argv, says", [
    (["eval", "--run", "RUN", "--episodes", "0"], "--episodes: 0: must be >= 1"),
    (["eval", "--run", "RUN", "--episodes", "-1"], "--episodes: -1: must be >= 1"),
    (["worldmodel", "eval", "--generations", "0"], "--generations: 0: must be >= 1"),
    (["--threads", "0", "envs"], "--threads: 0: must be >= 1"),
    (["imitate", "gail", "--env", "CartPole-v1", "--demos", "d.npz", "--n-envs", "abc"],
     "gailkit imitate gail: error: argument --n-envs: invalid int value: 'abc' (`gailkit imitate gail --help`"),
    (["imitate", "gail", "--env", "CartPole-v1", "--demos", "d.npz", "--preset", "fast"],
     "argument --preset: invalid choice: 'fast' (choose from 'tuned')"),
    (["generate", "train", "digits", "gan", "--out", "RUN", "--epochs", "abc"],
     "gailkit generate train digits gan: error: argument --epochs: invalid int value: 'abc' (`gailkit generate"),
    (["generate", "tune", "RUN", "--out", "RUN", "--ppo-epochs", "x"], "gailkit generate tune: error: argument"),
])
def test_argparse_refuses_bad_numbers(tmp_path, capsys, argv, says):
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("RUN", str(tmp_path)) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, f"not one line saying {says!r}: {err!r}"


def test_preset_tuned_refuses_an_env_or_algorithm_it_has_no_settings_for(tmp_path, capsys):
    from gailkit.agents.tuned import tuned

    out = tmp_path / "run"
    fails_cleanly(["imitate", "gail", "--env", "Acrobot-v1", "--demos", "zoo:Acrobot-v1", "--out", str(out),
                   "--preset", "tuned"], capsys, "--preset tuned: no tuned settings for Acrobot-v1; envs with them: "
                  "CartPole-v1, Pendulum-v1, Hopper-v5", "drop --preset")
    assert not out.exists()
    with pytest.raises(UsageError, match=r"no tuned settings for dream-gail on CartPole-v1; algorithms with them: "
                                         r"bc, gail, airl, dac, sqil, ppo-on-reward"):
        tuned("dream-gail", "CartPole-v1")


def test_expert_and_collect_options_are_checked(tmp_path, capsys):
    fails_cleanly(["expert", "train", "--env", "CartPole-v1", "--out", str(tmp_path / "e"), "--steps", "0"],
                  capsys, "--steps 0: must be >= 1")
    fails_cleanly(["expert", "train", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "e")], capsys,
                  "unknown env id")
    fails_cleanly(["expert", "eval", "--expert", str(tmp_path), "--episodes", "0"], capsys, "--episodes 0")
    fails_cleanly(["demos", "collect", "--expert", str(tmp_path), "--episodes", "0"], capsys, "--episodes 0")
    assert not (tmp_path / "e").exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cartpole_demos) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(imitate(cartpole_demos, out)) == 0
    return out


def damaged(run: Path, tmp_path: Path, file: str, drop: list[str]) -> Path:
    """A copy of ``run`` whose JSON ``file`` lacks the key path ``drop``."""
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    data = json.loads((copy / file).read_text())
    node = data
    for key in drop[:-1]:
        node = node[key]
    del node[drop[-1]]
    (copy / file).write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("file, drop, says", [
    ("config.json", ["algo"], "is not an imitation run (its config.json has no 'algo' entry)"),
    ("config.json", ["config"], "is not an imitation run"),
    ("config.json", ["config", "env"], "missing ['env']"),
    ("config.json", ["disc", "lr"], None),  # a default fills it: still evaluates
    ("config.json", ["disc"], None),
])
def test_eval_of_a_damaged_run_config(tmp_path, finished, capsys, file, drop, says):
    run = damaged(finished, tmp_path, file, drop)
    if says is None:
        assert main(["eval", "--run", str(run), "--episodes", "1"]) == 0
    else:
        fails_cleanly(["eval", "--run", str(run), "--episodes", "1"], capsys, says)


def test_resume_of_a_run_with_damaged_state(tmp_path, finished, cartpole_demos, capsys):
    run = damaged(finished, tmp_path, "checkpoint/state.json", ["history"])
    fails_cleanly(imitate(cartpole_demos, run, "--resume"), capsys, "state.json changed since it was written")
    (run / "checkpoint" / "manifest.json").unlink()  # a hand-edited folder with no seal
    fails_cleanly(imitate(cartpole_demos, run, "--resume"), capsys, "manifest.json is missing")


def test_discriminator_file_missing_a_key(tmp_path, finished):
    from gailkit.discriminators import Discriminator
    from gailkit.nn.checkpoint import CheckpointError

    run = damaged(finished, tmp_path, "checkpoint/discriminator.json", ["observation_space"])
    with pytest.raises(CheckpointError, match="discriminator.json has no 'observation_space' entry"):
        Discriminator.load(run / "checkpoint")


def test_eval_of_an_expert_folder_names_the_right_command(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "CartPole-v1", "preset": {"algo": "ppo"}}))
    fails_cleanly(["eval", "--run", str(tmp_path)], capsys, "expert directory", "gailkit expert eval")


def test_expert_config_missing_a_key(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "CartPole-v1"}))
    fails_cleanly(["expert", "eval", "--expert", str(tmp_path)], capsys, "has no 'preset' entry")


def test_report_of_a_run_with_no_evaluation(tmp_path, capsys):
    (tmp_path / "eval.json").write_text(json.dumps({"history": []}))
    fails_cleanly(["report", "--runs", f"a={tmp_path}"], capsys, "holds no evaluation yet")
    fails_cleanly(["report", "--runs", f"a={tmp_path / 'missing'}"], capsys, "eval.json is missing")


def test_demonstration_files_that_lie_about_their_episodes(tmp_path, cartpole_demos, capsys):
    with np.load(cartpole_demos) as z:
        arrays = {k: z[k] for k in z.files}
    cases = {
        "short_terminal": ({"terminal": arrays["terminal"][:-1]}, "terminal must be a bool array"),
        "string_terminal": ({"terminal": np.array(["yes"] * len(arrays["lengths"]))}, "terminal must be a bool"),
        "complex_obs": ({"obs": arrays["obs"].astype(np.complex64)}, "obs has dtype complex64"),
        "bool_obs": ({"obs": arrays["obs"] > 0}, "obs has dtype bool"),
        "timedelta_acts": ({"acts": arrays["acts"].astype("timedelta64[s]")}, "acts has dtype timedelta64"),
        "schema_0": ({"schema_version": np.array(0)}, "schema version 0 is not a version gailkit wrote"),
        "schema_float": ({"schema_version": np.array(1.0)}, "schema version 1.0"),
        "float_lengths": ({"lengths": arrays["lengths"].astype(float)}, "lengths must be a 1-D integer array"),
        "scalar_obs": ({"obs": np.array(1.0, dtype=np.float32)}, "obs has no rows"),
    }
    for name, (change, says) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **{**arrays, **change})
        fails_cleanly(["demos", "info", str(path)], capsys, says)


def test_a_bug_is_a_traceback_not_a_user_error(monkeypatch):
    import gailkit.cli as cli

    def broken(args):
        raise TypeError("unsupported operand type(s)")  # what a bug in gailkit looks like

    monkeypatch.setattr(cli, "cmd_envs", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        cli.main(["envs"])


def test_help_imports_no_heavy_library():
    code = ("import sys; from gailkit.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'stable_baselines3', 'transformers', 'music21') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", f"building the parser imported {out.stdout.strip()}"


def test_lazy_package_exports_are_the_objects_not_submodules():
    """``gailkit.agents.imitate`` is both a module and the function it exports; the package gives
    the function, as README's ``from gailkit.agents import GAILConfig, imitate, imitate_command, load_run``."""
    code = ("from gailkit.agents import GAILConfig, imitate, imitate_command, load_run; import gailkit.agents as a; "
            "from gailkit.agents.gail import GAILConfig as G; "
            "print(callable(imitate), callable(a.imitate), callable(load_run), callable(imitate_command), "
            "GAILConfig is G)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True"] * 5, out.stdout


# ----- gailkit imitate ALGO: each algorithm's own flags ------------------------------------------
def help_of(algo: str, capsys) -> set[str]:
    """The flags ``gailkit imitate ALGO --help`` lists."""
    capsys.readouterr()
    assert main(["imitate", algo, "--help"]) == 0
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", capsys.readouterr().out))


def test_imitate_help_lists_each_algorithm_s_own_flags(capsys):
    dac, gail, bc, sqil = (help_of(a, capsys) for a in ("dac", "gail", "bc", "sqil"))
    assert {"--disc-every", "--learning-starts", "--buffer-size", "--disc-lr", "--steps"} <= dac
    assert "--n-epochs" not in dac and "--n-steps" not in dac
    assert {"--n-epochs", "--n-steps", "--disc-lr", "--disc-updates", "--bc-steps"} <= gail
    assert "--buffer-size" not in gail and "--disc-every" not in gail
    assert {"--bc-steps", "--bc-batch-size", "--env", "--demos", "--out"} <= bc
    assert "--steps" not in bc and not any(f.startswith("--disc-") for f in bc)
    assert {"--expert-fraction", "--learning-starts"} <= sqil and not any(f.startswith("--disc-") for f in sqil)
    assert "--reward-from" in help_of("ppo-on-reward", capsys)
    # options an algorithm sets itself have no flag: the run's seed, AIRL's form and discount
    assert not {"--disc-seed", "--bc-seed", "--disc-airl"} & (dac | gail | bc)
    capsys.readouterr()
    assert main(["imitate", "--help"]) == 0
    listing = capsys.readouterr().out
    for name in ("bc", "gail", "airl", "dac", "sqil", "ppo-on-reward"):
        assert re.search(rf"^\s+{re.escape(name)}\s", listing, re.M), f"{name} not listed:\n{listing}"


@pytest.mark.parametrize("algo, flag, owners", [
    ("dac", "--n-epochs", "airl, dream-gail, gail, ppo-on-reward"),
    ("dac", "--n-epochs=3", "airl, dream-gail, gail, ppo-on-reward"),
    ("sqil", "--disc-lr", "airl, dac, dream-gail, gail"),
    ("bc", "--steps", "airl, dac, dream-gail, gail, ppo-on-reward, sqil"), ("gail", "--ground-every", "dream-gail"),
    ("gail", "--disc-every", "dac"), ("airl", "--expert-fraction", "sqil"),
])
def test_a_flag_of_another_algorithm_is_refused_naming_its_owners(tmp_path, cartpole_demos, capsys, algo, flag,
                                                                   owners):
    out = tmp_path / "run"
    argv = ["imitate", algo, "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(out), flag]
    if "=" not in flag:
        argv.append("3")
    name = flag.split("=")[0]
    fails_cleanly(argv, capsys, f"{name} is an option of {owners}, not of {algo}", f"gailkit imitate {algo} --help")
    assert not out.exists()


def test_an_unknown_imitate_flag_is_one_line(tmp_path, cartpole_demos, capsys):
    out = tmp_path / "run"
    fails_cleanly(["imitate", "gail", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(out),
                   "--see", "1"], capsys, "unrecognized arguments: --see 1", "gailkit imitate gail --help")
    fails_cleanly(["imitate"], capsys, "give an algorithm", "airl, bc, dac, dream-gail, gail, ppo-on-reward, sqil")
    fails_cleanly(["imitate", "gail", "--algo", "airl"], capsys, "two algorithms")
    assert not out.exists()


def test_imitate_bc_needs_no_steps(tmp_path, cartpole_demos, capsys):
    out = tmp_path / "bc"
    assert main(["imitate", "bc", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(out),
                 "--bc-steps", "20", "--eval-episodes", "1", "--no-progress"]) == 0
    assert f"wrote run to {out}" in capsys.readouterr().out
    meta = json.loads((out / "config.json").read_text())
    assert meta["algo"] == "bc" and meta["bc"]["steps"] == 20


def test_algo_flag_is_an_alias_for_help():
    assert main(["imitate", "--algo", "dac", "--help"]) == 0


def test_algo_flag_is_an_alias_for_the_positional(tmp_path, cartpole_demos, capsys):
    out = tmp_path / "bc"
    assert main(["imitate", "--algo", "bc", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out",
                 str(out), "--bc-steps", "20", "--eval-episodes", "1", "--no-progress"]) == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["algo"] == "bc"


def test_imitate_without_an_algorithm_asks_for_one(tmp_path, cartpole_demos, capsys):
    out = tmp_path / "run"
    fails_cleanly(["imitate", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(out)], capsys,
                  "give an algorithm")
    assert not out.exists()


def test_worldmodel_backend_frame_skip_and_env_are_checked(tmp_path, capsys):
    import socket

    import gymnasium as gym

    from gailkit.worldmodels.model import WorldModel

    with pytest.raises(SystemExit) as exit_info:  # an unknown backend
        main(["worldmodel", "train-controller", "--where", "real", "--backend", "dask", "--dir", str(tmp_path)])
    assert exit_info.value.code == 2 and "invalid choice: 'dask'" in capsys.readouterr().err
    WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2,
               env_id="gailkit/PendulumPixels-v1").save(tmp_path / "model")  # trained on another env
    common = ["--dir", str(tmp_path), "--generations", "1", "--popsize", "2", "--rollouts", "1"]
    fails_cleanly(["worldmodel", "train-controller", "--where", "real", *common], capsys,
                  "trained on gailkit/PendulumPixels-v1 frames, not gailkit/CartPoleCentredPixels-v1")
    WorldModel(gym.spaces.Discrete(2), latent_dim=8, hidden=16, n_mixtures=2,
               env_id="gailkit/CartPoleCentredPixels-v1").save(tmp_path / "model")
    fails_cleanly(["worldmodel", "train-controller", "--where", "real", "--frame-skip", "7", *common], capsys,
                  "--frame-skip 7 does not divide --max-steps (200 steps)")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if importlib.util.find_spec("ray") is not None:
        fails_cleanly(["worldmodel", "train-controller", "--where", "real", "--backend", "ray", "--ray-address",
                       f"127.0.0.1:{port}", *common], capsys, "does not answer")
    fails_cleanly(["worldmodel", "train-controller", "--where", "real", "--ray-address", f"127.0.0.1:{port}",
                   *common], capsys, "--ray-address needs --backend ray")
    fails_cleanly(["worldmodel", "train-controller", "--preset", "fast-2h-warm", *common], capsys,
                  "preset fast-2h-warm starts V+M+C's search from a V-only controller",
                  "python scripts/bench_worldmodel.py --preset fast-2h-warm")
    fails_cleanly(["worldmodel", "train-controller", "--preset", "fast-2h-m32-noindicators-blind-dagger", *common],
                  capsys, "starts V+M+C's search from C fitted by DAgger to a privileged driver")
    fails_cleanly(["worldmodel", "eval", *common], capsys, "controller")  # nothing trained yet
    assert not (tmp_path / "controller_real").exists()


def test_imitate_command_round_trips_tuples_booleans_and_paths_and_refuses_none():
    """:func:`imitate_command` writes what the CLI reads back: BC's layer widths, a boolean turned off,
    a path with a space; a field set to None where its default is not has no flag: ValueError."""
    import dataclasses
    import shlex

    from gailkit.agents import imitate_command
    from gailkit.agents.cloning import BCConfig
    from gailkit.agents.registry import algorithms
    from gailkit.agents.sqil import SQILConfig
    from gailkit.cli import _algorithm_parser
    from gailkit.configs import config_from_args

    cls = algorithms()["bc"]
    config = cls.Config(env="CartPole-v1", demos=Path("my demos/x.npz"), out=Path("runs/bc"), seed=4)
    bc = BCConfig(net_arch=(32, 16), steps=50)
    argv = shlex.split(imitate_command(config, **{"bc": bc}))
    assert "my demos/x.npz" in argv and argv[argv.index("--bc-net-arch") + 1] == "32,16", argv
    options = _algorithm_parser("bc", cls).parse_args(argv[3:])
    assert config_from_args(cls.Config, options) == config
    assert config_from_args(BCConfig, options, prefix="bc", seed=bc.seed) == bc
    sqil = SQILConfig(env="Pendulum-v1", demos=Path("d.npz"), out=Path("runs/s"), clip_target=False)
    assert "--no-clip-target" in shlex.split(imitate_command(sqil))
    with pytest.raises(ValueError, match=r"SQILConfig.ent_coef is None, which --ent-coef cannot give"):
        imitate_command(dataclasses.replace(sqil, ent_coef=None))
