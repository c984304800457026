"""A world model on disk: V and M with their configs, pickle-free.

Directory layout::

    world_model.json      latent size, M's config, the action space (JSON), frame size, versions
    vae.safetensors       V's weights
    mdn_rnn.safetensors   M's weights
    mdn_rnn_<j>.safetensors   with an ensemble of M's, member j's (j = 1, 2, ...; member 0 is M)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from gailkit.data.spaces import describe_space, space_from_json, space_mismatch, space_to_json
from gailkit.envs import same_frames
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import CheckpointError, load_weights, read_json, save_tensors, write_json
from gailkit.nn.vae import ConvVAE
from gailkit.versions import versions
from gailkit.worldmodels.mdn_rnn import MDNRNN, MDNRNNConfig

__all__ = ["WorldModel"]


class WorldModel:
    """V + M for one action space; ``save``/``load`` a directory.

    ``members``: more M's of the same config, fitted with other seeds (``train_mdn(..., ensemble=K)``).
    A dream with an ensemble draws from ``mdns`` (:class:`~gailkit.worldmodels.dream.BatchedDream`), to keep a
    controller from profiting from one M's mistakes; C itself sees M's memory (``mdn``), in the dream and in
    the real env.
    """

    def __init__(self, action_space: gym.Space, *, latent_dim: int = 32, hidden: int = 256, n_mixtures: int = 5,
                 env_id: str | None = None, action_input: bool = True):
        if isinstance(action_space, gym.spaces.Discrete):
            action_dim, discrete = int(action_space.n), True
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            action_dim, discrete = int(action_space.shape[0]), False
        else:
            raise UsageError(f"world models support Discrete or flat Box actions, got {action_space}; "
                             f"use an env with such actions (gailkit envs lists the pixel envs)")
        self.action_space, self.env_id = action_space, env_id  # env_id: whose frames V was trained on
        self.data_steps: int | None = None  # real env steps of the data V and M were trained on
        self.reconstruction = "mse"  # V's reconstruction term (gailkit.nn.vae.elbo_loss)
        self.vae = ConvVAE(latent_dim)
        self.mdn_config = MDNRNNConfig(latent_dim=latent_dim, action_dim=action_dim, discrete_actions=discrete,
                                       hidden=hidden, n_mixtures=n_mixtures, action_input=action_input)
        self.mdn = MDNRNN(self.mdn_config)
        self.members: list[MDNRNN] = []

    @property
    def mdns(self) -> list[MDNRNN]:
        """M and the ensemble's other members: ``[mdn, *members]``."""
        return [self.mdn, *self.members]

    @property
    def latent_dim(self) -> int:
        return self.mdn_config.latent_dim

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        save_tensors(directory / "vae.safetensors", self.vae.state_dict())
        save_tensors(directory / "mdn_rnn.safetensors", self.mdn.state_dict())
        for j, member in enumerate(self.members, start=1):
            save_tensors(directory / f"mdn_rnn_{j}.safetensors", member.state_dict())
        write_json(directory / "world_model.json", {
            "mdn_rnn": dataclasses.asdict(self.mdn_config), "action_space": space_to_json(self.action_space),
            "frame_shape": [64, 64, 3], "env_id": self.env_id, "data_steps": self.data_steps,
            "reconstruction": self.reconstruction, "ensemble": len(self.mdns),
            "versions": versions(),
        })
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, action_space: gym.Space | None = None) -> WorldModel:
        """Load a saved world model; with ``action_space``, refuse one trained for other actions."""
        directory = Path(directory)
        meta = read_json(directory / "world_model.json", what="world model")
        saved_space = space_from_json(meta["action_space"])
        if action_space is not None and (diff := space_mismatch(saved_space, action_space)):
            raise CheckpointError(
                f"world model {directory} was trained for actions {describe_space(saved_space)}, not "
                f"{describe_space(action_space)} ({diff}); train one for this environment")
        cfg = meta["mdn_rnn"]
        model = cls(saved_space, latent_dim=cfg["latent_dim"], hidden=cfg["hidden"], n_mixtures=cfg["n_mixtures"],
                    env_id=meta.get("env_id"), action_input=cfg.get("action_input", True))
        model.data_steps = meta.get("data_steps")
        model.reconstruction = meta.get("reconstruction", "mse")
        load_weights(model.vae, directory / "vae.safetensors", what="world model")
        load_weights(model.mdn, directory / "mdn_rnn.safetensors", what="world model")
        for j in range(1, meta.get("ensemble", 1)):
            member = MDNRNN(model.mdn_config)
            load_weights(member, directory / f"mdn_rnn_{j}.safetensors", what="world model")
            model.members.append(member)
        return model

    def check_env(self, env_id: str, where: str = "this world model") -> None:
        """UsageError unless V was trained on ``env_id``'s frames (or an id that draws the same ones)."""
        if self.env_id is None or same_frames(self.env_id, env_id):
            return
        raise UsageError(f"{where} was trained on {self.env_id} frames, not {env_id}'s; use it with {self.env_id}, "
                         f"or train one for {env_id} (gailkit worldmodel collect --env {env_id} ...)")

    @torch.no_grad()
    def posterior(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 64, 64, 3)`` uint8 frames -> V's posterior: means and log-variances, ``(B, Z)`` each."""
        x = torch.from_numpy(np.array(frames, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
        return self.vae.encode(x)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, *, generator: torch.Generator | None = None,
                      mean: bool = False) -> torch.Tensor:
        """``(B, 64, 64, 3)`` uint8 frames -> sampled latents ``(B, Z)`` (posterior means with ``mean``)."""
        mu, logvar = self.posterior(frames)
        return mu if mean else self.vae.sample_latent(mu, logvar, generator)

    @torch.no_grad()
    def decode_frames(self, z: torch.Tensor) -> np.ndarray:
        """Latents ``(B, Z)`` -> ``(B, 64, 64, 3)`` uint8 frames."""
        x = self.vae.decode(z).permute(0, 2, 3, 1).clamp(0, 1)
        return (x * 255).round().to(torch.uint8).numpy()
