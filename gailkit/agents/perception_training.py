"""Training the perception's V and M as an imitation run goes (``--perception-train m|vm``).

A world model trained on one policy's frames (often a random one) sees little of what a
learning policy reaches. With ``--perception-train``, every ``perception_every`` environment
steps the run trains its world model on the expert's frames and on the policy's most recent
episodes (``perception_frames`` frames of them, whole episodes), with the objectives it was
trained with:

* ``vm``: V takes ``perception_updates`` Adam steps of its ELBO on minibatches that are half
  expert frames and half policy frames (fine-tuning V), then M as below;
* ``m``: V stays frozen; M takes ``perception_updates`` steps of its teacher-forced loss on
  windows of both sets of episodes, their latents sampled from V as when M was first trained.

After an update every latent the learner holds is recomputed: the expert's ``[z, h]`` (the
discriminator's expert data), each training env's current observation (its episode so far,
re-encoded) and, for an off-policy learner (DAC), every row of its replay buffer, from the
frames :class:`ReplayFrames` keeps behind them (12 KiB per stored transition: size the buffer
with ``--buffer-size``).

The world model's weights, its optimisers, the kept episodes and the sampling generator are part
of every checkpoint, so a resumed run equals an uninterrupted one; the final world model is
saved beside the policy (``world_model/``) and ``gailkit eval --run`` uses it.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import load_optimizer_tensors, optimizer_tensors, tensors_under
from gailkit.nn.vae import elbo_loss
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.train import fit_mdn_steps, mdn_windows

__all__ = ["Episode", "PerceptionTrainer", "PerceptionTrainingOptions", "ReplayFrames"]

field = dataclasses.field

MODES = ("none", "m", "vm")


@dataclasses.dataclass(kw_only=True)
class PerceptionTrainingOptions:
    """Options of training the perception during a run; a config adds them and calls
    :meth:`check_perception_training` after its own checks."""

    perception_train: str = field(default="none", metadata=doc(
        "with --perception: keep training the world model on the expert's and the policy's frames: none (V and M "
        "frozen), m (M only), vm (V fine-tuned, and M)"))
    perception_every: int = field(default=4096, metadata=doc("environment steps between world-model updates"))
    perception_updates: int = field(default=100, metadata=doc("gradient steps of V and of M per update"))
    perception_lr: float = field(default=1e-4, metadata=doc("learning rate of V and M when training them"))
    perception_frames: int = field(default=8192, metadata=doc(
        "the policy's most recent frames (whole episodes) kept as training data"))
    perception_batch: int = field(default=32, metadata=doc("minibatch: frames for V, windows of 32 steps for M"))

    bounds: ClassVar[dict[str, str]] = {
        "perception_every": "[1, inf)", "perception_updates": "[1, inf)", "perception_lr": "(0, inf)",
        "perception_frames": "[1, inf)", "perception_batch": "[1, inf)"}

    def check_perception_training(self) -> None:
        if self.perception_train not in MODES:
            raise UsageError(f"--perception-train must be one of {', '.join(MODES)}, got {self.perception_train!r}")
        if self.perception_train == "none":
            return
        if getattr(self, "perception", None) is None:
            raise UsageError(f"--perception-train {self.perception_train} trains the perception's world model: "
                             "pass --perception DIR too")
        if getattr(self, "absorbing", False):
            raise UsageError(f"--perception-train {self.perception_train} records the policy's frames from one vector "
                             "of pixel envs, which an absorbing state would split; pass --no-absorbing")
        if self.perception_train == "m" and not getattr(self, "perception_memory", True):
            raise UsageError("--perception-train m trains M, which --no-perception-memory leaves unused; "
                             "pass --perception-train vm, or drop --no-perception-memory")


@dataclasses.dataclass
class Episode:
    """A pixel episode: ``T + 1`` frames (uint8), ``T`` actions and rewards, how it ended."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminal: bool


class PerceptionTrainer:
    """Trains a world model in place (see the module docstring); the caller re-encodes its latents."""

    WINDOW = 32  # M's training windows, in steps (as `gailkit worldmodel train-mdn`)

    def __init__(self, model: WorldModel, options: PerceptionTrainingOptions, seed: int):
        self.model, self.options = model, options
        self.train_v = options.perception_train == "vm"
        self.v_optimizer = torch.optim.Adam(model.vae.parameters(), lr=options.perception_lr) if self.train_v else None
        self.m_optimizer = torch.optim.Adam(model.mdn.parameters(), lr=options.perception_lr)
        self.generator = torch.Generator().manual_seed(seed + 1)  # V's samples
        self.rng = np.random.default_rng(seed + 2)  # minibatches
        self.recent: deque[Episode] = deque()
        self.updates = 0

    # ----- data -------------------------------------------------------------------------------
    def add_episode(self, episode: Episode) -> None:
        """Keep the policy's newest whole episodes, at most ``perception_frames`` frames (at least one)."""
        self.recent.append(episode)
        while len(self.recent) > 1 and sum(len(e.frames) for e in self.recent) > self.options.perception_frames:
            self.recent.popleft()

    # ----- training ---------------------------------------------------------------------------
    def update(self, expert: list[Episode]) -> dict[str, float]:
        """One update on the expert's episodes and the kept policy episodes; returns the last losses."""
        if not self.recent:  # no policy episode has ended yet
            return {}
        stats: dict[str, float] = {}
        if self.train_v:
            stats.update({f"v_{k}": v for k, v in self._train_v(expert).items()})
        stats.update({f"m_{k}": v for k, v in self._train_m(expert + list(self.recent)).items()})
        self.updates += 1
        return stats

    def _train_v(self, expert: list[Episode]) -> dict[str, float]:
        ex, pol = (np.concatenate([e.frames for e in episodes]) for episodes in (expert, self.recent))
        half = max(1, self.options.perception_batch // 2)
        vae, parts = self.model.vae, {}
        vae.train()
        for _ in range(self.options.perception_updates):
            frames = np.concatenate([ex[self.rng.integers(0, len(ex), half)],
                                     pol[self.rng.integers(0, len(pol), half)]])
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
            recon, mean, logvar = vae(x, generator=self.generator)
            loss, parts = elbo_loss(recon, x, mean, logvar, reconstruction=self.model.reconstruction)
            self.v_optimizer.zero_grad()
            loss.backward()
            self.v_optimizer.step()
        vae.eval()
        return parts

    def _train_m(self, episodes: list[Episode]) -> dict[str, float]:
        sequences = []
        for e in episodes:
            done = np.zeros(len(e.actions), np.float32)
            done[-1] = float(e.terminal)
            z = self.model.encode_frames(e.frames, generator=self.generator)
            sequences.append((z, torch.tensor(np.array(e.actions)), torch.tensor(np.array(e.rewards, np.float32)),
                              torch.from_numpy(done)))
        return fit_mdn_steps(self.model.mdn, mdn_windows(sequences, self.WINDOW), self.m_optimizer, self.rng,
                             self.options.perception_updates, batch_size=self.options.perception_batch)

    # ----- checkpoints ------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON of everything :meth:`load_state` needs to continue exactly."""
        tensors = {**{f"vae.{k}": v for k, v in self.model.vae.state_dict().items()},
                   **{f"mdn.{k}": v for k, v in self.model.mdn.state_dict().items()},
                   **{f"m_optim.{k}": v for k, v in optimizer_tensors(self.m_optimizer).items()},
                   "generator": self.generator.get_state()}
        if self.v_optimizer is not None:
            tensors.update({f"v_optim.{k}": v for k, v in optimizer_tensors(self.v_optimizer).items()})
        for i, e in enumerate(self.recent):
            tensors.update({f"recent.{i}.frames": torch.from_numpy(np.ascontiguousarray(e.frames)),
                            f"recent.{i}.actions": torch.as_tensor(np.asarray(e.actions)),
                            f"recent.{i}.rewards": torch.as_tensor(np.asarray(e.rewards, np.float32))})
        state = {"rng": self.rng.bit_generator.state, "updates": self.updates,
                 "recent_terminal": [e.terminal for e in self.recent]}
        return tensors, state

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.model.vae.load_state_dict(tensors_under(tensors, "vae."))
        self.model.mdn.load_state_dict(tensors_under(tensors, "mdn."))
        load_optimizer_tensors(self.m_optimizer, tensors_under(tensors, "m_optim."))
        if self.v_optimizer is not None:
            load_optimizer_tensors(self.v_optimizer, tensors_under(tensors, "v_optim."))
        self.generator.set_state(tensors["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.updates = state["updates"]
        self.recent = deque(Episode(tensors[f"recent.{i}.frames"].numpy(), tensors[f"recent.{i}.actions"].numpy(),
                                    tensors[f"recent.{i}.rewards"].numpy(), bool(terminal))
                            for i, terminal in enumerate(state["recent_terminal"]))


class ReplayFrames:
    """The frames behind an off-policy replay buffer's latent rows, so that they can be encoded
    again when V or M change (:meth:`relatent`).

    Row ``(pos, env)`` of the buffer keeps the frame its observation came from. Episodes are
    told apart by a start flag; the frame after an episode's last row (its terminal frame, or
    the frame where a checkpoint's reset cut it) is kept beside, and the frame after the newest
    row is the env's live frame. Rows of an episode whose beginning the ring has overwritten get
    ``h`` from a fresh memory at their first kept frame. Memory: one 64x64 RGB frame (12 KiB) per
    stored transition, allocated as rows are written.
    """

    def __init__(self, buffer: Any):
        self.buffer = buffer
        size, n = buffer.buffer_size, buffer.n_envs
        self.frames = np.zeros((size, n, 64, 64, 3), np.uint8)
        self.starts = np.zeros((size, n), bool)
        self.ends: dict[tuple[int, int], np.ndarray] = {}  # (row, env) -> the frame after the row
        self.last_next = np.zeros((n, 64, 64, 3), np.uint8)  # the frame after each env's newest row
        self.new_episode = np.ones(n, bool)
        self.rows = 0  # rows written so far

    def step(self, frames: np.ndarray, next_frames: np.ndarray, dones: np.ndarray) -> None:
        """A vector step about to be stored at the buffer's ``pos``: the frames acted on, the
        frames after (terminal frames where an episode ended)."""
        row = self.buffer.pos
        self.frames[row] = frames
        self.starts[row] = self.new_episode
        for env in range(len(dones)):
            self.ends.pop((row, env), None)
            if dones[env]:
                self.ends[(row, env)] = next_frames[env].copy()
        self.last_next[:] = next_frames
        self.new_episode = np.asarray(dones, bool).copy()
        self.rows += 1

    def cut(self) -> None:
        """The envs are reset mid-episode: the newest rows end where they stand."""
        if self.rows:
            row = (self.buffer.pos - 1) % self.buffer.buffer_size
            for env in np.flatnonzero(~self.new_episode):
                self.ends[(row, int(env))] = self.last_next[env].copy()
        self.new_episode[:] = True

    @torch.no_grad()
    def relatent(self, perception: Any, env_actions: Callable[[np.ndarray], np.ndarray]) -> None:
        """Rewrite every stored row's observation and next observation with ``perception``'s (a
        :class:`gailkit.agents.perception.Perception`) current V and M; ``env_actions`` turns replay actions
        into the env's units."""
        buf = self.buffer
        stored = buf.buffer_size if buf.full else buf.pos
        order = np.r_[buf.pos:buf.buffer_size, 0:buf.pos] if buf.full else np.arange(stored)
        for env in range(buf.n_envs):
            starts = np.flatnonzero(self.starts[order, env])
            bounds = np.r_[0, starts[starts > 0], len(order)]
            for a, b in zip(bounds[:-1], bounds[1:]):
                rows = order[a:b]
                after = self.ends.get((int(rows[-1]), env), self.last_next[env])
                acts = env_actions(buf.actions[rows, env])
                if not isinstance(perception.model.action_space, gym.spaces.Box):
                    acts = acts.reshape(len(rows)).astype(np.int64)
                latents = perception.encode_episode(np.concatenate([self.frames[rows, env], after[None]]), acts)
                buf.observations[rows, env] = latents[:-1]
                buf.next_observations[rows, env] = latents[1:]

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        buf = self.buffer
        n = buf.buffer_size if buf.full else buf.pos
        keys = sorted(self.ends)
        tensors = {"frames": torch.from_numpy(np.ascontiguousarray(self.frames[:n])),
                   "starts": torch.from_numpy(self.starts[:n].copy()),
                   "last_next": torch.from_numpy(self.last_next.copy()),
                   "new_episode": torch.from_numpy(self.new_episode.copy())}
        if keys:
            tensors["end_frames"] = torch.from_numpy(np.stack([self.ends[k] for k in keys]))
        return tensors, {"end_rows": [list(k) for k in keys], "rows": self.rows}

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        n = len(tensors["frames"])
        self.frames[:n], self.starts[:n] = tensors["frames"].numpy(), tensors["starts"].numpy()
        self.last_next[:], self.new_episode[:] = tensors["last_next"].numpy(), tensors["new_episode"].numpy()
        ends = tensors["end_frames"].numpy() if "end_frames" in tensors else []
        self.ends = {(int(r), int(e)): frame for (r, e), frame in zip(state["end_rows"], ends)}
        self.rows = state["rows"]
