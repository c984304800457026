"""Numba kernels for the hot loops over rollouts.

All kernels take contiguous NumPy arrays in the ``(T, N)`` layout of a vectorised rollout:
``T`` steps of ``N`` environments, time-major. Termination and truncation are different:

* ``terminated[t, n]``: the episode ended in a terminal state; nothing follows, the value of
  the next state is 0.
* ``truncated[t, n]``: a time limit (or the end of the data) cut the episode; the return is
  bootstrapped from ``final_values[t, n] = V(final observation)``.

In both cases the advantage recursion does not run across the episode boundary.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "gae",
    "gae_episode_starts",
    "lambda_returns",
    "discounted_returns",
    "episode_statistics",
    "episode_segments",
    "replay_gather",
]


@njit(cache=True)
def gae(rewards, values, last_values, terminated, truncated, final_values, gamma, gae_lambda):
    """Generalised advantage estimation with termination/truncation.

    Args:
        rewards: ``(T, N)`` float.
        values: ``(T, N)`` float, ``V(obs[t])``.
        last_values: ``(N,)`` float, ``V(obs[T])`` for episodes still running at the end.
        terminated: ``(T, N)`` bool.
        truncated: ``(T, N)`` bool (ignored where ``terminated``).
        final_values: ``(T, N)`` float, ``V(final obs)``; read only where truncated.
        gamma: discount factor.
        gae_lambda: GAE lambda (1 gives Monte-Carlo advantages, 0 one-step TD errors).

    Returns:
        ``(T, N)`` float32 advantages.
    """
    n_steps, n_envs = rewards.shape
    advantages = np.empty((n_steps, n_envs), dtype=np.float32)
    carry = np.zeros(n_envs, dtype=np.float64)
    for t in range(n_steps - 1, -1, -1):
        for n in range(n_envs):
            if terminated[t, n]:
                next_value = 0.0
                carry[n] = 0.0
            elif truncated[t, n]:
                next_value = final_values[t, n]
                carry[n] = 0.0
            elif t == n_steps - 1:
                next_value = last_values[n]
            else:
                next_value = values[t + 1, n]
            delta = rewards[t, n] + gamma * next_value - values[t, n]
            carry[n] = delta + gamma * gae_lambda * carry[n]
            advantages[t, n] = carry[n]
    return advantages


@njit(cache=True)
def lambda_returns(rewards, values, last_values, terminated, truncated, final_values, gamma, gae_lambda):
    """TD(lambda) returns ``G^lambda_t = A^GAE_t + V(obs[t])``, same arguments as :func:`gae`."""
    return gae(rewards, values, last_values, terminated, truncated, final_values, gamma, gae_lambda) + values


@njit(cache=True)
def gae_episode_starts(rewards, values, episode_starts, last_values, last_dones, gamma, gae_lambda,
                       out_advantages, out_returns):
    """GAE in Stable-Baselines3's layout, written into ``out_advantages`` / ``out_returns``.

    SB3 marks boundaries with ``episode_starts[t]`` (obs ``t`` is the first of an episode) and
    ``last_dones`` for the step after the buffer, and folds the truncation bootstrap
    ``gamma * V(final obs)`` into the reward before storing it. Every boundary therefore cuts
    the recursion and drops the next value. Matches
    ``RolloutBuffer.compute_returns_and_advantage`` exactly.
    """
    n_steps, n_envs = rewards.shape
    carry = np.zeros(n_envs, dtype=np.float64)
    for t in range(n_steps - 1, -1, -1):  # time outer, envs inner: contiguous rows
        for n in range(n_envs):
            if t == n_steps - 1:
                not_done = 1.0 - last_dones[n]
                next_value = last_values[n]
            else:
                not_done = 1.0 - episode_starts[t + 1, n]
                next_value = values[t + 1, n]
            delta = rewards[t, n] + gamma * next_value * not_done - values[t, n]
            carry[n] = delta + gamma * gae_lambda * not_done * carry[n]
            out_advantages[t, n] = carry[n]
            out_returns[t, n] = carry[n] + values[t, n]


@njit(cache=True)
def discounted_returns(rewards, dones, gamma):
    """Monte-Carlo reward-to-go ``sum_k gamma^k r_{t+k}`` within each episode.

    ``dones[t, n]`` marks the last step of an episode (terminated or truncated). Episodes still
    running at the end of the buffer are not bootstrapped; use :func:`lambda_returns` with
    ``gae_lambda=1`` for that.

    Returns:
        ``(T, N)`` float32.
    """
    n_steps, n_envs = rewards.shape
    out = np.empty((n_steps, n_envs), dtype=np.float32)
    for n in range(n_envs):
        acc = 0.0
        for t in range(n_steps - 1, -1, -1):
            if dones[t, n]:
                acc = 0.0
            acc = rewards[t, n] + gamma * acc
            out[t, n] = acc
    return out


@njit(cache=True)
def episode_statistics(rewards, dones, running_returns, running_lengths):
    """Returns and lengths of the episodes that end inside this rollout.

    Args:
        rewards: ``(T, N)``.
        dones: ``(T, N)`` bool, last step of an episode.
        running_returns: ``(N,)`` float64, return so far of the episode running in each env;
            updated in place so statistics carry across consecutive rollouts.
        running_lengths: ``(N,)`` int64, likewise for lengths.

    Returns:
        ``(returns, lengths, env_index)`` of the completed episodes in time order.
    """
    n_steps, n_envs = rewards.shape
    n_done = 0
    for t in range(n_steps):
        for n in range(n_envs):
            if dones[t, n]:
                n_done += 1
    returns = np.empty(n_done, dtype=np.float64)
    lengths = np.empty(n_done, dtype=np.int64)
    envs = np.empty(n_done, dtype=np.int64)
    k = 0
    for t in range(n_steps):
        for n in range(n_envs):
            running_returns[n] += rewards[t, n]
            running_lengths[n] += 1
            if dones[t, n]:
                returns[k] = running_returns[n]
                lengths[k] = running_lengths[n]
                envs[k] = n
                k += 1
                running_returns[n] = 0.0
                running_lengths[n] = 0
    return returns, lengths, envs


@njit(cache=True)
def episode_segments(dones):
    """Split a ``(T, N)`` rollout into per-env episode segments.

    Returns:
        ``(env, start, stop, complete)``: segment ``i`` covers steps
        ``start[i]:stop[i]`` of env ``env[i]``; ``complete[i]`` is False for the segment still
        running at the end of the buffer. Ordered by env, then time.
    """
    n_steps, n_envs = dones.shape
    count = 0
    for n in range(n_envs):
        for t in range(n_steps):
            if dones[t, n] or t == n_steps - 1:
                count += 1
    env = np.empty(count, dtype=np.int64)
    start = np.empty(count, dtype=np.int64)
    stop = np.empty(count, dtype=np.int64)
    complete = np.empty(count, dtype=np.bool_)
    k = 0
    for n in range(n_envs):
        s = 0
        for t in range(n_steps):
            if dones[t, n] or t == n_steps - 1:
                env[k] = n
                start[k] = s
                stop[k] = t + 1
                complete[k] = dones[t, n]
                k += 1
                s = t + 1
    return env, start, stop, complete


@njit(cache=True)
def replay_gather(obs, next_obs, acts, rews, dones, timeouts, pos, env,
                  out_obs, out_next_obs, out_acts, out_rews, out_dones):
    """Gather a replay minibatch in one pass into preallocated outputs.

    Storage arrays are ``(capacity, N, D)`` (``rews``/``dones``/``timeouts``: ``(capacity, N)``);
    sample ``i`` is row ``(pos[i], env[i])``. ``out_dones`` is ``done and not timeout``: a
    time-limit end is not terminal, so the critic still bootstraps from ``next_obs``.
    """
    for i in range(pos.shape[0]):
        p, e = pos[i], env[i]
        out_obs[i, :] = obs[p, e, :]
        out_next_obs[i, :] = next_obs[p, e, :]
        out_acts[i, :] = acts[p, e, :]
        out_rews[i, 0] = rews[p, e]
        out_dones[i, 0] = dones[p, e] * (1.0 - timeouts[p, e])
