"""The benchmark scripts' own logic (their runs are long; these parts are not)."""

from __future__ import annotations

import importlib.util
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from gailkit.agents.tuned import MUJOCO_PPO
from gailkit.errors import UsageError

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name: str):
    """``scripts/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script is loading
    spec.loader.exec_module(module)
    return module


def refusal(tmp_path: Path, capsys, *args: str) -> str:
    """``python scripts/bench_worldmodel.py ARGS --dir D --out F``, run in this process (no interpreter or
    imports to start): it must exit with status 2 and write neither D nor F. Its last line on stderr."""
    run, out = tmp_path / "run", tmp_path / "r.json"
    argv = [str(SCRIPTS / "bench_worldmodel.py"), *args, "--dir", str(run), "--out", str(out)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(argv[0], run_name="__main__")
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert not run.exists() and not out.exists()
    return err.strip().splitlines()[-1]


def test_a_variant_has_its_own_runs_and_keeps_the_env_s_other_settings():
    bench = script("bench_imitation")
    assert bench.run_variant("airl", "Hopper-v5") == ("airl", bench.tuned_parts("airl", "Hopper-v5"), {})
    name, parts, _ = bench.run_variant("airl", "HalfCheetah-v5", "logit")
    assert name == "airl-logit" and parts["disc"].reward == "logit"
    name, parts, _ = bench.run_variant("bc", "HalfCheetah-v5", "logit", True, 0.01)  # no discriminator, no PPO
    assert name == "bc" and parts == bench.tuned_parts("bc", "HalfCheetah-v5")
    pendulum_airl = bench.tuned_parts("airl", "Pendulum-v1")["disc"]
    _, parts, _ = bench.run_variant("airl", "Pendulum-v1", "gail")
    assert parts["disc"].inputs == pendulum_airl.inputs == "s" and pendulum_airl.reward is None
    with pytest.raises(SystemExit):
        bench.make_parser().parse_args(["--disc-reward", "nope"])
    # PPO's options: GAIL's and AIRL's own, not DAC's (SAC); the name says every one
    assert bench.run_variant("airl", "HalfCheetah-v5", None, True, 0.01)[::2] == (
        "airl-clip-ent0.01", {"clip_actions": True, "ent_coef": 0.01})
    assert bench.run_variant("gail", "HalfCheetah-v5", fixed_std=0.5)[::2] == ("gail-std0.5", {"fixed_std": 0.5})
    assert bench.run_variant("airl", "HalfCheetah-v5", None, True, None, 0.3, True)[::2] == (
        "airl-clip-std0.3-norm", {"clip_actions": True, "fixed_std": 0.3, "normalize_reward": True})
    # GAIL standardises MuJoCo observations by default: --normalize-obs names a variant only where it does not
    assert bench.run_variant("gail", "Pendulum-v1", normalize_obs=True)[::2] == ("gail-obs", {"normalize_obs": True})
    assert bench.run_variant("airl", "HalfCheetah-v5", normalize_obs=True)[::2] == ("airl-obs", {"normalize_obs": True})
    assert bench.run_variant("gail", "HalfCheetah-v5", normalize_obs=True)[::2] == ("gail", {})
    assert bench.run_variant("gail", "Hopper-v5", no_normalize_obs=True)[::2] == (
        "gail-noobs", {"normalize_obs": False})
    assert bench.run_variant("gail", "CartPole-v1", no_normalize_obs=True)[::2] == ("gail", {})
    assert bench.run_variant("airl", "Hopper-v5", no_normalize_obs=True)[::2] == ("airl", {})
    for env_id, on in [("HalfCheetah-v5", True), ("gailkit/HalfCheetahWithPosition-v5", True), ("Pendulum-v1", False)]:
        assert bench.config_for("gail", env_id, 0, Path("runs/x"), env=env_id, demos="d.npz").normalize_obs is on
    assert bench.config_for("gail", "Hopper-v5", 0, Path("runs/x"), env="Hopper-v5", demos="d.npz",
                            **bench.run_variant("gail", "Hopper-v5", no_normalize_obs=True)[2]).normalize_obs is False
    assert bench.run_variant("dac", "HalfCheetah-v5", "gail", True, 0.01, 0.5, True, normalize_obs=True)[::2] == (
        "dac-gail", {})
    assert bench.run_variant("airl", "HalfCheetah-v5", steps=10_000_000)[::2] == (
        "airl-steps10000000", {"steps": 10_000_000})
    assert bench.run_variant("bc", "HalfCheetah-v5", steps=10)[::2] == ("bc", {})  # BC takes gradient steps
    assert bench.run_variant("sqil", "HalfCheetah-v5", sac_ent_coef="auto_0.01")[::2] == (
        "sqil-alphaauto_0.01", {"ent_coef": "auto_0.01"})
    assert bench.run_variant("gail", "HalfCheetah-v5", sac_ent_coef="0.05")[::2] == ("gail", {})  # PPO: no alpha
    assert bench.run_variant("sqil", "HalfCheetah-v5", sac_ent_coef="0.01", no_clip_target=True)[::2] == (
        "sqil-alpha0.01-noclipq", {"ent_coef": "0.01", "clip_target": False})
    assert bench.run_variant("dac", "HalfCheetah-v5", no_clip_target=True, no_lr_decay=True)[::2] == ("dac", {})
    assert bench.run_variant("sqil", "CartPole-v1", no_clip_target=True, no_lr_decay=True)[::2] == (
        "sqil-noclipq-constlr", {"clip_target": False, "lr_decay": False})
    config = bench.config_for("gail", "HalfCheetah-v5", 0, Path("runs/x"), env="HalfCheetah-v5", demos="d.npz",
                              **bench.run_variant("gail", "HalfCheetah-v5", ent_coef=0.003)[2])
    assert config.ent_coef == 0.003 and config.n_steps == MUJOCO_PPO["n_steps"]

    _, parts, _ = bench.run_variant("airl", "HalfCheetah-v5", "gail")
    config = bench.config_for("airl", "HalfCheetah-v5", 0, Path("runs/x"), env="HalfCheetah-v5", demos="d.npz")
    used = bench.used_parts(config, parts)  # what the run itself records: AIRL's form, the run's gamma
    assert used["disc"]["airl"] is True and used["disc"]["reward"] == "gail" and used["disc"]["gamma"] == 0.99


def test_each_benchmark_run_s_command_line_trains_that_run():
    """``gailkit imitate`` parses the command the bench records for each run (every env's settings, every
    algorithm, a few variants) into the run's very config and parts, but its folder."""
    import dataclasses
    import shlex

    from gailkit.agents.registry import algorithms
    from gailkit.cli import _algorithm_parser
    from gailkit.configs import config_from_args

    bench = script("bench_imitation")
    variants = [{}, dict(disc_reward="logit", clip_actions=True, fixed_std=0.3), dict(no_normalize_obs=True),
                dict(sac_ent_coef="auto", no_clip_target=True, no_lr_decay=True)]
    checked = 0
    for env_id, settings in bench.TUNED.items():
        for algo in settings.algos:
            for variant in variants:
                if algo == "ppo-on-reward":
                    name, parts, given = algo, None, {"reward_from": Path("runs/gail_seed0")}
                else:
                    name, parts, given = bench.run_variant(algo, env_id, **variant)
                    given = {**given, "env": env_id, "demos": "/demos/x.npz"}
                config = bench.config_for(algo, env_id, 3, Path("/cache") / f"{name}_seed3", **given)
                [command] = bench.commands([config], parts)
                argv = shlex.split(command)
                assert argv[:3] == ["gailkit", "imitate", algo], command
                cls = algorithms()[algo]
                options = _algorithm_parser(algo, cls).parse_args(argv[3:])
                assert config_from_args(cls.Config, options) == dataclasses.replace(
                    config, out=Path("runs/cache") / f"{name}_seed3", progress=True), command
                mine = {part: config_from_args(part_cls, options, prefix=part, seed=config.seed)
                        for part, part_cls in cls.parts.items()}
                assert cls.resolve_parts(config, mine) == cls.resolve_parts(config, dict(parts or {})), command
                checked += 1
    assert checked >= 90, checked


@pytest.mark.parametrize("options, message", [
    (["--fixed-std", "0"], "--fixed-std 0.0: must be > 0"),
    (["--ent-coef", "-1"], "--ent-coef -1.0: must be >= 0"),
    (["--transfer", "--clip-actions"], "--transfer uses the rows' own runs"),
    (["--transfer", "--normalize-reward"], "--transfer uses the rows' own runs"),
    (["--transfer", "--normalize-obs"], "--transfer uses the rows' own runs"),
    (["--transfer", "--no-normalize-obs"], "--transfer uses the rows' own runs"),
    (["--normalize-obs", "--no-normalize-obs"], "not allowed with argument --normalize-obs"),
    (["--transfer", "--sac-ent-coef", "auto"], "--transfer uses the rows' own runs"),
    (["--transfer", "--no-clip-target"], "--transfer uses the rows' own runs"),
    (["--transfer", "--no-lr-decay"], "--transfer uses the rows' own runs"),
    (["--sac-ent-coef", "auto_"], "--sac-ent-coef auto_: give auto, auto_X or X"),
    (["--steps", "0"], "--steps 0: must be >= 1")])
def test_bench_imitation_refuses_bad_options_before_writing_anything(tmp_path, capsys, options, message):
    argv = [str(SCRIPTS / "bench_imitation.py"), "--envs", "Pendulum-v1", "--root", str(tmp_path / "root"),
            "--out", str(tmp_path / "results"), *options]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(argv[0], run_name="__main__")
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bench_imitation_turns_a_run_s_refusal_into_one_line_and_exit_status_2(tmp_path, capsys, monkeypatch):
    bench = script("bench_imitation")

    def refuse(env_id, *args):
        raise UsageError(f"{tmp_path}/{env_id}/sqil_seed0 holds a finished sqil run with --ent-coef left at its "
                         "default, not 0.01")

    monkeypatch.setattr(bench, "bench_env", refuse)
    monkeypatch.setattr(sys, "argv", ["bench_imitation.py", "--envs", "Pendulum-v1", "--root", str(tmp_path / "root"),
                                      "--out", str(tmp_path / "results")])
    with pytest.raises(SystemExit) as stop:
        bench.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--ent-coef left at its default, not 0.01" in err, err
    assert list((tmp_path / "results").iterdir()) == []  # no JSON


def test_probe_airl_reads_a_run_and_refuses_what_is_not_one(tmp_path, capsys, pendulum_demos):
    from gailkit.agents.gail import AIRLConfig, GAILConfig
    from gailkit.agents.imitate import imitate

    demos = pendulum_demos(2)
    small = dict(env="Pendulum-v1", demos=demos, steps=512, n_envs=2, n_steps=256, eval_episodes=1, progress=False)
    imitate(AIRLConfig(out=tmp_path / "airl", **small))
    imitate(GAILConfig(out=tmp_path / "gail", **small))
    probe = script("probe_airl")
    out = tmp_path / "probe.json"
    for bad in (tmp_path / "gail", tmp_path / "missing"):
        assert probe.main([str(bad), "--out", str(out)]) == 2 and not out.exists()
        assert capsys.readouterr().err.startswith("error: ")
    assert probe.main([str(tmp_path / "airl"), "--out", str(out)]) == 0
    row = json.loads(out.read_text())["runs"][0]
    assert row["steps"] == 512 and row["action_half_width"] == [2.0]
    assert 0.5 < row["policy_std"][0] < 1.5, row["policy_std"]  # PPO starts at 1 and has taken one round's steps
    assert row["expert"]["transitions"] == 400 and row["policy"]["transitions"] == 200  # 2 demos, 1 episode
    assert 0 <= row["expert"]["judged_expert"] <= 1


def test_sac_curves_compare_each_implementation_with_sb3_over_the_seeds():
    bench = script("bench_sac")

    def runs(finals):
        return [[{"steps": 5000, "return_mean": f - 10}, {"steps": 10000, "return_mean": f}] for f in finals]

    out = bench.compare({"sb3": runs([-150, -160, -170]), "fast_bf16": runs([-155, -165, -175]),
                         "fast": runs([-300, -310, -320])})
    gap = out["final"]["fast_bf16_minus_sb3"]
    assert gap["gap"] == pytest.approx(-5.0)
    assert gap["standard_error"] == pytest.approx(np.sqrt(2 * 100 / 3))  # each: variance 100 over 3 seeds
    assert gap["within_seed_noise"] and not out["final"]["fast_minus_sb3"]["within_seed_noise"]
    assert out["curve_mean"]["sb3"] == [-155, -165, -175]


@pytest.mark.parametrize("impl", ["sb3", "fast"])
def test_a_sac_curve_resumed_from_its_checkpoint_equals_one_run_straight_through(tmp_path, impl):
    import argparse

    from safetensors.numpy import load_file

    bench = script("bench_sac")

    def args(root, steps):  # Pendulum's preset learns from step 1,000: the resume falls after 10 updates
        return argparse.Namespace(root=root, steps=steps, chunk=1010, eval_every=1010, eval_episodes=1)

    straight = bench.curve(impl, "Pendulum-v1", 0, args(tmp_path / "a", 1040))
    bench.curve(impl, "Pendulum-v1", 0, args(tmp_path / "b", 1010))
    resumed = bench.curve(impl, "Pendulum-v1", 0, args(tmp_path / "b", 1040))
    assert [e["return_mean"] for e in resumed] == [e["return_mean"] for e in straight]
    a, b = (load_file(root / "Pendulum-v1" / impl / "seed0" / "checkpoint" / "policy.safetensors")
            for root in (tmp_path / "a", tmp_path / "b"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_bench_worldmodel_refuses_a_seed_without_a_warm_start_and_writes_nothing(tmp_path, capsys):
    assert "--seed 1 seeds the searches after a warm start" in refusal(tmp_path, capsys, "--preset", "fast-2h",
                                                                         "--seed", "1")


@pytest.mark.parametrize("preset, message", [
    ("fast-2h-m32-hold-z", "holds z's weights at V only's: set --warm-start-generations above 0"),
    ("fast-2h-m32-continue", "continues V only's search (and its step size) after a warm start"),
])
def test_bench_worldmodel_refuses_a_search_that_needs_a_warm_start_without_one(tmp_path, capsys, preset, message):
    assert message in refusal(tmp_path, capsys, "--preset", preset, "--warm-start-generations", "0")


@pytest.mark.parametrize("options, message", [
    (["--preset", "fast-2h-m32-noindicators-blind-dagger", "--warm-start-generations", "10"],
     "set one of --dagger-iterations and --warm-start-generations to 0"),
    (["--preset", "quick", "--dagger-iterations", "2"], "DAgger's teacher drives CarRacing, not"),
])
def test_bench_worldmodel_refuses_a_dagger_start_it_cannot_run_and_writes_nothing(tmp_path, capsys, options, message):
    assert message in refusal(tmp_path, capsys, *options)


def test_worldmodel_seeds_are_summed_up_track_by_track_and_over_the_seeds(tmp_path):
    import json
    import subprocess

    def result(vmc, vonly, **extra):
        rows = {"V+M+C": vmc, "V only": vonly, "random": [-30.0, -30.0], **extra}
        return {"returns": {k: {"all": v} for k, v in rows.items()}}

    results = tmp_path / "results"
    results.mkdir()
    (results / "bench_worldmodel_p.json").write_text(json.dumps(result([700.0, 600.0], [650.0, 650.0])))
    (results / "bench_worldmodel_p_seed1.json").write_text(  # a later run: one more row, left out (seed 0 lacks it)
        json.dumps(result([600.0, 700.0], [700.0, 640.0], **{"V+M+C, h's weights dropped": [1.0, 2.0]})))
    (results / "bench_worldmodel_other_seed1.json").write_text("{}")  # another preset's: not read
    cmd = [sys.executable, str(SCRIPTS / "bench_worldmodel_seeds.py"), "--preset", "p", "--results", str(results)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = json.loads((results / "bench_worldmodel_p_seeds.json").read_text())
    assert summary["rows"] == ["V+M+C", "V only", "random"] and summary["over_seeds"]["seeds"] == [0, 1]
    gap = summary["over_seeds"]["differences"]["V+M+C minus V only"]
    # per track, averaged over the seeds: (50 - 100) / 2 = -25 and (-50 + 60) / 2 = +5
    assert gap["over_tracks"]["mean"] == pytest.approx(-10.0)
    assert gap["over_tracks"]["standard_error"] == pytest.approx(np.std([-25.0, 5.0], ddof=1) / np.sqrt(2))
    assert gap["over_tracks"]["tracks_ahead"] == 1 and gap["over_tracks"]["tracks_behind"] == 1
    assert gap["per_seed"] == pytest.approx([0.0, -20.0])
    assert summary["over_seeds"]["means"]["V+M+C"]["mean"] == pytest.approx(650.0)
    # another preset on the same seeds and tracks (its own V+M+C, the same V only): compared seed by seed
    (results / "bench_worldmodel_q.json").write_text(json.dumps(result([720.0, 640.0], [650.0, 650.0])))
    (results / "bench_worldmodel_q_seed1.json").write_text(json.dumps(result([600.0, 760.0], [700.0, 640.0])))
    out = subprocess.run([*cmd[:3], "q", *cmd[4:], "--against", "p"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    vs = json.loads((results / "bench_worldmodel_q_seeds.json").read_text())["against"]
    assert vs["preset"] == "p" and vs["seeds"] == [0, 1] and vs["same_v_only"]
    # per track, averaged over the seeds: (20 + 0) / 2 = 10 and (40 + 60) / 2 = 50
    assert vs["V+M+C minus its V+M+C"]["over_tracks"]["mean"] == pytest.approx(30.0)
    assert vs["V+M+C minus its V+M+C"]["per_seed"] == pytest.approx([30.0, 30.0])
    out = subprocess.run([*cmd[:3], "q", *cmd[4:], "--against", "nothing"], capture_output=True, text=True)
    assert out.returncode == 2 and "shares 0 seed(s)" in out.stderr.strip().splitlines()[-1]
    (results / "bench_worldmodel_p_seed1.json").unlink()  # one seed left: nothing to sum up
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2 and "found 1 result(s) of --preset p" in out.stderr.strip().splitlines()[-1]


def test_worldmodel_seeds_compare_v_plus_m_plus_c_with_each_row_once():
    comparisons = script("bench_worldmodel_seeds").comparisons
    names = ["V+M+C", "V only", "random", "V+M+C (CMA-ES mean)", "V only (CMA-ES mean)",
             "V only, biases searched (z held)", "V+M+C, h's weights dropped", "V+M+C (DAgger start)",
             "V only (DAgger start)", "V+M+C (DAgger start), h held at its data mean"]
    assert comparisons(names) == [  # V only against the V+M+C with the same solution; a control row against V+M+C
        ("V+M+C", "V only"), ("V+M+C", "random"), ("V+M+C (CMA-ES mean)", "V only (CMA-ES mean)"),
        ("V+M+C", "V only, biases searched (z held)"), ("V+M+C", "V+M+C, h's weights dropped"),
        ("V+M+C (DAgger start)", "V only (DAgger start)"),  # a start's ablation against that start
        ("V+M+C (DAgger start)", "V+M+C (DAgger start), h held at its data mean")]


def test_a_stage_resumed_without_its_first_time_is_left_untimed_not_timed_at_its_rest(tmp_path):
    import json

    timed = script("bench_worldmodel").timed
    wall, wall_file = {}, tmp_path / "wall.json"
    assert timed(wall, wall_file, "collect", lambda n: n + 1, 1, started_before=True) == 2
    assert "collect" not in wall and not wall_file.exists()  # e.g. data an interrupted or older run left
    timed(wall, wall_file, "collect", lambda: None)  # a fresh stage is timed and kept
    first = json.loads(wall_file.read_text())["collect"]
    assert first >= 0 and wall == {"collect": first}
    timed(wall, wall_file, "collect", lambda: None, started_before=True)  # resumed later: its first time stays
    assert json.loads(wall_file.read_text()) == {"collect": first}


@pytest.mark.parametrize("model, shape", [("exponential", {"tau": 37.0}), ("logistic", {"mid": 40.0, "width": 9.0})])
def test_a_curve_fit_recovers_the_plateau_and_shape_it_was_drawn_from(model, shape):
    project = script("project_worldmodel_curves")
    g = np.arange(1, 121, dtype=float)
    truth = {"plateau": 750.0, "start": -70.0, **shape}
    fit = project.fit_curve(model, g, project.curve(model, truth, g, 1.0), 1.0)
    assert fit["plateau"] == pytest.approx(750.0, abs=15.0) and fit["start"] == pytest.approx(-70.0, abs=15.0), fit
    for name, value in shape.items():  # on the grid's nearest point
        assert fit[name] == pytest.approx(value, rel=0.05), fit
    assert fit["rms"] < 10.0 and not fit["at_grid_edge"], fit


def test_curve_projection_of_a_run_with_a_held_out_tail(tmp_path):
    import json

    project = script("project_worldmodel_curves")
    rng = np.random.default_rng(3)
    g = np.arange(1, 201, dtype=float)

    def history(plateau, tau):
        truth = {"plateau": plateau, "start": -70.0, "tau": tau}
        y = project.curve("exponential", truth, g, 1.0) + rng.normal(0.0, 40.0, len(g))
        return [{"generation": int(k), "mean": float(v), "best": float(v) + 100} for k, v in zip(g, y)]

    run = tmp_path / "run.json"
    run.write_text(json.dumps({"preset_values": {"warm_start_generations": 0},
                               "controller_history": history(800.0, 60.0), "vonly_history": history(700.0, 20.0)}))
    out = tmp_path / "projection.json"
    summary = project.main(["--runs", str(run), "--fit-until", "100", "--bootstrap", "40", "--horizons", "400",
                            "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(summary)) and out.with_suffix(".png").exists()
    result = summary["runs"][str(run)]
    vmc, vonly = result["V+M+C"]["exponential"], result["V only"]["exponential"]
    assert vmc["last_generation_fitted"] == 100 and vmc["plateau_interval"][0] < 800.0 < vmc["plateau_interval"][1], vmc
    assert vonly["plateau"] == pytest.approx(700.0, abs=25.0), vonly
    difference = result["V+M+C minus V only"]["exponential"]
    assert difference["plateau"] == pytest.approx(vmc["plateau"] - vonly["plateau"])
    assert difference["at"]["400"]["curve"] == pytest.approx(vmc["at"]["400"]["curve"] - vonly["at"]["400"]["curve"])
    after = vmc["after_the_fit"]  # the 100 held-out generations in blocks of 50, measured beside projected
    assert [b["generations"] for b in after] == [[101, 150], [151, 200]]
    assert all(abs(b["measured"] - b["projected"]) < 40.0 for b in after), after
    searching = tmp_path / "controller_real" / "history.json"  # a search still running: its own history
    searching.parent.mkdir()
    searching.write_text(json.dumps({"history": json.loads(run.read_text())["vonly_history"],
                                     "config": {"memory": False}}))
    alone = project.main(["--runs", str(searching), "--bootstrap", "40", "--out", str(tmp_path / "alone.json")])
    assert list(alone["runs"][str(searching)]) == ["V only"]
    assert alone["runs"][str(searching)]["V only"]["exponential"]["plateau"] == pytest.approx(700.0, abs=25.0)


def test_curve_projection_of_a_missing_run_exits_2_and_writes_nothing(tmp_path, capsys):
    project = script("project_worldmodel_curves")
    out = tmp_path / "projection.json"
    with pytest.raises(SystemExit) as stop:
        project.main(["--runs", str(tmp_path / "nope.json"), "--out", str(out)])
    assert stop.value.code == 2 and not out.exists()
    assert "no benchmark result" in capsys.readouterr().err


def test_memory_probe_without_a_world_model_exits_2_and_writes_nothing(tmp_path, capsys):
    probe = script("probe_worldmodel_memory")
    out = tmp_path / "probe.json"
    assert probe.main(["--run-dir", str(tmp_path), "--out", str(out)]) == 2
    assert not out.exists() and not out.with_suffix(".png").exists()
    assert "no trained world model" in capsys.readouterr().err


def test_memory_probe_pairs_tracks_pooled_and_per_seed():
    paired = script("probe_worldmodel_memory").paired
    a = [np.array([10.0, 20.0, 30.0]), np.array([0.0, 0.0, 3.0])]
    b = [np.array([0.0, 20.0, 0.0]), np.array([3.0, 3.0, 3.0])]
    d = paired(a, b)  # track differences 10, 0, 30 | -3, -3, 0
    assert d["mean"] == pytest.approx(34 / 6) and (d["ahead"], d["behind"]) == (2, 2)
    assert d["se"] == pytest.approx(np.std([10, 0, 30, -3, -3, 0], ddof=1) / np.sqrt(6))
    assert d["per_seed"] == pytest.approx([40 / 3, -2.0]) and d["seeds_ahead"] == 1
    assert d["se_over_seeds"] == pytest.approx(np.std([40 / 3, -2.0], ddof=1) / np.sqrt(2))
    assert paired(a[:1], b[:1])["se_over_seeds"] is None


def test_reference_airl_refuses_missing_demos_and_a_venv_without_imitation(tmp_path, capsys, monkeypatch):
    ref = script("reference_airl_imitation")
    assert ref.main(["--demos", str(tmp_path / "none.npz"), "--out", str(tmp_path)]) == 2
    assert "no demonstrations at" in capsys.readouterr().err
    demos = tmp_path / "d.npz"
    demos.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "imitation", None)  # as in gailkit's own venv, which has no imitation
    assert ref.main(["--demos", str(demos), "--out", str(tmp_path)]) == 2
    assert "imitation==1.0.1" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # nothing written


def test_demonstrations_with_the_position_are_the_zoo_expert_s_own_episodes(tmp_path):
    from gailkit.agents.experts import load_expert, rollout_episodes
    from gailkit.data.demos import load_demos
    from gailkit.zoo import zoo_expert_dir

    bench = script("bench_imitation")
    env_id = "gailkit/HalfCheetahWithPosition-v5"
    assert bench.slug(env_id) == "gailkit-HalfCheetahWithPosition-v5" and bench.slug("Hopper-v5") == "Hopper-v5"
    recorded = load_demos(bench.record_with_position(env_id, tmp_path / "d.npz", episodes=1)).trajectories[0]
    expert = load_expert(zoo_expert_dir("HalfCheetah-v5"))  # the reference: the expert in its own env
    plain = rollout_episodes(lambda obs: expert.predict(obs, True), "HalfCheetah-v5", 1, seed=0)[0]
    assert recorded.obs.shape == (1001, 18)
    np.testing.assert_array_equal(recorded.obs[:, 1:], plain.obs)
    np.testing.assert_array_equal(recorded.acts, plain.acts)
    assert recorded.obs[-1, 0] > 100, f"x at the end {recorded.obs[-1, 0]:.1f}: the expert runs forward"


def test_bench_imitation_summarises_the_learner_s_scalars_from_the_run_s_tensorboard(tmp_path, cartpole_demos):
    """Per run: first, last, lowest and highest of each train/* scalar, with the steps of the first and last
    (GAIL's PPO, 512-step rounds: a point every 1,000 steps, then the last); nothing for a run without them."""
    from torch.utils.tensorboard import SummaryWriter

    from gailkit.agents.gail import GAILConfig
    from gailkit.agents.imitate import imitate

    bench = script("bench_imitation")
    out = tmp_path / "gail"
    imitate(GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=out, steps=2560, eval_every=2560, n_envs=4,
                       n_steps=128, disc_updates=4, progress=False, eval_episodes=2))
    summary = bench.learner_scalars(out)
    assert {"train/approx_kl", "train/clip_fraction", "train/value_loss"} <= set(summary)
    kl = summary["train/approx_kl"]
    assert (kl["first_step"], kl["last_step"]) == (1024, 2560), kl
    assert kl["min"] <= min(kl["first"], kl["last"]) <= max(kl["first"], kl["last"]) <= kl["max"]
    assert summary["train/n_updates"]["last"] == 5 * 10 > summary["train/n_updates"]["first"]  # 10 epochs a round
    SummaryWriter(str(tmp_path / "old" / "tb")).close()  # a run from before the learner was logged
    assert bench.learner_scalars(tmp_path / "old") == {}


def test_bench_imitation_rows_hold_the_final_last_5_first_0_9_and_best_evaluation_per_seed():
    bench = script("bench_imitation")
    config = bench.config_for("gail", "CartPole-v1", 0, Path("runs/x"), env="CartPole-v1", demos="d.npz")

    def history(*scores):
        return [{"steps": 1000 * i, "normalised": v, "wall_s": 10.0 * i} for i, v in enumerate(scores)]

    row = bench.summarise([history(0.1, 0.95, 0.5, 0.95, 0.2, 0.3, 0.4), history(0.0, 0.2, 0.1)], 6000, config)
    assert row["final_normalised"] == [0.4, 0.1]
    assert row["mean_last5_normalised"] == pytest.approx([(0.5 + 0.95 + 0.2 + 0.3 + 0.4) / 5, 0.1])
    assert row["steps_to_0_9"] == [1000, None] and row["wall_to_0_9"] == [10.0, None]
    assert row["best_normalised"] == [0.95, 0.2] and row["steps_to_best"] == [1000, 1000]  # the first of ties


def test_gailkit_imitate_preset_tuned_trains_each_benchmark_run_and_the_flags_given_win(capsys):
    """``gailkit imitate ALGO --env ENV --preset tuned`` is the benchmark's run of ALGO on ENV (every env,
    every algorithm it tunes), and prints its whole command; a flag given beside the preset keeps its
    value; :func:`tuned_run` gives the same configs in Python."""
    import dataclasses
    import shlex

    from gailkit.agents.registry import algorithms
    from gailkit.agents.tuned import tuned_run
    from gailkit.cli import _algorithm_parser, _imitate_configs

    def cli(algo: str, *argv: str):
        cls = algorithms()[algo]
        return cls, _imitate_configs(cls, _algorithm_parser(algo, cls).parse_args(argv), argv)

    bench = script("bench_imitation")
    checked = 0
    for env_id, settings in bench.TUNED.items():
        for algo in settings.algos:
            source = ["--reward-from", "runs/gail"] if algo == "ppo-on-reward" else []
            cls, (config, parts, _, _) = cli(algo, f"--env={env_id}", "--demos", "d.npz", "--out", "o",
                                              "--preset", "tuned", *source)
            want = bench.config_for(algo, env_id, 0, Path("o"), env=env_id, demos=Path("d.npz"),
                                    **({"reward_from": Path("runs/gail")} if source else {}))
            assert config == dataclasses.replace(want, progress=True), (env_id, algo)
            bench_parts = bench.run_variant(algo, env_id)[1] or {}
            assert cls.resolve_parts(config, parts) == cls.resolve_parts(config, bench_parts), (env_id, algo)
            printed = capsys.readouterr().out.strip()
            assert printed.startswith(f"--preset tuned on {env_id}: gailkit imitate {algo} "), printed
            cls, (again, _, _, _) = cli(algo, *shlex.split(printed.split(": ", 1)[1])[3:])
            assert again == config, printed  # the printed command is the run without the preset
            checked += 1
    assert checked == 27, checked  # 6 on CartPole and Pendulum (with ppo-on-reward), 5 on each MuJoCo env

    cls, (config, parts, given, preset) = cli("dac", "--env", "Hopper-v5", "--demos", "d.npz", "--preset", "tuned",
                                      "--steps", "5000", "--gamma", "0.9", "--absorbing", "--disc-lr", "0.01")
    assert (config.steps, config.gamma, config.absorbing, config.learning_starts) == (5000, 0.9, True, 10_000)
    assert (parts["disc"].lr, parts["disc"].reward) == (0.01, "gail")  # given, then tuned
    assert {"steps", "gamma", "disc_lr"} <= given and {"learning_starts", "disc_reward"} <= preset - given
    py_config, py_parts = tuned_run("dac", "Hopper-v5", demos="d.npz", steps=5000, gamma=0.9, absorbing=True)
    assert py_config == config and cls.resolve_parts(config, {**py_parts, "disc": dataclasses.replace(
        py_parts["disc"], lr=0.01)}) == cls.resolve_parts(config, parts)


def test_a_bc_run_logs_its_loss_and_the_benchmark_reads_it(cartpole_demos, tmp_path):
    """A BC run writes ``bc/*`` to TensorBoard every 100 gradient steps and at its last; the
    benchmark's per-run learner scalars are those (a BC run without ``tb/`` stopped the benchmark)."""
    from gailkit.agents.bc import BCRunConfig
    from gailkit.agents.cloning import BCConfig
    from gailkit.agents.imitate import imitate

    out = tmp_path / "bc"
    imitate(BCRunConfig(env="CartPole-v1", demos=cartpole_demos, out=out, progress=False, eval_episodes=1),
            bc=BCConfig(steps=150, batch_size=32))
    scalars = script("bench_imitation").learner_scalars(out)
    assert {"bc/loss", "bc/neglogp", "bc/accuracy"} <= set(scalars), sorted(scalars)
    assert (scalars["bc/loss"]["first_step"], scalars["bc/loss"]["last_step"]) == (100, 150), scalars["bc/loss"]


def test_dream_probe_without_a_controller_exits_2_and_writes_nothing(tmp_path, capsys):
    probe = script("probe_worldmodel_dream")
    out = tmp_path / "probe.json"
    with pytest.raises(SystemExit) as stop:
        probe.main(["--dir", str(tmp_path / "run"), "--out", str(out)])
    assert stop.value.code == 2
    assert "no trained V+M+C controller" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, says", [([], "no noise-free episodes of the run's controller"),
                                          (["--tau", "0"], "0.0: must be > 0"),
                                          (["--dream-start", "1000"], "1000: must be < 1000"),
                                          (["--hold-z"], "--hold-z holds the weights on z at V only's"),
                                          (["--m-ensemble", "0"], "0: must be >= 1"),
                                          (["--ensemble-draw", "dream"], "--ensemble-draw picks among an ensemble's"),
                                          (["--keep", "first"], "invalid choice: 'first'"),
                                          (["--halt-quantile", "0.99"], "--halt-quantile Q halts dreams where"),
                                          (["--m-ensemble", "3", "--halt-quantile", "2"], "Q in (0, 1]")])
def test_dream_iterations_refuse_a_run_without_the_probe_s_episodes_and_options_out_of_range(tmp_path, capsys,
                                                                                            flags, says):
    bench = script("bench_worldmodel_dream_iterations")
    with pytest.raises(SystemExit) as stop:
        bench.main(["--dir", str(tmp_path / "run"), "--out", str(tmp_path / "it.json"), *flags])
    assert stop.value.code == 2
    assert says in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_dream_iterations_from_v_only_need_the_run_s_v_only_start(tmp_path, capsys):
    driving = tmp_path / "run" / "probe_dream" / "controller_noisy_50_noise0"
    driving.mkdir(parents=True)
    (driving / "meta.json").write_text("{}")
    bench = script("bench_worldmodel_dream_iterations")
    with pytest.raises(SystemExit) as stop:
        bench.main(["--dir", str(tmp_path / "run"), "--out", str(tmp_path / "it.json"), "--from-vonly"])
    assert stop.value.code == 2
    assert "no V only controller that V+M+C's search started from" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and not (tmp_path / "run" / "model").exists()


def test_dream_probe_closed_loop_warms_m_on_the_real_steps_as_stepping_them_one_at_a_time():
    import gymnasium as gym
    import torch

    from gailkit.worldmodels.linear_controller import controller_for
    from gailkit.worldmodels.model import WorldModel

    probe = script("probe_worldmodel_dream")
    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Box(np.array([-1.0, 0.0, 0.0], np.float32), np.ones(3, np.float32)),
                       latent_dim=4, hidden=8, n_mixtures=2)
    model.mdn.done_head.bias.data.fill_(-5.0)  # dreams that end after about 150 steps, and some that run out
    rng = np.random.default_rng(0)
    n, length, start = 3, 300, 7
    fed = [torch.randn(length + 1, 4) for _ in range(n)]
    eps = [{"actions": rng.uniform(0, 1, (length, 3)).astype(np.float32), "rewards": rng.normal(size=length)}
           for _ in range(n)]
    params = rng.normal(size=controller_for(model).n_params)
    got = probe.closed_loop(model, params, fed, eps, start=start, latent_noise=0.0, seed=3)

    # the reference: M stepped over the real prefix one step at a time, then the controller in its mean dream
    controller, gen = controller_for(model), torch.Generator().manual_seed(3)
    state, h = None, torch.zeros(n, 8)
    with torch.no_grad():
        for t in range(start):
            *_, state, h = model.mdn.step(torch.stack([z[t] for z in fed]),
                                          torch.as_tensor(np.stack([ep["actions"][t] for ep in eps])), state)
        z = torch.stack([zz[start] for zz in fed])
        ret, steps, alive = np.zeros(n), np.zeros(n), np.ones(n, bool)
        for _ in range(length - start):
            a = controller.act(np.repeat(params[None], n, 0), torch.cat([z, h], 1).numpy())
            z, r, p_done, state, h = model.mdn.step(z, torch.as_tensor(a), state, latent_noise=0.0)
            ret += r.numpy().astype(np.float32) * alive
            steps += alive
            alive &= ~(torch.rand(n, generator=gen) < p_done).numpy()
            if not alive.any():
                break
    assert got["return"] == pytest.approx(ret.mean(), rel=1e-4, abs=1e-3), (got, ret.mean())
    assert got["steps"] == steps.mean() and got["ended_early"] == float((steps < length - start).mean())
    assert got["real_return"] == pytest.approx(np.mean([ep["rewards"][start:].sum() for ep in eps]))


def test_ensemble_dream_probe_refuses_a_folder_without_iterations(tmp_path, capsys):
    probe = script("probe_worldmodel_ensemble_dream")
    with pytest.raises(SystemExit) as stop:
        probe.main(["--dir", str(tmp_path / "run"), "--iterations-folder", "dream_iterations_ensemble3",
                    "--out", str(tmp_path / "p.json")])
    assert stop.value.code == 2
    assert "no iterations in" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_ensemble_dream_probe_s_halting_dreams_are_dream_fitness_s_and_count_the_halts(tmp_path):
    from gailkit.worldmodels.controller import dream_fitness
    from gailkit.worldmodels.data import collect_chunks
    from gailkit.worldmodels.linear_controller import controller_for
    from gailkit.worldmodels.train import train_mdn, train_vae, warm_starts

    probe = script("probe_worldmodel_ensemble_dream")
    env = "gailkit/CartPoleCentredPixels-v1"
    collect_chunks(env, tmp_path / "data", 4, progress=False)
    train_vae(tmp_path / "data", tmp_path / "model", latent_dim=8, epochs=0, progress=False)
    model = train_mdn(tmp_path / "data", tmp_path / "model", epochs=1, hidden=16, ensemble=2, progress=False)
    z0, s0 = warm_starts(model, tmp_path / "data", 3)
    controller = controller_for(model)
    x = np.random.default_rng(0).normal(size=(1, controller.n_params))
    kw = dict(dreams=16, steps=20, seed=3, latent_noise=1.0)
    for threshold in (0.05, 1e9):
        ret, share = probe.halting_dreams(model, controller, x, z0, s0, halt_above=threshold, **kw)
        want = dream_fitness(model, controller, x, rollouts=16, max_steps=20, tau=1.0, seed=3, start_z=z0,
                             start_state=s0, ensemble_draw="dream", halt_above=threshold)[0]
        assert ret == pytest.approx(want, rel=1e-6)
        print(f"halting above {threshold}: {share:.0%} of dreams halted")
        assert (share > 0) == (threshold < 1), share  # a threshold no dream reaches halts none
    ret, share = probe.halting_dreams(model, controller, x, z0, s0, halt_above=1e-9, **kw)
    assert share == 1.0 and ret == -100.0  # every M's forecast differs: all halt at their first step


def test_quick_iterations_bench_scores_each_iteration_s_controller_in_full_episodes(tmp_path):
    """bench_worldmodel_quick_iterations on a tiny quick preset: train_iteratively's records, iteration 0 the same
    controller as the ablation bench's one-M row would train, and each iteration's controller (with its own M)
    scored on full real episodes; the summary's means are the seeds'."""
    import dataclasses

    import torch

    from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream
    from gailkit.worldmodels.data import collect_chunks
    from gailkit.worldmodels.iterative import SELECT_SEED
    from gailkit.worldmodels.presets import WM_PRESETS
    from gailkit.worldmodels.real import evaluate_controller
    from gailkit.worldmodels.train import start_latents, train_mdn, train_vae

    bench = script("bench_worldmodel_quick_iterations")
    p = dataclasses.replace(WM_PRESETS["quick"], episodes=3, latent_dim=4, vae_epochs=1, mdn_epochs=1, hidden=8,
                            generations=2, popsize=4, rollouts=2, max_steps=15)
    torch.set_num_threads(1)
    result = bench.run_seed(3, 2, eval_episodes=2, p=p, record_episodes=2)
    records = result["iterations"]
    assert [r["iteration"] for r in records] == [0, 1] and records[1]["episodes"] == p.episodes + 2
    # iteration 0 by hand: the preset's pipeline, its one M and its controller trained in the dream
    collect_chunks(p.env, tmp_path / "data", p.episodes, policy=p.collect_policy, seed=3000, progress=False)
    train_vae(tmp_path / "data", tmp_path / "model", **p.vae_options(), seed=3, progress=False)
    model = train_mdn(tmp_path / "data", tmp_path / "model", **p.mdn_options(), seed=3, progress=False)
    best, _ = train_controller_in_dream(model, DreamTrainingConfig(**p.controller_options(), seed=3),
                                        tmp_path / "c", start_z=start_latents(model, tmp_path / "data"),
                                        progress=False)
    real = evaluate_controller(model, best, p.env, 2)
    assert records[0]["real"]["all"] == real.tolist()
    # picked on the selection tracks in whole episodes (the library's) and, beside it, cut at the preset's 15 steps
    whole, cut = (evaluate_controller(model, best, p.env, 8, seed=SELECT_SEED, max_steps=m).mean() for m in (None, 15))
    assert (records[0]["select_return"], records[0]["select_return_cut"]) == (whole, cut)

    for seed, shift in ((0, 0.0), (1, 10.0)):
        fake = {"seed": seed, "eval_episodes": 2, "preset_values": {"max_steps": 200}, "iterations": [
            {"iteration": k, "episodes": 60 + 32 * k, "real": {"mean": 5.0 + shift + k}, "dream_return": 8.0,
             "gap": 3.0 - k, "select_return": [1.0, 2.0 - seed, 2.0][k], "select_return_cut": [3.0, 1.0, 1.0][k]}
            for k in range(3)]}
        (tmp_path / f"bench_worldmodel_quick_iterations_seed{seed}.json").write_text(json.dumps(fake))
    table = bench.summary(tmp_path)
    assert "kept minus V+M+C trained in the real env" not in table  # no ablation bench's JSON beside
    ablations = {"seeds": [0, 1], "rows": {"one M, real": {"real": [4.0, 16.0]}}}
    (tmp_path / "bench_worldmodel_quick_ablations.json").write_text(json.dumps(ablations))
    table = bench.summary(tmp_path)
    assert table["kept minus V+M+C trained in the real env"]["seeds"] == [2.0, 1.0]
    assert [row["real_mean"] for row in table["rows"]] == [10.0, 11.0, 12.0]
    assert table["iteration 2 minus iteration 0"] == {"seeds": [2.0, 2.0], "mean": 2.0, "se_over_seeds": 0.0,
                                                      "ahead": 2}
    # kept: seed 0's selection returns tie at iterations 1 and 2 (the earlier kept), seed 1's best is iteration 2
    assert table["kept"] == {"iteration": [1, 2], "real": [6.0, 17.0], "real_mean": 11.5}
    assert table["kept_cut"] == {"iteration": [0, 0], "real": [5.0, 15.0], "real_mean": 10.0}
    assert table["kept minus kept on cut selection episodes"]["seeds"] == [1.0, 2.0]
    assert (tmp_path / "bench_worldmodel_quick_iterations.json").exists()


def test_quick_ablations_bench_trains_each_row_as_the_library_would(tmp_path, monkeypatch):
    """bench_worldmodel_quick_ablations' rows, on a tiny quick preset: the one-M row is the preset's own single M
    and controller, the V-only row a z-only controller in the same dream, the held rows those controllers with h at
    its data mean; the ensemble rows train in their own draw's dream; the real rows call the library's real-env
    CMA-ES (its own tests cover it; here a stand-in returns known controllers) with the preset's settings and
    REAL_ROLLOUTS, over the first M's h; the summary's means are the seeds'."""
    import dataclasses

    import torch

    from gailkit.worldmodels.controller import DreamTrainingConfig, dream_fitness, train_controller_in_dream
    from gailkit.worldmodels.data import collect_chunks
    from gailkit.worldmodels.linear_controller import controller_for, without_memory
    from gailkit.worldmodels.model import WorldModel
    from gailkit.worldmodels.presets import WM_PRESETS
    from gailkit.worldmodels.real import evaluate_controller
    from gailkit.worldmodels.train import mean_memory, start_latents, train_mdn, train_vae

    bench = script("bench_worldmodel_quick_ablations")
    p = dataclasses.replace(WM_PRESETS["quick"], episodes=3, latent_dim=4, vae_epochs=1, mdn_epochs=1, hidden=8,
                            generations=2, popsize=4, rollouts=2, max_steps=15)
    real_calls, trained_in_real = [], {}

    def in_real(model_dir, env_id, config, out, **kwargs):  # records what the bench asks; returns a known C
        saved = WorldModel.load(model_dir)
        real_calls.append((saved.mdn.state_dict(), env_id, config, kwargs))
        n_params = controller_for(saved, memory=config.memory).n_params
        params = np.random.default_rng(len(real_calls)).normal(0.0, 0.5, n_params)
        trained_in_real[config.memory] = params
        return params, [{"generation": 1, "mean": float(len(real_calls))}]

    monkeypatch.setattr(bench, "train_controller_in_real", in_real)
    torch.set_num_threads(1)
    result = bench.run_seed(3, 2, eval_episodes=2, dream_episodes=4, p=p)
    assert result["ensemble"] == 2 and list(result["rows"]) == [
        "one M", "one M, h held", "V only", "per step", "per dream", "one M, real", "one M, real, h held",
        "V only, real"]
    # the one-M, held and V-only rows by hand: the same seeded pipeline with ensemble=1
    collect_chunks(p.env, tmp_path / "data", p.episodes, policy=p.collect_policy, seed=3000, progress=False)
    train_vae(tmp_path / "data", tmp_path / "model", **p.vae_options(), seed=3, progress=False)
    model = train_mdn(tmp_path / "data", tmp_path / "model", **p.mdn_options(), seed=3, progress=False)
    assert len(model.mdns) == 1
    start_z = start_latents(model, tmp_path / "data")
    h_mean, held = mean_memory(model, tmp_path / "data"), {}
    for name, memory in (("one M", True), ("V only", False), ("one M, real", True), ("V only, real", False)):
        if name.endswith("real"):
            best = trained_in_real[memory]
        else:
            cfg = DreamTrainingConfig(**p.controller_options(), seed=3, memory=memory)
            best, history = train_controller_in_dream(model, cfg, tmp_path / name, start_z=start_z, progress=False)
            assert [h["mean"] for h in result["rows"][name]["dream_history"]] == [h["mean"] for h in history], name
        row = result["rows"][name]
        assert row["real"]["all"] == evaluate_controller(model, best, p.env, 2).tolist(), name
        dream = dream_fitness(model, controller_for(model, memory=memory), best[None], rollouts=4,
                              max_steps=p.max_steps, tau=p.tau, seed=bench.DREAM_SEED, start_z=start_z)[0]
        assert row["dream"] == pytest.approx(float(dream)) and row["gap"] == pytest.approx(dream - row["real"]["mean"])
        if name in bench.HELD:
            held[bench.HELD[name]] = without_memory(model, best, h_mean)
    for name, params in held.items():
        assert result["rows"][name]["real"]["all"] == evaluate_controller(model, params, p.env, 2).tolist(), name
    # the real rows: the preset's CMA-ES settings with REAL_ROLLOUTS, in the preset's env, over the first M
    assert [config.memory for _, _, config, _ in real_calls] == [True, False]
    for state, env_id, config, kwargs in real_calls:
        expected = DreamTrainingConfig(**{**p.controller_options(), "rollouts": bench.REAL_ROLLOUTS}, seed=3,
                                       memory=config.memory)
        assert env_id == p.env and config == expected and kwargs == {"workers": 1, "progress": False}
        assert state.keys() == model.mdn.state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in model.mdn.state_dict().items())
    assert [h["mean"] for h in result["rows"]["V only, real"]["real_history"]] == [2.0]
    # the ensemble rows searched other dreams than the one M's, and each other's
    one, steps, dreams = (result["rows"][k]["dream_history"] for k in ("one M", "per step", "per dream"))
    assert [h["mean"] for h in steps] != [h["mean"] for h in one] != [h["mean"] for h in dreams]

    for seed, shift in ((0, 0.0), (1, 10.0)):
        row = {"real": {"mean": 5.0 + shift}, "dream": 8.0 + shift, "gap": 3.0}
        fake = {"seed": seed, "ensemble": 3, "eval_episodes": 2, "random": {"mean": 1.0},
                "rows": {name: row for name in bench.ROWS}}
        (tmp_path / f"bench_worldmodel_quick_ablations_seed{seed}.json").write_text(json.dumps(fake))
    table = bench.summary(tmp_path)
    assert table["rows"]["per dream"]["real"] == [5.0, 15.0] and table["rows"]["per dream"]["real_mean"] == 10.0
    assert table["differences"]["one M minus V only"] == {"seeds": [0.0, 0.0], "mean": 0.0, "se_over_seeds": 0.0,
                                                          "ahead": 0}
    assert (tmp_path / "bench_worldmodel_quick_ablations.json").exists()
