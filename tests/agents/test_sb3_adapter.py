"""Every hook of gailkit.agents.sb3_adapter against the installed Stable-Baselines3: a release
that renames a private attribute fails here, by name, instead of in a training run."""

from __future__ import annotations

import json
import re
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger

from gailkit.agents.fast_sac import FastSAC
from gailkit.agents.sb3_adapter import (
    RelabelingPPO,
    counters,
    deterministic_policy,
    restart_episodes,
    restore_counters,
    start_learning,
    update_progress,
)
from gailkit.buffers import ImitationRolloutBuffer


class Noop(BaseCallback):
    def _on_step(self) -> bool:
        return True


def callback_for(model) -> BaseCallback:
    cb = Noop()
    cb.init_callback(model)
    return cb


def ppo(cls=PPO, env="CartPole-v1", n_envs=2, n_steps=32, **kwargs):
    venv = make_vec_env(env, n_envs=n_envs, seed=0)
    return cls("MlpPolicy", venv, n_steps=n_steps, batch_size=32, n_epochs=1, seed=0, device="cpu", **kwargs)


def test_start_learning_sets_up_logger_and_episode_buffers_and_keeps_the_step_count():
    model = ppo()
    assert model.ep_info_buffer is None  # what learn() would set up
    model.num_timesteps = 1234  # as a resumed run has restored it
    start_learning(model, 5000)
    assert model.num_timesteps == 1234
    assert isinstance(model.ep_info_buffer, deque) and isinstance(model.ep_success_buffer, deque)
    assert isinstance(model.logger, Logger)
    assert model._total_timesteps == 5000, "schedules must run to the total, not to the steps left"
    assert model._last_obs is not None and model._last_obs.shape == (2, 4)
    start_learning(model, 1000)  # a total already passed: no negative budget
    assert model.num_timesteps == 1234


def test_start_learning_leaves_no_folder_in_the_temporary_directory(tmp_path, monkeypatch):
    """SB3's learn() with no tensorboard_log makes an empty tempdir/SB3-<date> per call; every gailkit run
    starts through start_learning, which must not (the values logged are still kept)."""
    import tempfile

    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = ppo()
    start_learning(model, 1000)
    model.logger.record("train/x", 1.5)
    assert model.logger.name_to_value["train/x"] == 1.5
    model.logger.dump(0)
    assert list(tmp_path.glob("SB3-*")) == []
    ppo().learn(64)  # what start_learning sidesteps: SB3's own logger makes the folder
    assert len(list(tmp_path.glob("SB3-*"))) == 1


def test_restart_episodes_makes_the_next_collection_act_on_the_given_observation():
    model = ppo()
    start_learning(model, 1000)
    model._last_episode_starts = np.zeros(2, dtype=bool)
    given = model.env.reset() + np.float32(0.01)  # not the envs' own state: the model must use it
    restart_episodes(model, given)
    assert model._last_episode_starts.dtype == bool and model._last_episode_starts.all()
    torch.manual_seed(0)
    model.collect_rollouts(model.env, callback_for(model), model.rollout_buffer, model.n_steps)
    np.testing.assert_array_equal(model.rollout_buffer.observations[0], given)
    np.testing.assert_array_equal(model.rollout_buffer.episode_starts[0], [1.0, 1.0])
    assert not np.array_equal(model.rollout_buffer.observations[1], given)


def test_update_progress_moves_the_schedules():
    model = ppo(learning_rate=lambda p: 1e-3 * p, clip_range=lambda p: 0.2 * p)
    start_learning(model, 1000)
    assert model._current_progress_remaining == 1.0
    model.num_timesteps = 250
    update_progress(model, 1000)
    assert model._current_progress_remaining == pytest.approx(0.75)
    model._update_learning_rate(model.policy.optimizer)  # what PPO.train does first
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(7.5e-4)
    assert model.clip_range(model._current_progress_remaining) == pytest.approx(0.15)
    model.num_timesteps = 1000
    update_progress(model, 1000)
    assert model._current_progress_remaining == pytest.approx(0.0)


COUNTER = re.compile(r"^_(n_[a-z_]+|episode_num)$")


@pytest.mark.parametrize("name", ["ppo", "sac", "dqn"])
def test_counters_round_trip(name):
    def build():
        if name == "ppo":
            return ppo()
        if name == "sac":
            return SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, buffer_size=1000, seed=0,
                       device="cpu", policy_kwargs=dict(net_arch=[16]))
        return DQN("MlpPolicy", "CartPole-v1", learning_starts=50, batch_size=32, buffer_size=1000, train_freq=4,
                   target_update_interval=10, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]))

    model = build()
    model.learn({"ppo": 128, "sac": 250, "dqn": 300}[name])
    saved = json.loads(json.dumps(counters(model)))  # as state.json stores them
    assert saved["n_updates"] == model._n_updates > 0
    assert saved["episode_num"] == model._episode_num
    if name != "ppo":  # off-policy collection counts finished episodes (Pendulum: 200 steps each)
        assert saved["episode_num"] > 0
    if name == "dqn":  # DQN times its target-network updates by callback calls
        assert saved["n_calls"] == model._n_calls > 0
    # every counter SB3 keeps on the model is saved: a new one in a release fails here
    kept = {k.lstrip("_") for k, v in vars(model).items() if COUNTER.match(k) and isinstance(v, int)}
    assert kept == set(saved), f"SB3 counters {sorted(kept)}, saved {sorted(saved)}"

    fresh = build()
    assert counters(fresh) != saved
    restore_counters(fresh, saved)
    assert counters(fresh) == saved


def collect(model, rounds=1):
    """``rounds`` rollouts from a fresh start; returns the buffer's arrays of the last one."""
    start_learning(model, 10_000)
    torch.manual_seed(1)  # actions are sampled from torch's global generator
    for _ in range(rounds):
        assert model.collect_rollouts(model.env, callback_for(model), model.rollout_buffer, model.n_steps)
    b = model.rollout_buffer
    return {k: getattr(b, k).copy() for k in ("observations", "actions", "values", "log_probs", "rewards",
                                              "episode_starts", "advantages", "returns")}


def test_relabeling_ppo_collects_what_sb3_s_ppo_collects():
    # CartPole's horizon (500) lies beyond 2 x 64 steps: episodes end by termination only
    ours, theirs = ppo(RelabelingPPO, n_steps=64), ppo(PPO, n_steps=64)
    assert isinstance(ours.rollout_buffer, ImitationRolloutBuffer)
    a, b = collect(ours, rounds=2), collect(theirs, rounds=2)
    assert ours.rollout_buffer.terminated.any() and not ours.rollout_buffer.truncated.any()
    for key in ("observations", "actions", "values", "log_probs", "rewards", "episode_starts"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("advantages", "returns"):  # Numba GAE vs SB3's loop
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert ours.num_timesteps == theirs.num_timesteps == 256


def test_relabeling_ppo_bootstraps_truncations_as_sb3_does():
    # an 8-step horizon truncates most episodes of a random policy; SB3 folds gamma * V(final obs)
    # into the reward, RelabelingPPO keeps it apart (final_values): the advantages must agree
    gym.register("gailkit-test/ShortCartPole-v1", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                 max_episode_steps=8)
    ours, theirs = ppo(RelabelingPPO, env="gailkit-test/ShortCartPole-v1"), ppo(env="gailkit-test/ShortCartPole-v1")
    a, b = collect(ours), collect(theirs)
    buf = ours.rollout_buffer
    assert buf.truncated.any(), "no truncation in the rollout: the test tests nothing"
    np.testing.assert_array_equal(a["actions"], b["actions"])
    np.testing.assert_array_equal(buf.env_rewards, np.ones_like(buf.env_rewards))  # CartPole's own rewards
    assert not np.allclose(a["rewards"], b["rewards"]), "SB3 should have folded bootstraps into its rewards"
    for key in ("advantages", "returns"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_relabel_hook_sees_the_full_rollout_once_and_its_rewards_are_learned():
    calls = []

    def relabel(buffer):
        calls.append(buffer)
        assert buffer.full and buffer.pos == buffer.buffer_size
        flat = buffer.flat()
        n = buffer.buffer_size * buffer.n_envs
        assert {k: v.shape[0] for k, v in flat.items()} == dict.fromkeys(flat, n)
        np.testing.assert_array_equal(flat["env_rewards"], np.ones(n))
        np.testing.assert_array_equal(buffer.rewards, buffer.env_rewards)  # not yet relabelled
        # next observations are filled: the next step's observation wherever no episode ended
        going_on = ~(buffer.terminated | buffer.truncated)[:-1]
        np.testing.assert_array_equal(buffer.next_observations[:-1][going_on], buffer.observations[1:][going_on])
        np.testing.assert_array_equal(buffer.next_observations[-1], model._last_obs)
        assert (buffer.advantages == 0).all(), "the hook must run before advantages are computed"
        buffer.rewards[:] = 2.0 * buffer.env_rewards

    model = ppo(RelabelingPPO, relabel=relabel)
    plain = collect(ppo(RelabelingPPO))
    relabelled = collect(model)
    assert len(calls) == 1 and calls[0] is model.rollout_buffer
    np.testing.assert_array_equal(relabelled["rewards"], 2.0 * plain["rewards"])
    np.testing.assert_array_equal(relabelled["values"], plain["values"])
    assert (relabelled["returns"] > plain["returns"] + 0.5).all(), "GAE did not use the relabelled rewards"
    model.collect_rollouts(model.env, callback_for(model), model.rollout_buffer, model.n_steps)
    assert len(calls) == 2


@pytest.mark.parametrize("make", [
    lambda: PPO("MlpPolicy", "CartPole-v1", seed=0),
    lambda: PPO("MlpPolicy", "Pendulum-v1", seed=0),  # Box actions clipped to the space
    lambda: SAC("MlpPolicy", "Pendulum-v1", seed=0),  # squashed, then scaled to the space
    lambda: DQN("MlpPolicy", "CartPole-v1", seed=0),
    lambda: FastSAC("MlpPolicy", "Pendulum-v1", seed=0),
], ids=["ppo-discrete", "ppo-box", "sac", "dqn", "fast-sac"])
def test_deterministic_policy_acts_as_sb3_s_predict_and_leaves_evaluation_mode(make):
    model = make()
    act = deterministic_policy(model.policy)
    rng = np.random.default_rng(0)
    obs = (3 * rng.standard_normal((16, *model.observation_space.shape))).astype(np.float32)
    if isinstance(model, PPO):  # means far outside Pendulum's [-2, 2]: some actions are clipped
        with torch.no_grad():
            model.policy.action_net.weight.mul_(1000.0)
    model.policy.set_training_mode(True)  # as a training round leaves it
    for batch in (obs, obs[0]):  # a batch, and one observation without its batch axis
        ours, theirs = act(batch), model.predict(batch, deterministic=True)[0]
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    if isinstance(model.action_space, gym.spaces.Box):
        assert len(np.unique(act(obs))) > 2  # not all at the bounds
    model.policy.set_training_mode(True)
    act(obs)
    assert not model.policy.training
