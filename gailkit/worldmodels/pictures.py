"""Pictures of a world model: reconstructions beside real frames, a dream beside reality, a controller driving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gailkit.envs.make import make_env
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import ControllerPolicy

__all__ = ["controller_gif", "dream_strip", "reconstruction_grid"]


def _row(frames: np.ndarray) -> np.ndarray:
    pad = np.full((frames.shape[0], 64, 2, 3), 255, np.uint8)
    return np.concatenate([np.concatenate([f, p], axis=1) for f, p in zip(frames, pad)], axis=1)


def reconstruction_grid(model: WorldModel, frames: np.ndarray, path: str | Path) -> Path:
    """Top row: real frames ``(N, 64, 64, 3)``; bottom row: V's reconstructions (from the mean)."""
    with torch.no_grad():
        x = torch.from_numpy(np.array(frames, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
        mean, _ = model.vae.encode(x)
    recon = model.decode_frames(mean)
    grid = np.concatenate([_row(frames), np.full((2, _row(frames).shape[1], 3), 255, np.uint8), _row(recon)])
    Image.fromarray(grid).save(path)
    return Path(path)


def dream_strip(model: WorldModel, env_id: str, path: str | Path, *, steps: int = 16, every: int = 2,
                seed: int = 0, tau: float = 1.0) -> Path:
    """Real frames (top) and the dream from the same first frame and actions (below it).

    Random actions; writes a PNG strip, and a GIF next to it (``path`` with ``.gif``): real on the
    left, the dream on the right. A world model with an ensemble of M's dreams once with each M, from
    the same draws: one row (one GIF panel) per M, in the order of ``model.mdns``, so the picture shows
    where the members part.
    """
    env = make_env(env_id)  # an unknown id is a one-line error
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    real, actions = [obs], []
    for _ in range(steps):
        actions.append(env.action_space.sample())
        obs, _, term, trunc, _ = env.step(actions[-1])
        real.append(obs)
        if term or trunc:
            break
    env.close()
    gen = torch.Generator().manual_seed(seed)
    z0 = model.encode_frames(real[0][None], generator=gen)
    after_encode = gen.get_state()
    dreams = []
    for mdn in model.mdns:
        gen.set_state(after_encode)  # every M dreams from the same first latent and the same draws
        z, state, dream = z0, None, [model.decode_frames(z0)[0]]
        for action in actions:
            z, _, _, state, _ = mdn.step(z, torch.as_tensor(np.asarray(action))[None], state, tau=tau, generator=gen)
            dream.append(model.decode_frames(z)[0])
        dreams.append(dream)
    rows = [_row(np.array(frames[::every])) for frames in (real, *dreams)]
    gap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    Image.fromarray(np.concatenate([part for row in rows for part in (row, gap)][:-1])).save(path)
    panels = [Image.fromarray(np.concatenate(frames, axis=1)) for frames in zip(real, *dreams)]
    panels[0].save(Path(path).with_suffix(".gif"), save_all=True, append_images=panels[1:], duration=80, loop=0)
    return Path(path)


def controller_gif(model: WorldModel, params: np.ndarray, env_id: str, path: str | Path, *, seed: int = 0,
                   max_steps: int = 1000, every: int = 4, width: int = 300,
                   latent_noise: float = 1.0) -> tuple[Path, float]:
    """A GIF of the controller on one real track, from the env's own ``rgb_array`` renderer
    (``latent_noise``: as the controller was trained, see :func:`~gailkit.worldmodels.real.evaluate_controllers`).

    Returns:
        The GIF's path and the episode's return.
    """
    env = make_env(env_id, render_mode="rgb_array")
    policy = ControllerPolicy(model, params, latent_noise=latent_noise)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    frames, total = [], 0.0
    for t in range(max_steps):
        obs, reward, term, trunc, _ = env.step(policy(obs, rng))
        total += float(reward)
        if t % every == 0:
            picture = Image.fromarray(env.render())
            frames.append(picture.resize((width, round(width * picture.height / picture.width)), Image.BILINEAR))
        if term or trunc:
            break
    env.close()
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40 * every, loop=0, optimize=True)
    return Path(path), total
