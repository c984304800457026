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


class GoRight:
    """A 1-D walk, 20 steps: x moves 0.1 left or right (clipped to [-1, 1]); the reward is x.
    The expert always goes right (return 15.5); a random walk earns about 0."""

    @staticmethod
    def make():
        import gymnasium as gym

        class Env(gym.Env):
            observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
            action_space = gym.spaces.Discrete(2)

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                self.x = 0.0
                return np.array([self.x], np.float32), {}

            def step(self, action):
                self.x = float(np.clip(self.x + (0.1 if action == 1 else -0.1), -1.0, 1.0))
                return np.array([self.x], np.float32), self.x, False, False, {}

        return Env()


@pytest.fixture(scope="module")
def go_right_demos(tmp_path_factory) -> Path:
    import gymnasium as gym

    from gailkit.agents.experts import random_returns, rollout_episodes
    from gailkit.data import save_demos

    if "gailkit-test/GoRight-v0" not in gym.registry:
        gym.register("gailkit-test/GoRight-v0", entry_point=GoRight.make, max_episode_steps=20)
    trajs = rollout_episodes(lambda obs: 1, "gailkit-test/GoRight-v0", 10, seed=0)
    env = gym.make("gailkit-test/GoRight-v0")
    card = {"return_mean": float(np.mean([t.episode_return for t in trajs])),
            "random_return_mean": float(random_returns("gailkit-test/GoRight-v0", 20, seed=0).mean())}
    return save_demos(tmp_path_factory.mktemp("go_right") / "demos.npz", trajs, env_id="gailkit-test/GoRight-v0",
                      observation_space=env.observation_space, action_space=env.action_space,
                      metadata={"expert_card": card})


def test_airl_reward_transfers_to_a_fresh_policy_on_a_tiny_task(go_right_demos, tmp_path, seed=0):
    """AIRL learns a reward from demonstrations of "go right"; PPO trained from scratch on that
    reward alone (the true reward, x, is never seen) goes right. Seeds 0/1/2 all reach 1.000
    normalised (a random walk is 0); the bound is 0.5."""
    common = ["--n-envs", "4", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "4", "--eval-every", "1024",
              "--eval-episodes", "5", "--checkpoint-every", "4096", "--no-absorbing", "--seed", str(seed),
              "--no-progress"]
    source, out = tmp_path / "airl", tmp_path / "transfer"
    assert main(["imitate", "airl", "--env", "gailkit-test/GoRight-v0", "--demos", str(go_right_demos),
                 "--out", str(source), "--steps", "2048", "--disc-updates", "4", "--disc-batch-size", "64",
                 *common]) == 0
    assert main(["imitate", "ppo-on-reward", "--reward-from", str(source), "--out", str(out), "--steps", "2048",
                 *common]) == 0
    final = json.loads((out / "eval.json").read_text())["history"][-1]["normalised"]
    assert final > 0.5, f"PPO on AIRL's reward reached {final:.3f} normalised (true reward never seen)"
