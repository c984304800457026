"""Numba kernels against plain NumPy references on random rollouts."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.buffers import RolloutBuffer

from gailkit.buffers import kernels, trajectories_from_rollout

GAMMA, LAM = 0.97, 0.9


def reference_gae(rewards, values, last_values, terminated, truncated, final_values, gamma, lam):
    """Episode-by-episode GAE written from the definition, one env at a time."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            # A_t = sum_k (gamma*lam)^k delta_{t+k}, stopping after the episode's last step
            total, discount = 0.0, 1.0
            for k in range(t, T):
                if terminated[k, n]:
                    next_v = 0.0
                elif truncated[k, n]:
                    next_v = final_values[k, n]
                elif k == T - 1:
                    next_v = last_values[n]
                else:
                    next_v = values[k + 1, n]
                total += discount * (rewards[k, n] + gamma * next_v - values[k, n])
                if terminated[k, n] or truncated[k, n]:
                    break
                discount *= gamma * lam
            adv[t, n] = total
    return adv


def random_rollout(seed, T, N, p_term, p_trunc):
    rng = np.random.default_rng(seed)
    terminated = rng.random((T, N)) < p_term
    truncated = (rng.random((T, N)) < p_trunc) & ~terminated
    return dict(
        rewards=rng.normal(size=(T, N)).astype(np.float32),
        values=rng.normal(size=(T, N)).astype(np.float32),
        last_values=rng.normal(size=N).astype(np.float32),
        terminated=terminated,
        truncated=truncated,
        final_values=rng.normal(size=(T, N)).astype(np.float32),
    )


rollouts = st.builds(
    random_rollout,
    seed=st.integers(0, 2**32 - 1),
    T=st.integers(1, 40),
    N=st.integers(1, 5),
    p_term=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    p_trunc=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
)


@settings(max_examples=150, deadline=None)
@given(r=rollouts, gamma=st.floats(0.0, 1.0), lam=st.floats(0.0, 1.0))
def test_gae_matches_reference(r, gamma, lam):
    got = kernels.gae(**r, gamma=gamma, gae_lambda=lam)
    want = reference_gae(**r, gamma=gamma, lam=lam)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    ret = kernels.lambda_returns(**r, gamma=gamma, gae_lambda=lam)
    np.testing.assert_allclose(ret, want + r["values"], rtol=1e-4, atol=1e-4)


def test_gae_first_and_last_step_by_hand():
    # one env, three steps: truncation at t=0, plain step at t=1, buffer end at t=2
    r = dict(
        rewards=np.array([[1.0], [2.0], [3.0]], np.float32),
        values=np.array([[0.5], [0.25], [0.125]], np.float32),
        last_values=np.array([4.0], np.float32),
        terminated=np.zeros((3, 1), bool),
        truncated=np.array([[True], [False], [False]]),
        final_values=np.array([[10.0], [0.0], [0.0]], np.float32),
    )
    adv = kernels.gae(**r, gamma=0.5, gae_lambda=0.5)[:, 0]
    d2 = 3 + 0.5 * 4 - 0.125  # last step bootstraps from last_values
    d1 = 2 + 0.5 * 0.125 - 0.25
    d0 = 1 + 0.5 * 10 - 0.5  # truncation bootstraps from V(final obs) and cuts the chain
    np.testing.assert_allclose(adv, [d0, d1 + 0.25 * d2, d2], rtol=1e-6)
    r["terminated"][2, 0] = True  # termination at the last step: no bootstrap at all
    assert kernels.gae(**r, gamma=0.5, gae_lambda=0.5)[2, 0] == pytest.approx(3 - 0.125)


@settings(max_examples=60, deadline=None)
@given(r=rollouts, last_done=st.booleans())
def test_episode_starts_kernel_equals_sb3(r, last_done):
    T, N = r["rewards"].shape
    ended = r["terminated"] | r["truncated"]
    starts = np.zeros((T, N), np.float32)
    starts[1:] = ended[:-1]
    starts[0] = np.random.default_rng(T).random(N) < 0.5
    dones = np.full(N, last_done)
    sb3 = RolloutBuffer(T, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), n_envs=N, gamma=GAMMA, gae_lambda=LAM)
    sb3.rewards[:], sb3.values[:], sb3.episode_starts[:] = r["rewards"], r["values"], starts
    sb3.compute_returns_and_advantage(th.as_tensor(r["last_values"]), dones)
    adv, ret = np.empty((T, N), np.float32), np.empty((T, N), np.float32)
    kernels.gae_episode_starts(r["rewards"], r["values"], starts, r["last_values"],
                               dones.astype(np.float32), GAMMA, LAM, adv, ret)
    np.testing.assert_allclose(adv, sb3.advantages, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, sb3.returns, rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(r=rollouts)
def test_discounted_returns_and_episode_statistics(r):
    rewards, dones = r["rewards"], r["terminated"] | r["truncated"]
    T, N = rewards.shape
    got = kernels.discounted_returns(rewards, dones, GAMMA)
    want = np.zeros((T, N))
    for n in range(N):
        acc = 0.0
        for t in reversed(range(T)):
            acc = rewards[t, n] + GAMMA * (0.0 if dones[t, n] else acc)
            want[t, n] = acc
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    carry_r, carry_l = np.full(N, 0.5), np.full(N, 2, dtype=np.int64)
    returns, lengths, envs = kernels.episode_statistics(rewards, dones, carry_r, carry_l)
    exp_r, exp_l, exp_e = [], [], []
    run_r, run_l = np.full(N, 0.5), np.full(N, 2)
    for t in range(T):
        for n in range(N):
            run_r[n] += rewards[t, n]
            run_l[n] += 1
            if dones[t, n]:
                exp_r.append(run_r[n]), exp_l.append(run_l[n]), exp_e.append(n)
                run_r[n], run_l[n] = 0.0, 0
    np.testing.assert_allclose(returns, exp_r, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(lengths, exp_l)
    np.testing.assert_array_equal(envs, exp_e)
    np.testing.assert_allclose(carry_r, run_r, rtol=1e-5, atol=1e-5)  # carried to the next rollout
    np.testing.assert_array_equal(carry_l, run_l)


@settings(max_examples=40, deadline=None)
@given(r=rollouts, partial=st.booleans())
def test_trajectory_assembly_reconstructs_every_step(r, partial):
    T, N = r["rewards"].shape
    rng = np.random.default_rng(T * 31 + N)
    obs = rng.normal(size=(T, N, 3)).astype(np.float32)
    final_obs = rng.normal(size=(T, N, 3)).astype(np.float32)
    last_obs = rng.normal(size=(N, 3)).astype(np.float32)
    acts = rng.integers(0, 4, size=(T, N))
    trajs = trajectories_from_rollout(obs, acts, r["rewards"], r["terminated"], r["truncated"],
                                      final_obs, last_obs, include_partial=partial)
    ended = r["terminated"] | r["truncated"]
    n_complete = int(ended.sum())
    n_partial = int((~ended[-1]).sum())
    assert len(trajs) == n_complete + (n_partial if partial else 0)
    if partial:  # every step lands in exactly one trajectory
        assert sum(len(t) for t in trajs) == T * N
    k = 0
    for n in range(N):
        s = 0
        for t in range(T):
            if ended[t, n] or (partial and t == T - 1):
                traj = trajs[k]
                np.testing.assert_array_equal(traj.obs[:-1], obs[s : t + 1, n])
                np.testing.assert_array_equal(traj.obs[-1], final_obs[t, n] if ended[t, n] else last_obs[n])
                np.testing.assert_array_equal(traj.acts, acts[s : t + 1, n])
                assert traj.terminal == bool(r["terminated"][t, n])
                k += 1
            if ended[t, n]:
                s = t + 1
