"""World-model pipeline presets: one row per budget."""

from __future__ import annotations

import dataclasses

__all__ = ["WorldModelPreset", "WM_PRESETS"]


@dataclasses.dataclass(frozen=True)
class WorldModelPreset:
    env: str
    episodes: int
    latent_dim: int
    vae_epochs: int
    mdn_epochs: int
    hidden: int
    n_mixtures: int
    generations: int
    popsize: int
    rollouts: int
    max_steps: int
    tau: float


# fmt: off
WM_PRESETS: dict[str, WorldModelPreset] = {
    #                         env                            eps  Z  V-ep M-ep  hid  K  gens pop roll steps  tau
    "quick":    WorldModelPreset("gailkit/CartPolePixels-v1",    60, 16,   5,  30, 256, 5,  20, 16,  4,  200, 1.15),
    "cpu-hour": WorldModelPreset("gailkit/CarRacing64-v3",      100, 32,   5,  20, 256, 5, 100, 32,  4,  300, 1.15),
    "paper":    WorldModelPreset("gailkit/CarRacing64-v3",   10_000, 32,  10,  20, 256, 5, 1800, 64, 16, 1000, 1.15),
}
# fmt: on
