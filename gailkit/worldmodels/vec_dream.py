"""Thousands of dreams as one Stable-Baselines3 ``VecEnv``, so any SB3 algorithm trains in M.

One LSTM call steps every dream; a dream that ends (M's sampled done, or ``max_steps``) is
restarted on its own from a real first-frame latent, the way SB3 expects a VecEnv to auto-reset:
its last observation goes to ``info["terminal_observation"]`` and a time-limit end is marked
``info["TimeLimit.truncated"]`` so that PPO bootstraps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from gailkit.worldmodels.dream import BatchedDream
from gailkit.worldmodels.model import WorldModel

__all__ = ["DreamVecEnv"]


class DreamVecEnv(VecEnv):
    """``n_envs`` dreams of ``model``; observations ``[z, h]`` ``(n_envs, Z + hidden)``.

    Args:
        start_z: ``(S, Z)`` latents of real first frames (``start_latents``); each (re)start draws
            one. Without them, dreams start from N(0, I).
        tau: M's sampling temperature.
        max_steps: dream length before a time-limit end.
        seed: seeds the dreams' sampling (same seed, same dreams for the same actions).
        ensemble_draw: with an ensemble of M's, as :class:`~gailkit.worldmodels.dream.BatchedDream` takes it:
            ``"dream"`` (each dream follows one member, drawn again at each restart) or ``"step"``.
    """

    def __init__(self, model: WorldModel, n_envs: int, *, start_z: torch.Tensor | None = None, tau: float = 1.15,
                 max_steps: int = 1000, seed: int = 0, ensemble_draw: str = "dream"):
        dim = model.latent_dim + model.mdn_config.hidden
        self.render_mode = None  # dreams are not drawn here (dream-video draws them)
        super().__init__(n_envs, gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32), model.action_space)
        self.model, self.max_steps, self.start_z = model, max_steps, start_z
        # the batched dream's own step limit is never reached: each dream keeps its own clock
        self._dream = BatchedDream(model, n_envs, tau=tau, max_steps=np.iinfo(np.int64).max, seed=seed,
                                   ensemble_draw=ensemble_draw)
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._actions: np.ndarray | None = None

    def _starts(self, k: int) -> torch.Tensor:
        gen = self._dream.generator
        if self.start_z is None:
            return torch.randn(k, self.model.latent_dim, generator=gen)
        return self.start_z[torch.randint(len(self.start_z), (k,), generator=gen)]

    def reset(self) -> VecEnvObs:
        self._t[:] = 0
        return self._dream.reset(self._starts(self.num_envs))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, _ = self._dream.step(self._actions)
        self._t += 1
        truncated = self._t >= self.max_steps
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            ended = np.flatnonzero(dones)
            for i in ended:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            self._restart(ended)
            obs = self._dream.observation()
        return obs, rewards, dones, infos

    def _restart(self, index: np.ndarray) -> None:
        """New start latents, a zero LSTM state and (per-dream ensemble draws) a member for the dreams in
        ``index`` only."""
        d = self._dream
        d.z[index] = self._starts(len(index))
        if len(d.states) > 1 and d.ensemble_draw == "dream":
            d.member[index] = torch.randint(len(d.states), (len(index),), generator=d.generator)
        d.h[index] = 0.0
        for j, state in enumerate(d.states):  # each M's LSTM (h, c), (layers, n, hidden) each
            if state is not None:
                h, c = state[0].clone(), state[1].clone()
                h[:, index], c[:, index] = 0.0, 0.0
                d.states[j] = (h, c)
        self._t[index] = 0

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        if seed is not None:
            self._dream.generator.manual_seed(seed)
        return [seed] * self.num_envs

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        raise NotImplementedError(f"DreamVecEnv has no sub-environments to call {method_name!r} on")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
