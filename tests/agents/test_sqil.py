"""SQIL: minibatches half expert (reward 1), half agent (reward 0); exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gailkit.agents.imitate import imitate
from gailkit.agents.sqil import SQILConfig
from gailkit.buffers import ExpertMixReplayBuffer
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import load_tensors


def test_a_minibatch_is_half_expert_rows_with_reward_1_and_half_agent_rows_with_reward_0():
    obs_space, act_space = spaces.Box(-1000, 1000, (3,), np.float32), spaces.Discrete(4)
    buf = ExpertMixReplayBuffer(200, obs_space, act_space, device="cpu", seed=0, expert_fraction=0.5)
    n_exp = 40  # expert rows: positive observations whose first entry is the row's index + 1
    e_obs = np.stack([np.arange(n_exp) + 1, np.full(n_exp, 1.0), np.full(n_exp, 2.0)], 1).astype(np.float32)
    e_next = e_obs + 100
    e_acts = np.arange(n_exp) % 4
    e_dones = (np.arange(n_exp) % 7 == 0)
    buf.set_expert(e_obs, e_acts.reshape(-1, 1), e_next, e_dones)
    for t in range(60):  # agent rows: negative observations, an env reward of 5 that must be ignored
        o = np.array([[-1.0 - t, -1.0, -1.0]], np.float32)
        buf.add(o, o - 100, np.array([[t % 4]]), np.array([5.0]), np.array([t % 9 == 0]), [{}])

    s = buf.sample(64)
    obs, acts, nxt = s.observations.numpy(), s.actions.numpy(), s.next_observations.numpy()
    dones, rewards = s.dones.numpy()[:, 0], s.rewards.numpy()[:, 0]
    assert len(obs) == 64
    expert, agent = slice(0, 32), slice(32, 64)  # expert rows first
    np.testing.assert_array_equal(rewards[expert], 1.0)
    np.testing.assert_array_equal(rewards[agent], 0.0)
    i = obs[expert, 0].astype(int) - 1  # each expert row is the set_expert row it names
    assert (obs[expert] > 0).all() and (obs[agent] < 0).all()
    np.testing.assert_array_equal(obs[expert], e_obs[i])
    np.testing.assert_array_equal(nxt[expert], e_next[i])
    np.testing.assert_array_equal(acts[expert, 0], e_acts[i])
    np.testing.assert_array_equal(dones[expert], e_dones[i])
    t = (-obs[agent, 0] - 1).astype(int)  # each agent row is the transition added at step t
    np.testing.assert_array_equal(nxt[agent], obs[agent] - 100)
    np.testing.assert_array_equal(acts[agent, 0], t % 4)
    np.testing.assert_array_equal(dones[agent], t % 9 == 0)
    assert len(set(i)) > 10 and len(set(t)) > 10, "rows should be drawn across both sets"

    quarter = ExpertMixReplayBuffer(200, obs_space, act_space, device="cpu", seed=0, expert_fraction=0.25)
    quarter.set_expert(e_obs, e_acts.reshape(-1, 1), e_next, e_dones)
    quarter.add(e_obs[:1] * -1, e_obs[:1] * -1, np.array([[0]]), np.array([5.0]), np.array([False]), [{}])
    assert (quarter.sample(64).rewards.numpy() == 1).sum() == 16


def run(demos, out, steps, resume=False, **options):
    cfg = SQILConfig(env="CartPole-v1", demos=demos, out=out, steps=steps, learning_starts=256, buffer_size=5000,
                     batch_size=32, checkpoint_every=512, eval_every=512, progress=False, eval_episodes=2,
                     **options)
    return imitate(cfg, resume=resume)


def same_runs(straight: Path, resumed: Path) -> None:
    history = [json.loads((r / "eval.json").read_text())["history"] for r in (straight, resumed)]
    assert [(h["steps"], h["return_mean"]) for h in history[0]] == [(h["steps"], h["return_mean"]) for h in history[1]]
    for name in ("policy.safetensors", "policy_optim.safetensors", "extra.safetensors", "rng.safetensors"):
        a = load_tensors(straight / "checkpoint" / name)
        b = load_tensors(resumed / "checkpoint" / name)
        assert a.keys() == b.keys(), name
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}:{key}")


def test_sqil_resumes_exactly(cartpole_demos, tmp_path):
    """Extended with a larger --steps: exact with a constant learning rate (the decay runs over
    --steps, so extending a run changes its schedule, as DQN's exploration schedule does)."""
    # DQN collects 256 steps a round and learns from step 256 on: both halves train
    run(cartpole_demos, tmp_path / "straight", 1024, lr_decay=False)
    run(cartpole_demos, tmp_path / "resumed", 512, lr_decay=False)
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["counters"]["n_updates"] > 0, state["counters"]
    run(cartpole_demos, tmp_path / "resumed", 1024, resume=True, lr_decay=False)
    meta = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert meta["algo"] == "sqil" and "disc" not in meta
    same_runs(tmp_path / "straight", tmp_path / "resumed")


def test_sqil_with_its_learning_rate_decay_resumes_exactly_after_a_stop(cartpole_demos, tmp_path, monkeypatch):
    """Stopped at a checkpoint (as by Ctrl-C) and resumed with the same --steps: bit-exact, the
    learning rate schedule included."""
    from gailkit.agents.sqil import SQIL
    from gailkit.errors import RunInterrupted

    run(cartpole_demos, tmp_path / "straight", 1024)
    original = SQIL._round

    def stop_at_512(self, callback):
        original(self, callback)
        if self.model.num_timesteps >= 512:
            self._stop = True

    monkeypatch.setattr(SQIL, "_round", stop_at_512)
    with pytest.raises(RunInterrupted, match="holds step 512"):
        run(cartpole_demos, tmp_path / "resumed", 1024)
    monkeypatch.undo()
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    run(cartpole_demos, tmp_path / "resumed", 1024, resume=True)
    same_runs(tmp_path / "straight", tmp_path / "resumed")
    assert state["counters"]["n_updates"] > 0, "the stop came before any gradient step"


def test_clip_target_hands_the_learner_the_bound_of_sqil_s_rewards(tmp_path, pendulum_demos, cartpole_demos):
    """--clip-target (the default): SAC's TD target is clipped at (1 + alpha |A| log 2) / (1 - gamma)
    (the ceiling's arithmetic is tested in tests/agents/test_fast_sac.py), DQN's at 1 / (1 - gamma);
    --no-clip-target leaves Q unbounded. A run saved before the clip existed loads without it."""
    from gailkit.agents.sqil import SQIL

    demos = pendulum_demos(2, lambda o: np.zeros(1, np.float32))

    def sqil(name, env="Pendulum-v1", demos=demos, **options):
        return SQIL(SQILConfig(env=env, demos=demos, steps=100, out=tmp_path / name, progress=False, **options)).model

    clipped, free = sqil("default", absorbing=False, gamma=0.99), sqil("free", absorbing=False, gamma=0.99,
                                                                       clip_target=False)
    assert free.reward_max is None and free.target_max(0.05) == float("inf")
    assert clipped.reward_max == 1.0
    assert clipped.target_max(0.05) == pytest.approx((1 + 0.05 * np.log(2)) / 0.01)
    dqn = sqil("dqn", "CartPole-v1", cartpole_demos, gamma=0.9)
    assert dqn.reward_max == 1.0 and dqn.q_net_target.high == pytest.approx(10.0)
    assert sqil("dqn-free", "CartPole-v1", cartpole_demos, gamma=0.9, clip_target=False).reward_max is None

    run = tmp_path / "saved"
    imitate(SQILConfig(env="Pendulum-v1", demos=demos, steps=64, learning_starts=32, batch_size=16, eval_every=64,
                       eval_episodes=1, out=run, progress=False))
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["clip_target"] is True and SQIL.load(run).model.reward_max == 1.0
    old = {k: v for k, v in meta["config"].items() if k != "clip_target"}
    (run / "config.json").write_text(json.dumps({**meta, "config": old}))
    assert SQIL.load(run).model.reward_max is None, "a run saved before --clip-target ran without it"


def test_bounded_dqn_s_step_is_sb3_s_with_the_target_clipped_at_reward_max_over_1_minus_gamma():
    """One gradient step of BoundedDQN against a hand-written one: SB3's DQN step with the target
    ``r + gamma (1 - done) min(max_a Q'(s', a), reward_max / (1 - gamma))``; a ceiling above every
    target is SB3's DQN bit for bit."""
    import torch.nn.functional as F
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import Logger

    from gailkit.agents.offpolicy import BoundedDQN
    from gailkit.buffers import NumbaReplayBuffer

    rng = np.random.default_rng(0)
    rows = [(rng.normal(size=(1, 4)), rng.normal(size=(1, 4)), rng.integers(0, 2, (1, 1)), rng.integers(0, 2, 1),
             rng.random(1) < 0.1, [{}]) for _ in range(200)]

    def model(cls, **extra):
        m = cls("MlpPolicy", "CartPole-v1", learning_starts=0, batch_size=64, gamma=0.9, seed=0, device="cpu",
                policy_kwargs={"net_arch": [32]}, replay_buffer_class=NumbaReplayBuffer,
                replay_buffer_kwargs={"seed": 0}, **extra)
        m.set_logger(Logger(folder=None, output_formats=[]))
        for row in rows:
            m.replay_buffer.add(*row)
        return m

    sb3, high, low, ref = model(DQN), model(BoundedDQN, reward_max=1e6), model(BoundedDQN, reward_max=0.0), model(DQN)
    plain = model(BoundedDQN)  # no reward_max: SB3's alias, unwrapped
    assert plain.q_net_target is plain.policy.q_net_target and low.q_net_target.net is low.policy.q_net_target
    for m in (sb3, high, low):
        m.train(gradient_steps=1, batch_size=64)
    # the reference: SB3's step by hand, the target clipped at 0 / (1 - 0.9)
    data = ref.replay_buffer.sample(64)
    with torch.no_grad():
        next_q = ref.q_net_target(data.next_observations).max(dim=1).values.reshape(-1, 1)
        assert 0.2 < float((next_q > 0).float().mean()) < 0.8, "the ceiling should clip some targets"
        target = data.rewards + (1 - data.dones) * 0.9 * next_q.clamp(max=0.0)
    loss = F.smooth_l1_loss(torch.gather(ref.q_net(data.observations), 1, data.actions.long()), target)
    ref.policy.optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.policy.parameters(), ref.max_grad_norm)
    ref.policy.optimizer.step()
    assert low.logger.name_to_value["train/loss"] == pytest.approx(loss.item(), rel=1e-6)
    for key, value in ref.policy.state_dict().items():
        torch.testing.assert_close(low.policy.state_dict()[key], value, rtol=1e-6, atol=1e-7, msg=key)
        torch.testing.assert_close(high.policy.state_dict()[key], sb3.policy.state_dict()[key], rtol=0, atol=0, msg=key)
    first = "q_net.q_net.0.weight"
    assert not torch.equal(low.policy.state_dict()[first], sb3.policy.state_dict()[first])
    with pytest.raises(ValueError, match="needs gamma < 1"):
        BoundedDQN("MlpPolicy", "CartPole-v1", gamma=1.0, reward_max=1.0, device="cpu")


def test_sac_s_alpha_is_held_at_0_01_unless_given_and_a_run_saved_before_keeps_learning_it(
        tmp_path, pendulum_demos, cartpole_demos):
    """SQIL's default alpha is 0.01 held (SB3's auto collapsed on HalfCheetah-v5); DQN has no alpha
    and ignores that default. A run saved with ``ent_coef`` null, or before the option existed,
    ran with auto: it loads with auto."""
    from gailkit.agents.sqil import SQIL

    demos = pendulum_demos(2, lambda o: np.zeros(1, np.float32))

    def sac(name, **options):
        config = SQILConfig(env="Pendulum-v1", demos=demos, steps=100, out=tmp_path / name, progress=False, **options)
        return SQIL(config).model

    held, auto = sac("held"), sac("auto", ent_coef="auto")
    assert held.ent_coef_optimizer is None and held.ent_coef_tensor.item() == pytest.approx(0.01)
    assert auto.ent_coef_optimizer is not None and auto.log_ent_coef.exp().item() == pytest.approx(1.0)
    dqn = SQIL(SQILConfig(env="CartPole-v1", demos=cartpole_demos, steps=100, out=tmp_path / "dqn", progress=False))
    assert dqn.config.ent_coef == "0.01" and not hasattr(dqn.model, "ent_coef_optimizer")

    run = tmp_path / "saved"
    imitate(SQILConfig(env="Pendulum-v1", demos=demos, steps=64, learning_starts=32, batch_size=16, eval_every=64,
                       eval_episodes=1, out=run, progress=False))
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["ent_coef"] == "0.01" and SQIL.load(run).model.ent_coef_optimizer is None
    for old in ({**meta["config"], "ent_coef": None}, {k: v for k, v in meta["config"].items() if k != "ent_coef"}):
        (run / "config.json").write_text(json.dumps({**meta, "config": old}))
        assert SQIL.load(run).model.ent_coef_optimizer is not None, old.get("ent_coef", "no key")


def test_a_finished_run_is_reused_for_any_spelling_of_its_alpha(tmp_path, pendulum_demos, cartpole_demos):
    """A run saved with SAC's default alpha (``ent_coef`` null) ran with ``auto``: a benchmark asking
    for ``auto`` (or ``auto_1``, the same start) reuses it; asking for a held alpha is refused. DQN
    has no alpha: a CartPole run saved with null is today's default run."""
    from gailkit.agents.imitate import imitate_or_resume

    def config(ent_coef):
        return SQILConfig(env="Pendulum-v1", demos=pendulum_demos(2, lambda o: np.zeros(1, np.float32)), steps=64,
                          learning_starts=32, batch_size=16, eval_every=64, eval_episodes=1, out=tmp_path / "run",
                          progress=False, ent_coef=ent_coef)

    history = imitate_or_resume(config("auto"))
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "ent_coef": None}}))
    policy = tmp_path / "run" / "policy.safetensors"
    stamp = policy.stat().st_mtime_ns
    for same in ("auto", "auto_1", "auto_1.0"):
        assert imitate_or_resume(config(same)) == history and policy.stat().st_mtime_ns == stamp, same
    for other in ("0.01", "auto_0.01"):
        with pytest.raises(UsageError, match=rf"with --ent-coef left at its default, not {other}: remove the folder"):
            imitate_or_resume(config(other))

    dqn = SQILConfig(env="CartPole-v1", demos=cartpole_demos, steps=256, learning_starts=64, eval_every=256,
                     eval_episodes=1, out=tmp_path / "dqn", progress=False)
    history = imitate_or_resume(dqn)
    meta = json.loads((tmp_path / "dqn" / "config.json").read_text())
    assert meta["config"]["ent_coef"] == "0.01"
    (tmp_path / "dqn" / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "ent_coef": None}}))
    assert imitate_or_resume(dqn) == history
