"""Adversarial imitation end to end: learning, exact resume, run directory, bad input."""

import dataclasses
import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from gailkit.agents.bc import BCRunConfig
from gailkit.agents.cloning import BCConfig
from gailkit.agents.dac import DACConfig
from gailkit.agents.gail import GAIL, AIRLConfig, GAILConfig
from gailkit.agents.imitate import evaluate_run, imitate
from gailkit.cli import main
from gailkit.data import DemoFormatError, Trajectory, load_demos, save_demos
from gailkit.discriminators import DiscriminatorConfig
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import load_tensors

FAST = dict(n_envs=4, n_steps=128, disc_updates=16, progress=False, eval_episodes=3)


def test_discriminator_reward_separates_expert_from_random_transitions():
    """GAIL's reward on fixed data: trained on expert vs random CartPole transitions, it ranks
    held-out expert transitions above held-out random ones (the signal the policy climbs)."""
    from gailkit.agents.experts import rollout_episodes
    from gailkit.data import flatten_trajectories
    from gailkit.discriminators import DiscBatch, Discriminator

    def cartpole_controller(obs):  # the expert of tests/conftest.py (return 500)
        return int(obs[2] + 0.5 * obs[3] > 0)

    env = gym.make("CartPole-v1")
    env.action_space.seed(0)

    def transitions(policy, episodes, seed):
        return flatten_trajectories(rollout_episodes(policy, "CartPole-v1", episodes, seed=seed))

    def random_policy(obs):
        return env.action_space.sample()

    expert, random = transitions(cartpole_controller, 4, seed=0), transitions(random_policy, 60, seed=50)
    expert_test, random_test = transitions(cartpole_controller, 2, seed=7), transitions(random_policy, 30, seed=90)
    disc = Discriminator(env.observation_space, env.action_space, DiscriminatorConfig(seed=0))
    rng = np.random.default_rng(0)

    def batch(t, n=256):
        i = rng.integers(0, len(t), n)
        return DiscBatch.from_numpy(t.obs[i], t.acts[i], t.next_obs[i], t.dones[i].astype(float))

    for _ in range(100):
        disc.train_step(batch(expert), batch(random))
    r_expert, r_random = (disc.reward(t.obs, t.acts, t.next_obs, t.dones.astype(float))
                          for t in (expert_test, random_test))
    auc = (r_expert[:, None] > r_random[None, :]).mean()  # P(an expert transition out-earns a random one)
    # measured with seeds 0 / 1 / 2 (data and discriminator): AUC 0.989 / 0.770 / 0.982, mean gap 0.59 / 0.33 / 0.69
    assert auc > 0.65, f"AUC {auc:.3f}"
    assert r_expert.mean() > r_random.mean() + 0.1, f"mean reward {r_expert.mean():.3f} vs {r_random.mean():.3f}"


@pytest.mark.slow
def test_gail_beats_random_within_41k_steps(cartpole_demos, tmp_path):
    cfg = GAILConfig(env="CartPole-v1", demos=cartpole_demos, steps=40_960, out=tmp_path, eval_every=8192,
                     **{**FAST, "n_envs": 8})
    result = imitate(cfg)  # the defaults are the tuned CartPole settings
    random_return = load_demos(cartpole_demos).metadata["expert_card"]["random_return_mean"]
    # measured with seeds 0 / 1 / 2: return 305 / 500 / 488 (random 23); GAIL is noisy at 16k steps (19 / 83 / 236)
    assert result["return_mean"] > 3 * random_return, f"return {result['return_mean']:.1f}, random {random_return:.1f}"
    for name in ("config.json", "eval.json", "curve.png", "policy.safetensors", "checkpoint", "tb"):
        assert (tmp_path / name).exists(), name
    assert evaluate_run(tmp_path, episodes=2)["algo"] == "gail"


def run(tmp_path, demos, steps, resume=False, algo="gail"):
    common = dict(env="CartPole-v1", demos=demos, steps=steps, out=tmp_path, eval_every=512)
    if algo == "dac":  # DQN learns from step 256 on: both halves of the resumed run train
        cfg = DACConfig(**common, checkpoint_every=512, learning_starts=256, progress=False, eval_episodes=1)
    else:  # "-norm": the reward standardised, "-obs": the observations; the checkpoint carries their statistics
        name, _, variant = algo.partition("-")
        cfg = {"gail": GAILConfig, "airl": AIRLConfig}[name](
            **common, checkpoint_every=512, normalize_reward=variant == "norm", normalize_obs=variant == "obs",
            **dict(FAST, n_steps=64, eval_episodes=1))  # one evaluation episode: runs are compared, not scored
    return imitate(cfg, disc=DiscriminatorConfig(vail=algo == "gail", gradient_penalty="wgan-gp"), resume=resume)


@pytest.mark.parametrize("algo", ["gail", "airl", "airl-norm", "gail-obs", "dac"])
def test_resumed_run_equals_uninterrupted_run(cartpole_demos, tmp_path, algo):
    half = 512  # a checkpoint (the envs reset there); GAIL and AIRL: two rollouts of 256 steps on each side
    run(tmp_path / "straight", cartpole_demos, 2 * half, algo=algo)
    run(tmp_path / "resumed", cartpole_demos, half, algo=algo)
    run(tmp_path / "resumed", cartpole_demos, 2 * half, resume=True, algo=algo)
    history = [json.loads((tmp_path / r / "eval.json").read_text())["history"] for r in ("straight", "resumed")]
    assert [(h["steps"], h["return_mean"]) for h in history[0]] == [(h["steps"], h["return_mean"]) for h in history[1]]
    names = ["policy.safetensors", "discriminator.safetensors", "discriminator_optim.safetensors", "rng.safetensors"]
    names += ["extra.safetensors"] if algo in ("dac", "airl-norm") else []
    names += [] if algo == "dac" else ["policy_optim.safetensors"]
    for name in names:
        a = load_tensors(tmp_path / "straight" / "checkpoint" / name)
        b = load_tensors(tmp_path / "resumed" / "checkpoint" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}:{key}")


def test_a_run_from_before_new_options_resumes(cartpole_demos, tmp_path):
    run(tmp_path / "old", cartpole_demos, 512)
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    for newer in ("perception", "perception_memory"):  # options a later gailkit added
        del config["config"][newer]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    run(tmp_path / "old", cartpole_demos, 1024, resume=True)  # they count as their defaults
    assert json.loads((tmp_path / "old" / "eval.json").read_text())["history"][-1]["steps"] == 1024


def test_resume_and_restart_errors(cartpole_demos, tmp_path):
    with pytest.raises(UsageError, match="holds no run .*start a new run without --resume"):
        run(tmp_path / "nothing", cartpole_demos, 1024, resume=True)
    run(tmp_path / "done", cartpole_demos, 512)
    with pytest.raises(ValueError, match="already holds a run .*continue it with --resume"):
        run(tmp_path / "done", cartpole_demos, 512)


def test_demos_for_another_env(cartpole_demos, tmp_path):
    with pytest.raises(DemoFormatError, match="does not match Pendulum-v1"):
        GAIL(GAILConfig(env="Pendulum-v1", demos=cartpole_demos, out=tmp_path, **FAST))


def test_too_few_transitions_for_a_batch(tmp_path):
    env = gym.make("CartPole-v1")
    traj = Trajectory(np.zeros((11, 4), np.float32), np.zeros(10, np.int64), np.ones(10), True)
    path = save_demos(tmp_path / "tiny.npz", [traj], env_id="CartPole-v1",
                      observation_space=env.observation_space, action_space=env.action_space)
    with pytest.raises(UsageError, match="too few for a discriminator batch of 256"):
        GAIL(GAILConfig(env="CartPole-v1", demos=path, out=tmp_path, absorbing=False, **FAST))


class NaNReward(gym.Wrapper):
    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, float("nan"), term, trunc, info


def test_nan_reward_from_env_is_a_clear_error(cartpole_demos, tmp_path):
    gym.register("gailkit-test/NaNCartPole-v1", entry_point=lambda: NaNReward(gym.make("CartPole-v1")),
                 max_episode_steps=500)
    cfg = GAILConfig(env="gailkit-test/NaNCartPole-v1", demos=cartpole_demos, out=tmp_path, steps=1024, **FAST)
    with pytest.raises(ValueError, match="reward nan .*not finite|non-finite reward"):
        imitate(cfg)


def test_cli_imitate_bc_and_eval(cartpole_demos, tmp_path, capsys):
    out = tmp_path / "bc"
    assert main(["imitate", "bc", "--env", "CartPole-v1", "--demos", str(cartpole_demos),
                 "--out", str(out), "--bc-steps", "300", "--no-progress", "--eval-episodes", "3"]) == 0
    text = capsys.readouterr().out
    assert "normalised" in text and f"wrote run to {out}" in text
    assert main(["eval", "--run", str(out), "--episodes", "2"]) == 0
    assert "bc run" in capsys.readouterr().out
    assert main(["imitate", "dagger", "--env", "CartPole-v1", "--demos", str(cartpole_demos)]) == 2
    assert ("unknown imitation algorithm 'dagger'; choose one of airl, bc, dac, dream-gail, gail"
            in capsys.readouterr().err)
    assert main(["imitate", "gail", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--disc-reward", "x"]) == 2
    assert "discriminator reward='x'; choose one of" in capsys.readouterr().err
    # no default algorithm any more (it was gail)
    assert main(["imitate", "--env", "CartPole-v1", "--demos", str(cartpole_demos)]) == 2
    assert "airl, bc, dac, dream-gail, gail, ppo-on-reward, sqil" in capsys.readouterr().err
    # SAC's bfloat16 products: a dtype it does not have, and a discrete env (DQN); nothing is written
    assert main(["imitate", "sqil", "--env", "Pendulum-v1", "--demos", str(cartpole_demos), "--matmul-dtype",
                 "float16", "--out", str(tmp_path / "x")]) == 2
    assert "--matmul-dtype must be one of float32, bfloat16, got 'float16'" in capsys.readouterr().err
    assert main(["imitate", "dac", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--matmul-dtype",
                 "bfloat16", "--out", str(tmp_path / "x")]) == 2
    assert "--matmul-dtype bfloat16 applies to SAC" in capsys.readouterr().err
    # SAC's entropy coefficient: auto, auto_X or X with X > 0; DQN has none
    for bad in ("auto_x", "0", "-1", "nan", "auto_0", "fixed"):
        assert main(["imitate", "sqil", "--env", "Pendulum-v1", "--demos", str(cartpole_demos), "--ent-coef", bad,
                     "--out", str(tmp_path / "x")]) == 2
        assert f"--ent-coef {bad}: give auto, auto_X or X with X a positive number" in capsys.readouterr().err
    assert main(["imitate", "sqil", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--ent-coef", "0.1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--ent-coef 0.1 applies to SAC, the learner of continuous actions" in capsys.readouterr().err
    # SQIL's clipped target, on by default: a bound only where gamma < 1
    assert main(["imitate", "sqil", "--env", "Pendulum-v1", "--demos", str(cartpole_demos), "--gamma", "1",
                 "--out", str(tmp_path / "x")]) == 2
    assert ("--clip-target (SQIL's default) bounds Q by 1 / (1 - gamma): it needs --gamma below 1, got 1.0; add "
            "--no-clip-target to train with gamma 1") in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_dac_relabels_replay_samples_with_the_current_discriminator(cartpole_demos, tmp_path):
    from gailkit.agents.dac import DAC

    cfg = DACConfig(env="CartPole-v1", demos=cartpole_demos, steps=768, out=tmp_path, learning_starts=256,
                    eval_every=768, progress=False, eval_episodes=2)
    trainer = DAC(cfg)
    history = trainer.train()
    assert [h["steps"] for h in history] == [0, 768] and "accuracy" in trainer.stats  # the discriminator trained
    assert trainer.disc_config.reward == "logit"  # DAC's default reward
    assert (tmp_path / "checkpoint" / "discriminator.safetensors").exists()
    sample = trainer.model.replay_buffer.sample(32)
    want = trainer.disc.reward(sample.observations.numpy(), sample.actions.numpy(),
                               sample.next_observations.numpy(), sample.dones.numpy()[:, 0])
    np.testing.assert_allclose(sample.rewards.numpy()[:, 0], want, rtol=1e-6)


@pytest.mark.parametrize("low, high, expected", [(0.0, 0.01, 12), (0.999, 1.0, 20)])
def test_balancer_moves_discriminator_updates_towards_the_band(cartpole_demos, tmp_path, low, high, expected):
    # 4 rounds of 512 steps; an accuracy above the band removes one update per round, below adds one. A
    # discriminator that barely learns (lr 1e-6) never classifies all 256 + 256 samples right, so its
    # accuracy stays below the second band (a normal one reaches 1.0 on CartPole within two rounds)
    cfg = GAILConfig(env="CartPole-v1", demos=cartpole_demos, steps=2048, out=tmp_path, balance=True,
                     balance_low=low, balance_high=high, **FAST)
    trainer = GAIL(cfg, disc=DiscriminatorConfig(lr=1e-6))
    trainer.train()
    assert trainer.disc_updates == expected


def test_report_table_and_plot(cartpole_demos, tmp_path, capsys):
    for name in ("a", "b"):
        imitate(BCRunConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path / name, progress=False,
                            eval_episodes=2), bc=BCConfig(steps=50))
    assert main(["report", "--runs", f"first={tmp_path / 'a'}", str(tmp_path / "b"),
                 "--plot", str(tmp_path / "c.png"), "--json", str(tmp_path / "t.json")]) == 0
    text = capsys.readouterr().out
    assert "| random |" in text and "| expert |" in text and "| first |" in text and "| b |" in text
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_absorbing_transitions_fill_the_horizon():
    from gailkit.envs.wrappers import absorbing_transitions

    t = Trajectory(np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0, 1, 0]), None, terminal=True)
    u = Trajectory(np.zeros((3, 2), np.float32), np.array([1, 1]), None, terminal=False)
    tr = absorbing_transitions([t, u], horizon=6)
    assert len(tr) == 6 + 2 and tr.obs.shape == (8, 3) and not tr.dones.any()
    np.testing.assert_array_equal(tr.obs[3], [6, 7, 0])  # s_T, flag 0, leads to the absorbing state
    np.testing.assert_array_equal(tr.next_obs[3:6], [[0, 0, 1]] * 3)
    np.testing.assert_array_equal(tr.obs[4:6], [[0, 0, 1]] * 2)


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(cartpole_demos, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gailkit.cli", "imitate", "gail", "--env", "CartPole-v1",
           "--demos", str(cartpole_demos),
           "--out", str(out), "--steps", "200000", "--no-progress", "--eval-episodes", "2", "--n-envs", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)

    def cpu_s() -> float:  # the run's CPU time: a busy machine slows its wall clock, not this
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    deadline = time.time() + 120
    while not (out / "eval.json").exists() and time.time() < deadline:  # training has started
        time.sleep(0.2)
    started = cpu_s()
    while cpu_s() < started + 2 and time.time() < deadline:  # and run for 2 s of its own
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, text  # interrupted: not a success
    assert "interrupted at" in text and "--resume" in text
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert 0 < state["num_timesteps"] < 200_000
    steps = state["num_timesteps"] + 1024
    assert main(["imitate", "gail", "--env", "CartPole-v1", "--demos", str(cartpole_demos), "--out", str(out),
                 "--steps", str(steps), "--resume", "--no-progress"]) == 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["num_timesteps"] >= steps


def test_dac_with_sac_resumes_exactly(tmp_path, pendulum_demos):
    demos = pendulum_demos(3)

    def go(out, steps, resume=False):
        cfg = DACConfig(env="Pendulum-v1", demos=demos, steps=steps, out=out, absorbing=False, learning_starts=100,
                        batch_size=64, disc_every=100, checkpoint_every=200, eval_every=200, progress=False,
                        eval_episodes=1)
        return imitate(cfg, disc=DiscriminatorConfig(batch_size=64), resume=resume)

    # SAC learns from step 100 and the discriminator from step 100 on: the checkpoint at 200 holds
    # trained optimisers, discriminator and a replay buffer
    go(tmp_path / "straight", 300)
    go(tmp_path / "resumed", 200)
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["counters"]["n_updates"] > 0, state["counters"]
    disc = json.loads((tmp_path / "resumed" / "checkpoint" / "discriminator.json").read_text())
    assert disc["optimizer_steps"] > 0, "the discriminator never trained before the checkpoint"
    go(tmp_path / "resumed", 300, resume=True)
    for name in ("policy.safetensors", "actor_optim.safetensors", "critic_optim.safetensors",
                 "ent_coef_optim.safetensors", "discriminator.safetensors", "extra.safetensors"):
        a = load_tensors(tmp_path / "straight" / "checkpoint" / name)
        b = load_tensors(tmp_path / "resumed" / "checkpoint" / name)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}:{key}")


def test_dac_hands_its_matmul_dtype_to_sac(tmp_path, pendulum_demos):
    from gailkit.agents.dac import DAC

    demos = pendulum_demos(2, lambda o: np.zeros(1, np.float32))
    for dtype in ("float32", "bfloat16"):
        run = DAC(DACConfig(env="Pendulum-v1", demos=demos, steps=100, out=tmp_path / dtype, absorbing=False,
                            matmul_dtype=dtype, progress=False))
        assert run.model.matmul_dtype == dtype and run.model._graph_free


def tensorboard(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar a run wrote to ``tb/``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_sac_s_entropy_coefficient_is_learned_from_1_from_x_or_held_at_x(tmp_path, pendulum_demos):
    """--ent-coef reaches SAC: SB3's auto starts alpha at 1; auto_X starts it at X and learns it; X holds it.
    TensorBoard gets SAC's train/* scalars every 1,000 steps and at the end: the alpha each update used."""
    from gailkit.agents.dac import DAC
    from gailkit.agents.registry import algorithm

    demos = pendulum_demos(2, lambda o: np.zeros(1, np.float32))
    # DAC's config reaches SAC the same way as SQIL's
    dac = DAC(DACConfig(env="Pendulum-v1", demos=demos, steps=100, out=tmp_path / "dac", absorbing=False,
                        ent_coef="0.05", progress=False))
    assert dac.model.ent_coef_optimizer is None and float(dac.model.ent_coef_tensor) == pytest.approx(0.05)
    cls = algorithm("sqil")
    alphas, logged = {}, {}
    for given in (None, "auto_0.01", "0.05"):
        run = cls(cls.Config(env="Pendulum-v1", demos=demos, steps=1100, learning_starts=500, batch_size=64,
                             out=tmp_path / str(given), absorbing=False, ent_coef=given, eval_every=1100,
                             eval_episodes=1, progress=False))
        m = run.model
        start = m.log_ent_coef.exp().item() if m.ent_coef_optimizer is not None else None
        run.train()
        alphas[given] = (start, m.log_ent_coef.exp().item() if m.ent_coef_optimizer is not None else None)
        logged[given] = tensorboard(run.out)
    (start_1, end_1), (start_x, end_x), held = alphas.values()
    assert start_1 == pytest.approx(1.0) and end_1 < 0.9, alphas  # measured, seeds 0-2: 1 -> 0.849 in 600 updates
    assert start_x == pytest.approx(0.01) and end_x != start_x, alphas
    assert held == (None, None) and float(m.ent_coef_tensor) == pytest.approx(0.05)

    for given, scalars in logged.items():
        steps = [step for step, _ in scalars["train/critic_loss"]]
        assert steps == [1000, 1100], (given, steps)  # none before learning_starts, every 1,000, the last
        assert {"train/actor_loss", "train/ent_coef", "train/learning_rate"} <= set(scalars)
    learned = [v for _, v in logged[None]["train/ent_coef"]]
    assert learned == sorted(learned, reverse=True) and 1.0 > learned[0] > learned[-1] > end_1 * 0.99, learned
    assert [v for _, v in logged["0.05"]["train/ent_coef"]] == pytest.approx([0.05] * 2)
    assert "train/ent_coef_loss" not in logged["0.05"] and "train/ent_coef_loss" in logged["auto_0.01"]


def test_ppo_s_train_scalars_reach_tensorboard_once_a_round(tmp_path, cartpole_demos):
    """GAIL's PPO: its losses, KL and clip fraction, a point every 1,000 steps (every other 512-step round)."""
    out = tmp_path / "gail"
    imitate(GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=out, steps=4 * 512, eval_every=2048, **FAST))
    scalars = tensorboard(out)
    for tag in ("train/approx_kl", "train/clip_fraction", "train/value_loss", "train/policy_gradient_loss"):
        assert [step for step, _ in scalars[tag]] == [1024, 2048], (tag, scalars[tag])
    assert all(0 <= v <= 1 for _, v in scalars["train/clip_fraction"])
    assert "discriminator/accuracy" in scalars and "eval/normalised" in scalars


def test_imitate_or_resume_reuses_finished_runs_and_extends_partial_ones(cartpole_demos, tmp_path):
    """What benchmarks call per run: a finished run is read back, not retrained; a shorter one is
    continued from its checkpoint; a run stopped before its first checkpoint starts again."""
    from gailkit.agents.imitate import imitate_or_resume

    def cfg(steps):
        return GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path / "run", steps=steps,
                          eval_every=512, checkpoint_every=512, **FAST)

    first = imitate_or_resume(cfg(512))
    policy = tmp_path / "run" / "policy.safetensors"
    stamp = policy.stat().st_mtime_ns
    assert imitate_or_resume(cfg(512)) == first and policy.stat().st_mtime_ns == stamp  # read back
    longer = imitate_or_resume(cfg(1024))
    assert longer[: len(first)] == first and longer[-1]["steps"] == 1024  # continued, not restarted
    # a finished run of other options (e.g. of a default since changed) is not passed off as this one
    with pytest.raises(UsageError, match=r"holds a finished gail run with --seed 0, not 1: remove the folder"):
        imitate_or_resume(dataclasses.replace(cfg(512), seed=1))
    with pytest.raises(UsageError, match=r"holds a finished gail run with --disc-lr 0.001, not 0.01"):
        imitate_or_resume(cfg(512), disc=DiscriminatorConfig(lr=0.01))
    with pytest.raises(UsageError, match=r"holds a finished gail run, not dac: choose another folder"):
        imitate_or_resume(DACConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path / "run", steps=512))
    assert imitate_or_resume(cfg(1024)) == longer
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")  # a run killed before its first checkpoint
    again = imitate_or_resume(dataclasses.replace(cfg(512), out=tmp_path / "other"))
    assert [e["steps"] for e in again] == [0, 512]


def test_a_given_discriminator_config_trains_the_run_the_command_line_trains(cartpole_demos, tmp_path):
    """A run's discriminator is seeded with the run's seed whether its config is given or not, so
    ``imitate(config, disc=...)`` trains the same run as its ``gailkit imitate`` command (on seed 1,
    runs given a DiscriminatorConfig were seeded 0 before); a finished run seeded otherwise is refused."""
    from gailkit.agents.imitate import imitate_command, imitate_or_resume

    config = GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=tmp_path / "py", steps=512, seed=1,
                        eval_every=512, checkpoint_every=512, **FAST)
    disc = DiscriminatorConfig(reward="logit")
    imitate(config, disc=disc)
    command = imitate_command(config, tmp_path / "cli", disc=disc).split()
    assert main([*command[1:], "--no-progress"]) == 0
    py, cli = (load_tensors(tmp_path / run / "checkpoint" / "discriminator.safetensors") for run in ("py", "cli"))
    assert py.keys() == cli.keys() and all(torch.equal(py[k], cli[k]) for k in py), "the two runs differ"
    saved = json.loads((tmp_path / "py" / "config.json").read_text())
    assert saved["disc"]["seed"] == 1
    saved["disc"]["seed"] = 0  # as a run of the former code wrote it
    (tmp_path / "py" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(UsageError, match=r"holds a finished gail run with disc seed 0, not 1: remove the folder"):
        imitate_or_resume(config, disc=disc)
    with pytest.raises(UsageError, match=r"holds a run with disc seed 0, where gailkit now sets 1; start a new run"):
        imitate(dataclasses.replace(config, steps=1024), resume=True, disc=disc)


@pytest.mark.parametrize("clip", [False, True])
def test_clip_actions_shows_the_discriminator_the_actions_the_env_ran(tmp_path, pendulum_demos, clip):
    from gailkit.agents.gail import AIRL

    demos = pendulum_demos(2)
    run = AIRL(AIRLConfig(env="Pendulum-v1", demos=demos, steps=512, out=tmp_path / "run", n_envs=2, n_steps=256,
                          disc_updates=1, eval_episodes=1, progress=False, clip_actions=clip))
    seen = {}
    reward = run.disc.reward

    def spy(obs, acts, next_obs, dones, log_probs=None):
        with torch.no_grad():  # log pi at these actions under the policy that collected them
            obs_t, _ = run.model.policy.obs_to_tensor(obs)
            want = run.model.policy.get_distribution(obs_t).log_prob(torch.as_tensor(acts)).numpy()
        seen.update(acts=acts, log_probs=log_probs, want=want)
        return reward(obs, acts, next_obs, dones, log_probs)

    run.disc.reward = spy
    run.train()
    outside = int((np.abs(seen["acts"]) > 2).sum())
    np.testing.assert_allclose(seen["log_probs"], seen["want"], rtol=1e-5, atol=1e-5)  # AIRL's log pi at them
    if clip:
        assert outside == 0, f"{outside} of {len(seen['acts'])} actions outside [-2, 2] reached the discriminator"
    else:  # a Gaussian with std 1 leaves [-2, 2] about 5% of the time: 512 samples hold some
        assert outside > 0, "no PPO sample left the action space: the test shows nothing"


def test_normalize_reward_standardises_what_ppo_learns_from_by_every_reward_so_far(tmp_path, pendulum_demos):
    from gailkit.agents.gail import AIRL

    run = AIRL(AIRLConfig(env="Pendulum-v1", demos=pendulum_demos(2), steps=1536, out=tmp_path / "run", n_envs=2,
                          n_steps=256, disc_updates=1, eval_episodes=1, progress=False, normalize_reward=True))
    raw, seen = [], []
    reward, relabel = run.disc.reward, run.model.relabel  # PPO's hook, run once per rollout

    def spy_reward(*args):
        raw.append(reward(*args))
        return raw[-1]

    def spy_relabel(buffer):
        relabel(buffer)
        seen.append(buffer.rewards.reshape(-1).copy())  # time-major, as the discriminator saw them

    run.disc.reward, run.model.relabel = spy_reward, spy_relabel
    run.train()
    assert len(raw) == len(seen) == 3
    for k in range(3):  # the reference: NumPy's mean and variance of every raw reward up to this round
        every = np.concatenate(raw[: k + 1]).astype(np.float64)
        want = np.clip((raw[k] - every.mean()) / np.sqrt(every.var() + 1e-8), -10, 10)
        np.testing.assert_allclose(seen[k], want, rtol=1e-5, atol=1e-5)
    # AIRL's f is not standard already, so the check above could have failed on raw rewards
    assert abs(raw[-1].mean()) > 0.1 or abs(raw[-1].std() - 1) > 0.1, (raw[-1].mean(), raw[-1].std())


def spy_rounds(run) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Record each round's observations and the features the policy made of them, as PPO collected."""
    rounds, features = [], []
    relabel = run.model.relabel  # PPO's hook, run once per rollout

    def spy(buffer):
        rounds.append(buffer.observations.reshape(len(buffer.observations) * buffer.n_envs, -1).copy())
        with torch.no_grad():
            features.append(run.model.policy.extract_features(torch.from_numpy(rounds[-1])).numpy())
        relabel(buffer)

    run.model.relabel = spy
    return rounds, features


def standardised(x: np.ndarray, by: np.ndarray) -> np.ndarray:
    by = by.astype(np.float64)
    return np.clip((x - by.mean(0)) / np.sqrt(by.var(0) + 1e-8), -10, 10)


def test_normalize_obs_standardises_what_the_policy_sees_by_every_earlier_round(tmp_path, pendulum_demos):
    from gailkit.agents.imitate import load_run

    run = GAIL(GAILConfig(env="Pendulum-v1", demos=pendulum_demos(2), steps=1536, out=tmp_path / "run", n_envs=2,
                          n_steps=256, disc_updates=1, eval_episodes=1, progress=False, normalize_obs=True))
    rounds, features = spy_rounds(run)
    run.train()
    assert len(rounds) == 3
    np.testing.assert_array_equal(features[0], rounds[0])  # no statistics before the first round
    for k in (1, 2):  # the reference: NumPy's mean and variance of every observation of the rounds before
        np.testing.assert_allclose(features[k], standardised(rounds[k], np.concatenate(rounds[:k])),
                                   rtol=1e-5, atol=1e-5)
    # Pendulum's angular velocity (up to 8) is not standard already, so the check could have failed on raw obs
    assert np.abs(rounds[2][:, 2]).std() > 1.5, np.abs(rounds[2][:, 2]).std()
    loaded, every = load_run(tmp_path / "run"), np.concatenate(rounds)  # the statistics travel with the policy
    assert loaded.obs_norm.count.item() == len(every) == 1536
    np.testing.assert_array_equal(loaded.model.policy.predict(every, deterministic=True)[0],
                                  run.model.policy.predict(every, deterministic=True)[0])


def test_bc_warm_start_clones_through_the_statistics_ppo_starts_from(tmp_path, pendulum_demos):
    run = GAIL(GAILConfig(env="Pendulum-v1", demos=pendulum_demos(2), steps=512, out=tmp_path / "run", n_envs=2,
                          n_steps=256, disc_updates=1, eval_episodes=1, progress=False, normalize_obs=True,
                          bc_steps=20))
    rounds, features = spy_rounds(run)
    run.train()
    np.testing.assert_allclose(features[0], standardised(rounds[0], run.expert_data.obs), rtol=1e-5, atol=1e-5)


def test_fixed_std_holds_the_policy_s_spread_through_training_and_a_reload(tmp_path, pendulum_demos):
    from gailkit.agents.imitate import load_run

    demos = pendulum_demos(2)

    def spread(fixed_std):
        out = tmp_path / f"run{fixed_std}"
        imitate(GAILConfig(env="Pendulum-v1", demos=demos, steps=1024, out=out, n_envs=2, n_steps=256,
                           learning_rate=3e-3, disc_updates=1, eval_episodes=1, progress=False, fixed_std=fixed_std))
        return load_run(out).model.policy.log_std.detach().exp().numpy()

    learned, held = spread(None), spread(0.3)
    assert not np.allclose(learned, 1.0, atol=1e-3), f"the learned std never moved from 1: {learned}"
    np.testing.assert_allclose(held, 0.3, rtol=1e-6)  # after 4 PPO updates and a reload from disk
