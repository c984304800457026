"""Experts: preset quality, pickle-free save/load, demo collection and the CLI around them."""

import json

import numpy as np
import pytest

from gailkit.agents.experts import CollectConfig, ExpertConfig, collect_demos, load_expert, train_expert
from gailkit.cli import main
from gailkit.nn import CheckpointError


@pytest.fixture(scope="module")
def tiny_expert(tmp_path_factory):
    out = tmp_path_factory.mktemp("expert")
    expert, path = train_expert(ExpertConfig(env="CartPole-v1", out=out, steps=512, eval_episodes=2, progress=False))
    return expert, path


def test_a_short_run_of_the_cartpole_preset_learns(tmp_path):
    expert, _ = train_expert(ExpertConfig(env="CartPole-v1", out=tmp_path, steps=8192, eval_episodes=10,
                                          progress=False))
    ret, rand = expert.card["return_mean"], expert.card["random_return_mean"]
    # 8k of the preset's 100k steps; measured with seeds 0 / 1 / 2: return 378 / 158 / 354, random 22 / 23 / 21
    assert ret > 3 * rand, f"return {ret:.1f} after 8192 steps, random {rand:.1f}"


@pytest.mark.slow
def test_cartpole_preset_reaches_475(tmp_path):
    expert, _ = train_expert(ExpertConfig(env="CartPole-v1", out=tmp_path, eval_episodes=10, progress=False))
    assert expert.card["return_mean"] >= 475, f"return {expert.card['return_mean']:.1f} after 100k steps"
    assert expert.card["random_return_mean"] < 50, f"random return {expert.card['random_return_mean']:.1f}"


def test_save_load_round_trip_without_pickle(tiny_expert):
    expert, path = tiny_expert
    files = sorted(p.name for p in path.iterdir() if p.is_file())
    assert files == [".lock", "card.json", "config.json", "policy.safetensors"]  # .lock: gailkit.agents.run
    loaded = load_expert(path)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), expert.predict(obs))
    card = json.loads((path / "card.json").read_text())
    assert {"env_id", "algo", "steps", "seed", "return_mean", "return_std", "wall_time_s"} <= card.keys()
    assert card == loaded.card


def test_load_errors_name_the_problem(tiny_expert, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; train one"):
        load_expert(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_expert[1] / "config.json").read_text())
    with pytest.raises(CheckpointError, match="policy.safetensors is missing"):
        load_expert(broken)
    (broken / "policy.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="corrupt or not safetensors"):
        load_expert(broken)
    config = json.loads((tiny_expert[1] / "config.json").read_text())
    config["preset"]["net_arch"] = [7]
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "policy.safetensors").write_bytes((tiny_expert[1] / "policy.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="does not fit the network"):
        load_expert(broken)


def test_collect_demos_is_seeded_and_matches_spaces(tiny_expert, tmp_path):
    _, path = tiny_expert
    p1, d1 = collect_demos(CollectConfig(expert=path, episodes=3, out=tmp_path / "a.npz", seed=5))
    p2, d2 = collect_demos(CollectConfig(expert=path, episodes=3, out=tmp_path / "b.npz", seed=5))
    assert len(d1) == 3 and d1.env_id == "CartPole-v1"
    for a, b in zip(d1.trajectories, d2.trajectories):
        np.testing.assert_array_equal(a.obs, b.obs)  # same seed, same numbers
    assert d1.metadata["expert_card"]["env_id"] == "CartPole-v1"
    _, fixed = collect_demos(CollectConfig(expert=path, episodes=1, out=tmp_path / "f.npz",
                                           env="gailkit/CartPoleFixedHorizon-v1"))
    assert len(fixed.trajectories[0]) == 500 and not fixed.trajectories[0].terminal
    with pytest.raises(ValueError, match="observation space does not match Pendulum-v1"):
        collect_demos(CollectConfig(expert=path, episodes=1, out=tmp_path / "x.npz", env="Pendulum-v1"))


def test_cli_demos_and_envs(tiny_expert, tmp_path, capsys):
    _, path = tiny_expert
    out = tmp_path / "demos.npz"
    assert main(["demos", "collect", "--expert", str(path), "--episodes", "2", "--out", str(out)]) == 0
    assert f"wrote 2 episodes to {out}" in capsys.readouterr().out
    assert main(["demos", "info", str(out), "--env", "CartPole-v1"]) == 0
    text = capsys.readouterr().out
    assert "episodes" in text and "Discrete(2)" in text and "compatible with CartPole-v1" in text
    assert main(["demos", "info", str(out), "--env", "Pendulum-v1"]) == 2
    assert "observation space does not match Pendulum-v1" in capsys.readouterr().err
    assert main(["demos", "info", str(tmp_path / "none.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["expert", "eval", "--expert", str(path), "--episodes", "2"]) == 0
    assert "expert return" in capsys.readouterr().out
    assert main(["envs"]) == 0
    assert "gailkit/CartPoleFixedHorizon-v1" in capsys.readouterr().out
    assert main(["expert", "presets"]) == 0
    assert "HalfCheetah-v5" in capsys.readouterr().out
    assert main(["expert", "train", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "e")]) == 2
    assert "unknown env id 'NoSuchEnv-v0'" in capsys.readouterr().err
    assert main(["expert", "train", "--env", "gailkit/AcrobotFixedHorizon-v1", "--out", str(tmp_path / "e")]) == 2
    assert "no preset for 'gailkit/AcrobotFixedHorizon-v1'; pass --algo" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # refused before anything is written


def test_cli_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(c in text for c in ("envs", "expert", "demos"))
