"""Dreams: a trained world model as an environment.

``gymnasium.make("gailkit/Dream-v0", world_model=DIR)`` is one dream; :class:`BatchedDream`
steps thousands at once (one LSTM call per step for all of them), which is what makes training
a controller in the dream cheap on a CPU. Observations are ``[z, h]``: V's latent and M's
hidden state, as the controller of World Models sees them.

A world model with an ensemble of M's (``WorldModel.members``) dreams with all of them, to keep a
controller from profiting from one M's mistakes: each dream's next latent, reward and end come from
one member, drawn once per dream for its whole length (``ensemble_draw="dream"``, the default: PETS'
trajectory sampling) or every step (``"step"``, as MBPO draws). The controller sees the first M's ``h``,
as in the real env. Drawn per step, a dream hops between the members' forecasts, and can pay what no
member's own dream pays: on CarRacing a search found that (``scripts/probe_worldmodel_ensemble_dream.py``),
and the controllers trained per dream drove better (docs/carracing.md).

Where the members disagree, none of them knows: with ``halt_above`` a dream ends at the step whose
forecasts of the next latent disagree by more than that (:func:`disagreement`), paying
``halt_reward`` (MOReL's unknown-state halt; on CarRacing -100, what leaving the playfield costs).
:func:`~gailkit.worldmodels.train.ensemble_disagreements` measures how much they disagree on real
episodes, to set the threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gailkit.nn.mdn import mixture_mean
from gailkit.worldmodels.mdn_rnn import next_latent
from gailkit.worldmodels.model import WorldModel

__all__ = ["BatchedDream", "DreamEnv", "ENSEMBLE_DRAWS", "disagreement"]

ENSEMBLE_DRAWS = ("step", "dream")  # with an ensemble of M's, a member per dream and step, or per dream


def disagreement(logit_pi: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """How far an ensemble's forecasts of the next latent part: the members' mixture means ``(K, ..., Z)``
    (from ``logit_pi``, ``mu`` of shape ``(K, ..., Z, mixtures)``), the largest distance of one from
    their average, per dimension of z (root mean square) -> ``(...)``."""
    means = mixture_mean(logit_pi, mu)
    return (means - means.mean(0)).square().mean(-1).sqrt().amax(0)


class BatchedDream:
    """``n`` dreams advanced together; start latents come from real frames or from N(0, I)."""

    def __init__(self, model: WorldModel, n: int, *, tau: float = 1.15, max_steps: int = 1000,
                 seed: int | None = None, latent_noise: float = 1.0, ensemble_draw: str = "dream",
                 halt_above: float | None = None, halt_reward: float = -100.0):
        if not latent_noise >= 0:
            raise ValueError(f"latent_noise must be >= 0, got {latent_noise}")
        if ensemble_draw not in ENSEMBLE_DRAWS:
            raise ValueError(f"ensemble_draw must be one of {ENSEMBLE_DRAWS}, got {ensemble_draw!r}")
        if halt_above is not None and len(model.mdns) < 2:
            raise ValueError("halt_above ends dreams where an ensemble's M's disagree: the world model has one M")
        self.ensemble_draw = ensemble_draw
        # with an ensemble: a dream whose next-z forecasts part by more than halt_above ends, paying halt_reward
        self.halt_above, self.halt_reward = halt_above, halt_reward
        self.disagreement = torch.zeros(n)  # the last step's, per dream (measured where the dream halts)
        self.model, self.n, self.tau, self.max_steps = model, n, tau, max_steps
        self.latent_noise = latent_noise  # 1: M's draws (the paper's dream), 0: its mixture's mean (see MDNRNN.step)
        self.generator = torch.Generator().manual_seed(0 if seed is None else seed)
        self.z = torch.zeros(n, model.latent_dim)
        self.states: list = [None] * len(model.mdns)  # each M's LSTM (h, c)
        self.member = torch.zeros(n, dtype=torch.long)  # with ensemble_draw="dream", the M each dream follows
        self.h = torch.zeros(n, model.mdn_config.hidden)
        self.t = 0

    def reset(self, start_z: torch.Tensor | None = None,
              state: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
        """Start all dreams; ``start_z (n, Z)`` (e.g. encoded real first frames) or N(0, I) draws.

        ``state``: M's LSTM ``(h, c)``, each ``(K, n, hidden)`` for the world model's ``K`` M's (1 without an
        ensemble), for dreams that start inside real episodes, M's memory run over the real steps before
        (:func:`~gailkit.worldmodels.train.warm_starts`); by default M's zero state, as at an episode's
        first frame.
        """
        if state is not None and start_z is None:
            raise ValueError("a start state needs its start latents: pass start_z with state")
        k = len(self.model.mdns)
        if state is not None and len(state[0]) != k:
            raise ValueError(f"the start state holds {len(state[0])} M's memories, the world model has {k} M's: "
                             "take the start states from warm_starts of this world model")
        self.z = start_z.clone() if start_z is not None else torch.randn(
            self.n, self.model.latent_dim, generator=self.generator)
        self.t = 0
        if k > 1 and self.ensemble_draw == "dream":
            self.member = torch.randint(k, (self.n,), generator=self.generator)
        if state is None:
            self.states, self.h = [None] * k, torch.zeros(self.n, self.model.mdn_config.hidden)
        else:
            self.states = [(state[0][j : j + 1].clone(), state[1][j : j + 1].clone()) for j in range(k)]
            self.h = self.states[0][0][0]
        return self.observation()

    def observation(self) -> np.ndarray:
        """``(n, Z + hidden)`` float32 controller input ``[z, h]``."""
        return torch.cat([self.z, self.h], dim=1).numpy().astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every dream; returns ``(obs (n, Z + H), rewards (n,), terminated (n,), truncated (n,))``."""
        a = torch.as_tensor(np.asarray(actions))
        if len(self.states) == 1:  # one M: no member to draw, the random stream as it always was
            self.z, rewards, done_prob, state, self.h = self.model.mdn.step(
                self.z, a, self.states[0], tau=self.tau, generator=self.generator, latent_noise=self.latent_noise)
            self.states = [state]
        else:
            self.z, rewards, done_prob = self._ensemble_step(a)
        self.t += 1
        # an episode ends with M's predicted probability: a dream is a sample, not the mode
        terminated = (torch.rand(self.n, generator=self.generator) < done_prob).numpy()
        truncated = np.full(self.n, self.t >= self.max_steps)
        rewards = rewards.numpy().astype(np.float32)
        if self.halt_above is not None:
            halted = (self.disagreement > self.halt_above).numpy()
            rewards[halted], terminated = np.float32(self.halt_reward), terminated | halted
        return self.observation(), rewards, terminated, truncated

    @torch.no_grad()
    def _ensemble_step(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every M steps on the same ``(z, a)``; each dream's next ``z``, reward and end come from one of
        them: drawn uniformly for each dream at this step, or the one it drew at its start."""
        outs = [mdn(self.z.unsqueeze(1), a.unsqueeze(1), state) for mdn, state in zip(self.model.mdns, self.states)]
        self.states, self.h = [out.state for out in outs], outs[0].state[0][0]
        pick = (self.member if self.ensemble_draw == "dream"
                else torch.randint(len(outs), (self.n,), generator=self.generator))
        rows = torch.arange(self.n)

        def picked(field: str) -> torch.Tensor:
            return torch.stack([getattr(out, field)[:, 0] for out in outs])[pick, rows]

        next_z = next_latent(picked("logit_pi"), picked("mu"), picked("log_sigma"), tau=self.tau,
                             generator=self.generator, latent_noise=self.latent_noise)
        if self.halt_above is not None:  # only a halting dream pays for the measure
            self.disagreement = disagreement(torch.stack([out.logit_pi[:, 0] for out in outs]),
                                             torch.stack([out.mu[:, 0] for out in outs]))
        return next_z, picked("reward"), torch.sigmoid(picked("done_logit"))


class DreamEnv(gym.Env):
    """One dream as a Gymnasium env (renders V's decoding of the dreamt latent)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, world_model: str | Path | WorldModel, *, tau: float = 1.15, max_steps: int = 1000,
                 render_mode: str | None = None, latent_noise: float = 1.0):
        self.model = world_model if isinstance(world_model, WorldModel) else WorldModel.load(world_model)
        self.tau, self.max_steps, self.render_mode = tau, max_steps, render_mode
        dim = self.model.latent_dim + self.model.mdn_config.hidden
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = self.model.action_space
        self._dream = BatchedDream(self.model, 1, tau=tau, max_steps=max_steps, latent_noise=latent_noise)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._dream.generator.manual_seed(seed)
        return self._dream.reset()[0], {}

    def step(self, action):
        obs, rewards, terminated, truncated = self._dream.step(np.asarray(action)[None])
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.model.decode_frames(self._dream.z)[0]
