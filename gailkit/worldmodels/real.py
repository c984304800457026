"""Controllers in the real environment, batched: many episodes (of many candidates) in lockstep.

Every tick, the frames of all running episodes go through V in one call, their actions through
one batched controller product, and (for a controller that sees ``[z, h]``) M advances all of
their memories in one LSTM call. Episodes are slots ``(candidate, episode)`` handed to a fixed
set of environments as they free up.

Every slot draws V's sampling noise from its own generator, seeded by ``(seed, episode)``, and
plays track ``seed + episode``; so a candidate's returns do not depend on which other
candidates share its batch, its worker or its backend, and all candidates of a generation meet
the same tracks and the same noise (common random numbers, which CMA-ES ranks better with).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from gailkit.envs.make import make_env
from gailkit.errors import UsageError
from gailkit.evaluation import EVAL_SEED
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.model import WorldModel

__all__ = ["ControllerPolicy", "check_frame_skip", "evaluate_controller", "evaluate_controllers", "fast_encoder",
           "record_controller_demos"]


def check_frame_skip(frame_skip: int, horizon: int | None, what: str = "the episode") -> None:
    """UsageError unless ``frame_skip`` >= 1 divides ``horizon`` (``None``: no horizon to check)."""
    if frame_skip < 1:
        raise UsageError(f"--frame-skip {frame_skip}: must be >= 1 (1 acts on every frame)")
    if horizon is not None and horizon % frame_skip:
        divisors = [k for k in range(1, min(horizon, 10) + 1) if horizon % k == 0]
        raise UsageError(f"--frame-skip {frame_skip} does not divide {what} ({horizon} steps): the last action "
                         f"would be cut short; use one of {divisors}")


@torch.no_grad()
def evaluate_controllers(model: WorldModel, params: np.ndarray | None, env_id: str, episodes: int, *,
                         seed: int = EVAL_SEED, max_steps: int | None = None, frame_skip: int = 1,
                         n_envs: int | None = None, latent_noise: float | np.ndarray = 1.0) -> np.ndarray:
    """Returns ``(P, episodes)``: candidate ``p``'s return on tracks ``seed .. seed + episodes - 1``.

    Args:
        model: V (and M, when the controller sees ``[z, h]``).
        params: ``(P, n_params)`` controllers (``[z, h]`` or ``z`` alone, from the size); ``None``:
            one uniformly random policy (``P = 1``).
        env_id: a pixel env with 64x64 frames, e.g. ``gailkit/FastCarRacing64-v3``.
        episodes: episodes per candidate.
        seed: the first track's seed (the evaluation seed by default).
        max_steps: cut episodes after this many env steps (training); None: run to the env's end.
        frame_skip: repeat each action for this many env steps (rewards summed); V, M and C see
            every ``frame_skip``-th frame. Must divide the env's horizon and ``max_steps``.
        n_envs: environments stepped together (default: all ``P x episodes`` slots at once).
        latent_noise: the scale of V's sampling noise in the z that C and M are fed: 1 draws from V's
            posterior (as they are trained), 0 feeds its mean; ``(Z,)`` scales: one per dimension of z. The
            noise is drawn either way, so the random policy's actions and the tracks stay the same.
    """
    if episodes < 1:
        raise UsageError(f"episodes={episodes}: must be >= 1")
    model.check_env(env_id)
    noise_scale = _latent_noise(latent_noise, model.latent_dim)
    envs = [make_env(env_id)]  # an unknown id is a one-line error
    horizon = envs[0].spec.max_episode_steps if envs[0].spec is not None else None
    check_frame_skip(frame_skip, horizon, f"{env_id}'s episode")
    if max_steps is not None:
        check_frame_skip(frame_skip, max_steps, "--max-steps")
    if tuple(envs[0].observation_space.shape) != (64, 64, 3):
        raise UsageError(f"{env_id} gives {envs[0].observation_space.shape} observations; world models see 64x64 RGB "
                         "frames: use a 64x64 id such as gailkit/FastCarRacing64-v3")

    controller = controller_for(model, n_params=params.shape[-1]) if params is not None else None
    vae = fast_encoder(model)
    n_cand = 1 if params is None else len(params)
    slots = [(p, e) for p in range(n_cand) for e in range(episodes)]
    n_envs = min(len(slots), n_envs or len(slots))
    envs += [make_env(env_id) for _ in range(n_envs - 1)]
    memory = controller is not None and controller.in_dim > model.latent_dim
    hidden = model.mdn_config.hidden
    h = torch.zeros(1, n_envs, hidden)
    c = torch.zeros(1, n_envs, hidden)

    returns = np.zeros((n_cand, episodes))
    slot_of: list[tuple[int, int] | None] = [None] * n_envs
    rngs: list[np.random.Generator | None] = [None] * n_envs
    obs = np.zeros((n_envs, 64, 64, 3), np.uint8)
    steps = np.zeros(n_envs, np.int64)
    queue = iter(slots)

    def start(i: int) -> None:
        slot = next(queue, None)
        slot_of[i] = slot
        if slot is None:
            return
        episode = slot[1]
        obs[i], _ = envs[i].reset(seed=seed + episode)
        rngs[i] = np.random.default_rng([seed, episode])
        steps[i] = 0
        h[:, i], c[:, i] = 0.0, 0.0

    try:
        for i in range(n_envs):
            start(i)
        space = envs[0].action_space
        while True:
            rows = [i for i in range(n_envs) if slot_of[i] is not None]
            if not rows:
                break
            idx = torch.as_tensor(rows)
            x = torch.from_numpy(obs[rows]).permute(0, 3, 1, 2).float() / 255.0
            mu, logvar = vae.encode(x)
            eps = torch.from_numpy(np.stack([rngs[i].standard_normal(model.latent_dim) for i in rows])).float()
            if noise_scale is not None:
                eps = eps * noise_scale
            z = mu + torch.exp(0.5 * logvar) * eps  # (R, Z)
            if controller is None:
                actions = np.stack([_random_action(space, rngs[i]) for i in rows])
            else:
                inputs = torch.cat([z, h[0, idx]], 1) if memory else z
                actions = controller.act(params[[slot_of[i][0] for i in rows]], inputs.numpy())
            if memory:  # M remembers what V saw and C did
                state = (h[:, idx].contiguous(), c[:, idx].contiguous())
                _, (h[:, idx], c[:, idx]) = model.mdn.memory(z[:, None], torch.as_tensor(np.asarray(actions))[:, None],
                                                             state)  # the LSTM alone: its heads are not needed
            for k, i in enumerate(rows):
                p, e = slot_of[i]
                done = False
                for _ in range(frame_skip):
                    obs[i], reward, terminated, truncated, _ = envs[i].step(actions[k])
                    returns[p, e] += float(reward)
                    steps[i] += 1
                    done = terminated or truncated or steps[i] == max_steps
                    if done:
                        break
                if done:
                    start(i)
    finally:
        for env in envs:
            env.close()
    return returns


def _latent_noise(scale: float | np.ndarray, latent_dim: int) -> torch.Tensor | None:
    """``latent_noise`` as a tensor to multiply V's noise by, or None for draws as they are (all scales 1)."""
    values = np.asarray(scale, dtype=np.float64)
    if values.shape not in ((), (latent_dim,)):
        raise ValueError(f"latent_noise has shape {values.shape}: give one scale, or one per dimension of z "
                         f"({latent_dim},)")
    if not (values >= 0).all():
        raise ValueError(f"latent_noise must be >= 0, got {values.min()}")
    return None if (values == 1.0).all() else torch.from_numpy(np.ascontiguousarray(values, np.float32))


def fast_encoder(model: WorldModel) -> torch.nn.Module:
    """A copy of V in channels-last layout: frames arrive as NHWC arrays, and its convolutions then
    run ~1.3x faster on a CPU (the model's own V is left as it is, for training and saving)."""
    return copy.deepcopy(model.vae).eval().to(memory_format=torch.channels_last)


def _random_action(space, rng: np.random.Generator) -> np.ndarray:
    if hasattr(space, "n"):
        return np.asarray(rng.integers(space.n))
    return rng.uniform(space.low, space.high).astype(space.dtype)


def evaluate_controller(model: WorldModel, params: np.ndarray | None, env_id: str, episodes: int, *,
                        seed: int = EVAL_SEED, max_steps: int | None = None, frame_skip: int = 1,
                        latent_noise: float = 1.0) -> np.ndarray:
    """One controller's ``(episodes,)`` returns (``params=None``: random actions); see :func:`evaluate_controllers`."""
    batch = None if params is None else np.asarray(params)[None]
    return evaluate_controllers(model, batch, env_id, episodes, seed=seed, max_steps=max_steps,
                                frame_skip=frame_skip, latent_noise=latent_noise)[0]


class ControllerPolicy:
    """V+M+C acting in a real env one frame at a time, as a ``collect_chunks`` policy.

    ``(obs, rng) -> action``: V's sampling noise and the exploration noise come from the
    episode's ``rng``, so recordings are reproducible; ``reset()`` clears M's memory.
    ``latent_noise`` scales V's sampling noise as in :func:`evaluate_controllers` (0: V's mean).
    """

    def __init__(self, model: WorldModel, params: np.ndarray, *, noise: float = 0.0, latent_noise: float = 1.0):
        self.model, self.params, self.noise = model, np.asarray(params)[None], float(noise)
        self.noise_scale = _latent_noise(latent_noise, model.latent_dim)
        self.controller = controller_for(model, n_params=self.params.shape[1])
        self.vae = fast_encoder(model)
        self.memory = self.controller.in_dim > model.latent_dim
        self.reset()

    def reset(self) -> None:
        self.state, self.h = None, torch.zeros(1, self.model.mdn_config.hidden)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, rng: np.random.Generator):
        x = torch.from_numpy(np.array(obs[None])).permute(0, 3, 1, 2).float() / 255.0  # a copy: frames may be read-only
        mu, logvar = self.vae.encode(x)
        eps = torch.from_numpy(rng.standard_normal(mu.shape)).float()
        if self.noise_scale is not None:
            eps = eps * self.noise_scale
        z = mu + torch.exp(0.5 * logvar) * eps
        inputs = torch.cat([z, self.h], 1) if self.memory else z
        action = self.controller.act(self.params, inputs.numpy())
        space = self.controller.action_space
        if self.noise > 0 and not self.controller.discrete:
            action = np.clip(action + rng.normal(0.0, self.noise, action.shape), space.low, space.high)
            action = action.astype(np.float32)
        if self.memory:
            out = self.model.mdn(z[:, None], torch.as_tensor(np.asarray(action))[:, None], self.state)
            self.state, self.h = out.state, out.state[0][0]
        return action[0]


def record_controller_demos(model: WorldModel, params: np.ndarray, env_id: str, episodes: int,
                            out: str | Path, *, seed: int = 0, random_episodes: int = 10,
                            latent_noise: float = 1.0) -> Path:
    """Pixel demonstrations of a world-model controller: ``episodes`` real episodes (reset seeds
    ``seed + i``) saved as a demonstration file of frames, with an expert card (the controller's
    mean return over them, and the random policy's over ``random_episodes`` evaluation tracks)
    so that imitation runs report normalised returns. ``latent_noise``: as the controller was trained
    (see :func:`evaluate_controllers`).
    """
    from gailkit.data.demos import save_demos
    from gailkit.data.types import Trajectory

    model.check_env(env_id)
    env = make_env(env_id)
    trajectories = []
    try:
        for i in range(episodes):
            policy = ControllerPolicy(model, params, latent_noise=latent_noise)
            rng = np.random.default_rng([seed, i])
            frame, _ = env.reset(seed=seed + i)
            frames, acts, rews = [frame], [], []
            while True:
                action = policy(frame, rng)
                frame, reward, terminated, truncated, _ = env.step(action)
                frames.append(frame), acts.append(action), rews.append(reward)
                if terminated or truncated:
                    break
            trajectories.append(Trajectory(np.asarray(frames), np.asarray(acts), np.asarray(rews, np.float64),
                                           terminated))
        returns = np.array([t.episode_return for t in trajectories])
        random = evaluate_controller(model, None, env_id, random_episodes)
        memory = controller_for(model, n_params=len(params)).in_dim > model.latent_dim
        card = {"env": env_id, "algo": "world model (V+M+C)" if memory else "world model (V+C)",
                "return_mean": float(returns.mean()), "return_std": float(returns.std()),
                "random_return_mean": float(random.mean()), "episodes": episodes}
        return save_demos(out, trajectories, env_id=env_id, observation_space=env.observation_space,
                          action_space=env.action_space, metadata={"expert_card": card, "seed": seed})
    finally:
        env.close()
