"""ppo-on-reward: PPO from scratch on a finished run's learned reward (``--reward-from RUN``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from gailkit.agents.sb3_adapter import start_learning
from gailkit.cli import main
from gailkit.nn.checkpoint import load_tensors

TINY = ["--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "2", "--eval-every", "256",
        "--eval-episodes", "1", "--checkpoint-every", "256", "--no-progress"]


class Noop(BaseCallback):
    def _on_step(self) -> bool:
        return True


@pytest.fixture(scope="module")
def airl_run(tmp_path_factory, cartpole_demos) -> Path:
    out = tmp_path_factory.mktemp("airl") / "run"
    assert main(["imitate", "airl", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(out),
                 "--steps", "256", "--disc-updates", "2", "--gamma", "0.95", *TINY]) == 0
    return out


def transfer(source: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return ["imitate", "ppo-on-reward", "--reward-from", str(source), "--out", str(out), "--steps", str(steps),
            *TINY, *extra]


def test_ppo_on_reward_trains_on_the_airl_reward_and_keeps_a_copy(airl_run, tmp_path):
    from gailkit.agents.imitate import load_run

    source = Path(shutil.copytree(airl_run, tmp_path / "airl"))
    out = tmp_path / "transfer"
    assert main(transfer(source, out, 256)) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["algo"] == "ppo-on-reward"
    # env, absorbing and gamma default to the reward run's
    assert (meta["config"]["env"], meta["config"]["absorbing"], meta["config"]["gamma"]) == ("CartPole-v1", True, 0.95)
    a, b = (load_tensors(d / "discriminator.safetensors") for d in (source / "checkpoint", out / "reward"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "reward/ is not the run's reward"
    assert (out / "policy.safetensors").is_file()

    run = load_run(out)  # the rewards PPO learns from are the reward model's transfer reward (AIRL: g)
    assert run.reward_model.config.airl
    start_learning(run.model, 10_000)
    callback = Noop()
    callback.init_callback(run.model)
    run._round(callback)
    flat = run.model.rollout_buffer.flat()
    want = run.reward_model.transfer_reward(flat["obs"], flat["acts"], flat["next_obs"], flat["dones"])
    np.testing.assert_array_equal(run.model.rollout_buffer.rewards.reshape(-1), want)
    assert not np.allclose(want, flat["env_rewards"]), "the learned reward should not be CartPole's"


def test_ppo_on_reward_resumes_exactly(airl_run, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(transfer(airl_run, straight, 512)) == 0
    assert main(transfer(airl_run, resumed, 256)) == 0
    assert main(transfer(airl_run, resumed, 512, "--resume")) == 0
    history = [json.loads((r / "eval.json").read_text())["history"] for r in (straight, resumed)]
    assert [(h["steps"], h["return_mean"]) for h in history[0]] == [(h["steps"], h["return_mean"]) for h in history[1]]
    assert history[0][-1]["steps"] == 512
    for name in ("policy.safetensors", "policy_optim.safetensors", "rng.safetensors"):
        a, b = (load_tensors(r / "checkpoint" / name) for r in (straight, resumed))
        assert a.keys() == b.keys(), name
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}:{key}")


def test_a_transfer_run_evaluates_and_resumes_without_its_source_folder(airl_run, tmp_path):
    """The run keeps its own copy of the reward (reward/) and of the demonstrations."""
    source = Path(shutil.copytree(airl_run, tmp_path / "airl"))
    out = tmp_path / "transfer"
    assert main(transfer(source, out, 256)) == 0
    shutil.rmtree(source)
    assert main(["eval", "--run", str(out), "--episodes", "1"]) == 0
    assert main(transfer(source, out, 384, "--resume")) == 0


def test_reward_from_a_run_without_a_discriminator_is_refused(cartpole_demos, tmp_path, capsys):
    bc = tmp_path / "bc"
    assert main(["imitate", "bc", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(bc),
                 "--bc-steps", "10", "--eval-episodes", "1", "--no-progress"]) == 0
    for source, says in ((bc, ["that bc run holds no learned reward", "pass an airl, gail or dac run directory"]),
                         (tmp_path / "missing", ["does not exist"])):
        out = tmp_path / "transfer"
        capsys.readouterr()
        assert main(transfer(source, out, 256)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("gailkit: error: "), f"not one error line: {err!r}"
        for text in says:
            assert text in err, err
        assert not out.exists(), f"a refused transfer left {sorted(p.name for p in out.iterdir())}"
