"""Training V and M from collected chunks.

Each of :func:`train_vae` and :func:`train_mdn` writes, in the world-model folder, a checkpoint after every
epoch (``checkpoints/v/`` or ``checkpoints/m/``: weights, Adam's state and every random state, so that
``resume=True`` continues a training that stopped and ends where an uninterrupted one ends, bit for bit),
TensorBoard scalars (``tb/``) and, once finished, the per-epoch losses (``training.json``) and their curves
(``v_curve.png``, ``m_curve.png``); the checkpoint is then removed. From its start to its end a training
also keeps ``started.json`` in its checkpoint folder, for ``worldmodel status`` before the first checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from gailkit.data.spaces import space_from_json
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import (
    CheckpointError,
    describe_changes,
    load_optimizer_tensors,
    load_tensors,
    optimizer_tensors,
    read_json,
    read_progress,
    tensors_under,
    write_json,
    write_progress,
)
from gailkit.nn.mdn import mixture_mean
from gailkit.nn.vae import elbo_loss
from gailkit.progress import progress_bar
from gailkit.worldmodels.data import chunk_paths, load_chunk
from gailkit.worldmodels.dream import disagreement
from gailkit.worldmodels.mdn_rnn import MDNRNN
from gailkit.worldmodels.model import WorldModel

__all__ = ["STARTED", "checkpoint_dir", "chunk_posteriors", "ensemble_disagreements", "fit_mdn", "fit_mdn_steps",
           "mdn_windows", "mean_memory", "memory_components", "next_latent_errors", "sampled_episodes", "start_latents",
           "stopped_training", "train_mdn", "train_vae", "warm_starts"]


def _frames(data_dir: Path) -> np.ndarray:
    return np.concatenate([load_chunk(p)["frames"] for p in chunk_paths(data_dir)])


def _steps(data_dirs: Sequence[Path]) -> int:
    """Environment steps (actions) recorded in the chunks of ``data_dirs``."""
    return int(sum(load_chunk(p)["lengths"].sum() for d in data_dirs for p in chunk_paths(d)))


STARTED = "started.json"  # in a training's checkpoint folder from its start to its end: _EpochLog.begin


def stopped_training(model_dir: str | Path, part: str) -> bool:
    """Whether ``model_dir`` holds a training of ``part`` (``"V"`` or ``"M"``) that stopped before its end:
    what ``resume=True`` continues."""
    return (checkpoint_dir(model_dir, part) / "progress.json").exists()


def checkpoint_dir(model_dir: str | Path, part: str) -> Path:
    """Where the training of ``part`` (``"V"`` or ``"M"``) in ``model_dir`` keeps its checkpoint while it runs."""
    return Path(model_dir) / "checkpoints" / part.lower()


def _module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def _load_module(module: torch.nn.Module, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
    module.load_state_dict(tensors_under(tensors, prefix + "."))


class _EpochLog:
    """One part's training in a world-model folder ``out`` (the module docstring): resumes a checkpoint
    whose setup (every option but the epochs, and the data) is this one's, saves one after each epoch with
    its scalars, and on :meth:`finish` writes the history and its curve and removes the checkpoint."""

    def __init__(self, out: Path, part: str, setup: dict, *, resume: bool) -> None:
        self.out, self.part, self.setup = out, part, setup
        self.dir = checkpoint_dir(out, part)
        self.history: list[dict] = []
        self.found: dict | None = None
        self.writer = None
        if not stopped_training(out, part):
            if resume:
                raise CheckpointError(f"nothing to resume: {out} holds no training of {part} that stopped (no "
                                      f"{self.dir}/progress.json); drop --resume to train {part} from the start")
            return
        found = read_progress(self.dir, what=f"{part}'s training checkpoint")
        if not resume:
            raise CheckpointError(f"{out} holds a training of {part} that stopped after {len(found['history'])} "
                                  f"epoch(s): pass --resume (resume=True) to continue it, or delete {self.dir} to "
                                  f"train {part} from the start")
        if found["setup"] != setup:
            raise CheckpointError(f"cannot resume {part}'s training in {out}: it ran with other options or data "
                                  f"({describe_changes(found['setup'], setup)}); resume with the same ones (only "
                                  f"the epochs may change), or delete "
                                  f"{self.dir} to train {part} from the start")
        self.found, self.history = found, list(found["history"])

    def begin(self, epochs: int, ensemble: int = 1) -> None:
        """Mark the training begun: ``started.json`` in the checkpoint folder (when, and the epochs asked of
        each of ``ensemble`` M's), which tells :func:`gailkit.worldmodels.status.run_status` of a training
        before its first checkpoint."""
        write_json(self.dir / STARTED, {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        "epochs": epochs, "ensemble": ensemble})

    def resumed(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """``(position, tensors)`` of the checkpoint resumed; ``({}, {})`` when the training starts afresh."""
        if self.found is None:
            return {}, {}
        return self.found["position"], load_tensors(self.dir / self.found["state"],
                                                    what=f"{self.part}'s training checkpoint")

    def restore(self, tensors: dict[str, torch.Tensor], module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                rng: np.random.Generator, draws: torch.Generator) -> None:
        """The module, its optimiser, ``rng``, the generator of V's draws and torch's global random state
        as the checkpoint ``tensors`` (:meth:`resumed`) left them."""
        _load_module(module, "net", tensors)
        load_optimizer_tensors(optimizer, tensors_under(tensors, "optim."))
        draws.set_state(tensors["rng.draws"])
        rng.bit_generator.state = self.found["numpy"]
        torch.set_rng_state(tensors["rng.torch"])

    def save(self, position: dict, record: dict, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
             rng: np.random.Generator, draws: torch.Generator, *, tag: str | None = None,
             more: dict[str, torch.Tensor] | None = None) -> None:
        """The epoch's ``record`` (scalars, logged under ``tag``, default the part) and a checkpoint at
        ``position``: what :meth:`restore` restores, and ``more`` tensors."""
        tensors = _module_tensors("net", module) | {f"optim.{k}": v for k, v in optimizer_tensors(optimizer).items()}
        tensors |= {"rng.draws": draws.get_state(), "rng.torch": torch.get_rng_state(), **(more or {})}
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))
        self.history.append(record)
        for k, v in record.items():
            if k not in ("epoch", "member"):
                self.writer.add_scalar(f"{tag or self.part}/{k}", v, record["epoch"])
        self.writer.flush()
        write_progress(self.dir, len(self.history), tensors, {
            "setup": self.setup, "position": position, "numpy": rng.bit_generator.state, "history": self.history})

    def finish(self) -> None:
        """After the model is saved: the history into ``training.json`` (the other part's kept), its curve,
        and the checkpoint removed."""
        from gailkit.generators.base import plot_history

        if self.writer is not None:
            self.writer.close()
        path = self.out / "training.json"  # M's history kept beside V's; a new V's M is untrained
        before = read_json(path, what="training history") if path.exists() and self.part == "M" else {}
        write_json(path, {k: v for k, v in before.items() if k != self.part} | {self.part: self.history})
        if self.history:
            plot_history(self.out / f"{self.part.lower()}_curve.png", self.history,
                         title=f"{self.part}: means over each epoch's batches")
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.parent.is_dir() and not any(self.dir.parent.iterdir()):
            self.dir.parent.rmdir()


def train_vae(data_dir: str | Path, out: str | Path, *, latent_dim: int = 32, epochs: int = 10,
              batch_size: int = 64, lr: float = 1e-3, reconstruction: str = "mse", seed: int = 0,
              progress: bool = True, resume: bool = False) -> WorldModel:
    """Fit V on every frame of the data; writes a world-model directory (M still untrained).

    ``reconstruction``: ``"mse"`` (the paper's) or ``"bce"`` (for mostly-white frames; see
    :func:`gailkit.nn.vae.elbo_loss`). ``resume``: continue the training of V in ``out`` that stopped
    (the module docstring); ``epochs`` may differ from its own.
    """
    data_dir, out = Path(data_dir), Path(out)
    meta = read_json(data_dir / "meta.json", what="rollout data")
    frames = _frames(data_dir)
    setup = {"latent_dim": latent_dim, "batch_size": batch_size, "lr": lr, "reconstruction": reconstruction,
             "seed": seed, "frames": len(frames), "chunks": [p.name for p in chunk_paths(data_dir)]}
    log = _EpochLog(out, "V", setup, resume=resume)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WorldModel(space_from_json(meta["action_space"]), latent_dim=latent_dim, env_id=meta.get("env_id"))
        model.data_steps, model.reconstruction = _steps([data_dir]), reconstruction
        opt = torch.optim.Adam(model.vae.parameters(), lr=lr)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        position, tensors = log.resumed()
        if tensors:
            log.restore(tensors, model.vae, opt, rng, gen)
        log.begin(epochs)
        for epoch in progress_bar(range(position.get("epoch", 0), epochs), desc="V", enabled=progress):
            t0, sums, batches = time.perf_counter(), {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}, 0
            for idx in np.array_split(rng.permutation(len(frames)), max(1, len(frames) // batch_size)):
                x = torch.as_tensor(frames[idx]).permute(0, 3, 1, 2).float() / 255.0
                recon, mean, logvar = model.vae(x, generator=gen)
                loss, parts = elbo_loss(recon, x, mean, logvar, reconstruction=reconstruction)
                opt.zero_grad()
                loss.backward()
                opt.step()
                for k, v in (("loss", loss.item()), *parts.items()):
                    sums[k] += v
                batches += 1
            record = {"epoch": epoch + 1, **{k: v / batches for k, v in sums.items()},
                      "wall_s": time.perf_counter() - t0}
            log.save({"epoch": epoch + 1}, record, model.vae, opt, rng, gen)
    model.save(out)
    log.finish()
    return model


@torch.no_grad()
def chunk_posteriors(model: WorldModel, data_dirs: list[Path]) -> list[tuple[torch.Tensor, torch.Tensor, dict]]:
    """Per chunk of the data, in order: V's posterior of every frame (``mu``, ``logvar``, ``(frames, Z)``)
    and the chunk's episodes (``lengths``, ``actions``, ``rewards``, ``terminal``; no frames)."""
    out = []
    for path in (p for d in data_dirs for p in chunk_paths(d)):
        chunk = load_chunk(path)
        out.append((*model.posterior(chunk["frames"]), {k: chunk[k] for k in ("lengths", "actions", "rewards",
                                                                           "terminal")}))
    return out


def sampled_episodes(model: WorldModel, posteriors: list[tuple[torch.Tensor, torch.Tensor, dict]],
                     generator: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    """Per episode: z ``(T+1, Z)`` (one draw from V's posterior per frame, by ``generator``, a chunk at
    a time), actions, rewards, dones ``(T,)``: what M is trained on."""
    out = []
    for mu, logvar, chunk in posteriors:
        z_all = model.vae.sample_latent(mu, logvar, generator)
        f0 = a0 = 0
        for length, terminal in zip(chunk["lengths"], chunk["terminal"]):
            done = np.zeros(length, np.float32)
            done[-1] = float(terminal)
            out.append((z_all[f0 : f0 + length + 1], torch.as_tensor(chunk["actions"][a0 : a0 + length]),
                        torch.as_tensor(chunk["rewards"][a0 : a0 + length]), torch.as_tensor(done)))
            f0, a0 = f0 + length + 1, a0 + length
    return out


def train_mdn(data_dir: str | Path | Sequence[str | Path], model_dir: str | Path, *, epochs: int = 20,
              seq_len: int = 32, batch_size: int = 32, lr: float = 1e-3, hidden: int = 256, n_mixtures: int = 5,
              seed: int = 0, action_input: bool = True, fresh_samples: bool = False, ensemble: int = 1,
              progress: bool = True, after_epoch: Callable[[int, WorldModel], None] | None = None,
              resume: bool = False) -> WorldModel:
    """Fit a fresh M (LSTM ``hidden`` units, ``n_mixtures`` per latent dimension) on V's latents of
    the data (teacher forcing, padded windows with a mask); saves it beside V in ``model_dir``.
    ``action_input=False``: an M that does not see the actions (:class:`gailkit.worldmodels.mdn_rnn.MDNRNNConfig`).

    The latents are draws from V's posterior of each frame. By default one draw per frame serves every
    epoch; ``fresh_samples`` draws them again before each epoch after the first, as the World Models
    code trains its RNN. With one draw, M can learn that draw's noise: on the quick preset's data its
    mixture mean forecasts the next posterior mean worse than copying the current one after 300 epochs,
    and about 3x better with fresh draws (``scripts/probe_worldmodel_m_samples.py``).

    ``data_dir``: one folder of chunks, or several (all of them are used, in order). ``after_epoch(n, model)``
    is called after epoch ``n`` (from 1) of the first M, e.g. to measure M as it trains. ``resume``: continue
    the training of M in ``model_dir`` that stopped (the module docstring); ``epochs`` may differ from its own.

    ``ensemble``: how many M's to fit, each from its own seed (``seed + 10_007 * j`` for the ``j``-th from 0:
    its weights' start, its draws of V's latents and its batches), on the same data; the first is M, the
    same M ``ensemble=1`` fits, the others the world model's ``members`` (each dream follows one of them, or
    draws one every step: :class:`~gailkit.worldmodels.dream.BatchedDream`).
    """
    if ensemble < 1:
        raise UsageError(f"an ensemble of {ensemble} M's: fit at least 1")
    model_dir = Path(model_dir)
    model = WorldModel.load(model_dir)
    model.mdn_config = dataclasses.replace(model.mdn_config, hidden=hidden, n_mixtures=n_mixtures,
                                           action_input=action_input)
    dirs = [Path(data_dir)] if isinstance(data_dir, (str, Path)) else [Path(d) for d in data_dir]
    setup = {"seq_len": seq_len, "batch_size": batch_size, "lr": lr, "hidden": hidden, "n_mixtures": n_mixtures,
             "seed": seed, "action_input": action_input, "fresh_samples": fresh_samples, "ensemble": ensemble,
             "data": [str(d.resolve()) for d in dirs], "steps": _steps(dirs),
             "v": hashlib.sha256((model_dir / "vae.safetensors").read_bytes()).hexdigest()[:16]}  # M fits V's latents
    log = _EpochLog(model_dir, "M", setup, resume=resume)
    model.data_steps = max(model.data_steps or 0, setup["steps"])
    posteriors = chunk_posteriors(model, dirs)
    fitted: list[MDNRNN] = []
    position, tensors = log.resumed()  # where a training that stopped had got to: M's before it are fitted
    first = position.get("member", 0)
    log.begin(epochs, ensemble)
    for j in range(ensemble):
        seed_j = seed + 10_007 * j
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_j)
            model.mdn = MDNRNN(model.mdn_config)
        model.members = []
        if j < first:
            _load_module(model.mdn, f"fitted.{j}", tensors)
            fitted.append(model.mdn)
            continue
        draws = torch.Generator().manual_seed(seed_j)
        windows = mdn_windows(sampled_episodes(model, posteriors, draws), seq_len)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_j)
            opt = torch.optim.Adam(model.mdn.parameters(), lr=lr)
            rng = np.random.default_rng(seed_j)
            if j == first and tensors:
                log.restore(tensors, model.mdn, opt, rng, draws)
            desc = "M" if ensemble == 1 else f"M {j + 1}/{ensemble}"
            done = position.get("epoch", 0) if j == first else 0
            before = {k: v for i, m in enumerate(fitted) for k, v in _module_tensors(f"fitted.{i}", m).items()}
            for epoch in progress_bar(range(done, epochs), desc=desc, enabled=progress):
                t0 = time.perf_counter()
                if fresh_samples and epoch:
                    windows = mdn_windows(sampled_episodes(model, posteriors, draws), seq_len)
                parts = fit_mdn(model.mdn, windows, opt, rng, batch_size=batch_size)
                record = {"member": j, "epoch": epoch + 1, **parts, "wall_s": time.perf_counter() - t0}
                log.save({"member": j, "epoch": epoch + 1}, record, model.mdn, opt, rng, draws,
                         tag="M" if ensemble == 1 else f"M{j + 1}", more=before)
                if after_epoch is not None and j == 0:
                    after_epoch(epoch + 1, model)
        fitted.append(model.mdn)
    model.mdn, model.members = fitted[0], fitted[1:]
    model.save(model_dir)
    log.finish()
    return model


def mdn_windows(episodes, seq_len: int = 32) -> list[tuple[torch.Tensor, ...]]:
    """Episodes ``(z (T+1, Z), a (T[, A]), r (T,), d (T,))`` cut into windows of ``seq_len`` steps,
    padded at an episode's end: ``(z (L+1, Z), a, r, d, mask (L,))`` each."""
    windows = []
    for z, a, r, d in episodes:
        for s in range(0, len(a), seq_len):
            n = min(seq_len, len(a) - s)
            pad = seq_len - n
            zw = torch.cat([z[s : s + n + 1], z[s + n : s + n + 1].repeat(pad, 1)])
            aw = torch.cat([a[s : s + n], a[s + n - 1 : s + n].repeat(pad, *[1] * (a.dim() - 1))])
            windows.append((zw, aw, torch.nn.functional.pad(r[s : s + n], (0, pad)),
                            torch.nn.functional.pad(d[s : s + n], (0, pad)),
                            torch.cat([torch.ones(n), torch.zeros(pad)])))
    return windows


def fit_mdn(mdn: MDNRNN, windows: list[tuple[torch.Tensor, ...]], optimizer: torch.optim.Optimizer,
            rng: np.random.Generator, *, batch_size: int = 32, max_batches: int | None = None) -> dict[str, float]:
    """One pass of M's teacher-forced loss over ``windows`` (:func:`mdn_windows`) in shuffled
    minibatches (at most ``max_batches`` of them); returns the loss parts' means over the pass's batches."""
    sums: dict[str, float] = {}
    batches = np.array_split(rng.permutation(len(windows)), max(1, len(windows) // batch_size))[:max_batches]
    for idx in batches:
        z, a, r, d, m = (torch.stack(t) for t in zip(*(windows[i] for i in idx)))
        loss, parts = mdn.loss(z, a, r, d, m)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mdn.parameters(), 1.0)
        optimizer.step()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
    return {k: v / len(batches) for k, v in sums.items()}


def fit_mdn_steps(mdn: MDNRNN, windows: list[tuple[torch.Tensor, ...]], optimizer: torch.optim.Optimizer,
                  rng: np.random.Generator, steps: int, *, batch_size: int = 32) -> dict[str, float]:
    """``steps`` minibatch steps of M's loss: passes over ``windows`` (:func:`fit_mdn`), the last
    one cut at the budget; M is left in eval mode. Returns the last pass's mean loss parts."""
    mdn.train()
    done, parts = 0, {}
    while done < steps:
        batches = min(steps - done, max(1, len(windows) // batch_size))
        parts = fit_mdn(mdn, windows, optimizer, rng, batch_size=batch_size, max_batches=batches)
        done += batches
    mdn.eval()
    return parts


def start_latents(model: WorldModel, data_dir: str | Path, *, seed: int = 0,
                  latent_noise: float = 1.0) -> torch.Tensor:
    """V's latents of every episode's first frame ``(E, Z)``: where dreams should start. Draws of V's
    posterior; ``latent_noise`` scales their departure from its mean (0: the means), as C is fed."""
    firsts = []
    for path in chunk_paths(data_dir):
        chunk = load_chunk(path)
        starts = np.concatenate([[0], np.cumsum(chunk["lengths"] + 1)[:-1]])
        firsts.append(chunk["frames"][starts])
    mu, logvar = model.posterior(np.concatenate(firsts))
    return model.vae.sample_latent(mu, logvar, torch.Generator().manual_seed(seed), noise=latent_noise)


@torch.no_grad()
def warm_starts(model: WorldModel, data_dirs: str | Path | Sequence[str | Path], step: int, *, seed: int = 0,
                latent_noise: float = 1.0) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Dreams that start ``step`` steps into every recorded episode longer than that: V's latent of
    that frame ``(S, Z)`` and M's LSTM state ``(h, c)`` (each ``(1, S, hidden)``) after M was fed the
    latents and actions of the steps before, as the controller's M is in the real env. With an ensemble
    of M's, each member's, stacked: ``(K, S, hidden)`` for ``K`` M's (``model.mdns``' order).

    On CarRacing a dream from the first frame must invent the track through the opening zoom (the
    first 50 frames); one started past it, M's memory warmed on the real road, keeps it
    (``scripts/probe_worldmodel_dream.py``). Latents are draws of V's posterior, ``latent_noise``
    scaling their departure from its mean (0: the means), as C is fed.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1 (dreams from the first frames: start_latents), got {step}")
    dirs = [data_dirs] if isinstance(data_dirs, (str, Path)) else list(data_dirs)
    frames, actions = [], []
    for data_dir in dirs:
        for path in chunk_paths(data_dir):
            chunk = load_chunk(path)
            f0 = a0 = 0
            for length in chunk["lengths"]:
                if length > step:
                    frames.append(chunk["frames"][f0 : f0 + step + 1])
                    actions.append(chunk["actions"][a0 : a0 + step])
                f0, a0 = f0 + length + 1, a0 + length
    if not frames:
        raise UsageError(f"no episode in {', '.join(map(str, dirs))} lasts more than {step} steps; start the "
                         "dreams earlier (a smaller dream start)")
    mu, logvar = model.posterior(np.concatenate(frames))
    z = model.vae.sample_latent(mu, logvar, torch.Generator().manual_seed(seed), noise=latent_noise)
    z = z.reshape(len(frames), step + 1, -1)
    states = [mdn.memory(z[:, :step], torch.as_tensor(np.stack(actions)))[1] for mdn in model.mdns]
    return z[:, step].contiguous(), (torch.cat([h for h, _ in states]), torch.cat([c for _, c in states]))


@torch.no_grad()
def next_latent_errors(model: WorldModel, data_dir: str | Path, *, sampled: bool = False,
                       seed: int = 0) -> tuple[float, float]:
    """How well M predicts: squared error per step of its mixture mean for the posterior mean of
    ``z[t+1]``, and of the baseline that copies the latent of frame ``t``, over every episode in
    ``data_dir`` (ideally held out). The target is a mean, not a sample: against sampled latents,
    copying pays V's sampling noise twice and any mean predictor once, which puts the ratio near 0.5
    by itself.

    What M is fed: V's posterior means by default, which M never sees in training; with ``sampled``,
    one draw of V's posterior per frame (seeded by ``seed``), as M is trained and as C and M see the
    real env, and the baseline copies that draw. Where V's posterior is wide (on CarRacing its variance
    sums to about 20 over 32 dimensions, against 0.6 for the change of the mean from one frame to the
    next), the two regimes tell different things: from means, copying is an oracle M cannot match; from
    draws, M must see through the noise, and copying the draw pays all of it.

    Returns:
        ``(m_sse, copy_sse)``; M has learned the dynamics when the first is clearly smaller.
    """
    draws = torch.Generator().manual_seed(seed)
    m_err, copy_err = [], []
    for path in chunk_paths(Path(data_dir)):
        chunk = load_chunk(path)
        mu, logvar = model.posterior(chunk["frames"])  # (frames, Z) each
        z = model.vae.sample_latent(mu, logvar, draws) if sampled else mu
        f0 = a0 = 0
        for length in chunk["lengths"]:
            ze, target = z[f0 : f0 + length + 1], mu[f0 + 1 : f0 + length + 1]
            ae = torch.as_tensor(chunk["actions"][a0 : a0 + length])
            out = model.mdn(ze[None, :-1], ae[None])  # mixtures (1, T, Z, K)
            pred = mixture_mean(out.logit_pi[0], out.mu[0])  # (T, Z)
            m_err.append(((pred - target) ** 2).sum(-1))
            copy_err.append(((ze[:-1] - target) ** 2).sum(-1))
            f0, a0 = f0 + length + 1, a0 + length
    return torch.cat(m_err).mean().item(), torch.cat(copy_err).mean().item()


@torch.no_grad()
def ensemble_disagreements(model: WorldModel, data_dir: str | Path, *, seed: int = 0,
                           latent_noise: float = 1.0) -> np.ndarray:
    """How much an ensemble's M's disagree on real episodes: at every step of the episodes in
    ``data_dir``, fed the frames' latents (V's draws, ``latent_noise`` scaling them, as C and M are fed)
    and the recorded actions, :func:`~gailkit.worldmodels.dream.disagreement` of their forecasts of
    the next latent -> ``(steps,)``. A quantile of it is a threshold for ``BatchedDream(halt_above=)``:
    dreams then end where the M's disagree more than they do on the data."""
    if len(model.mdns) < 2:
        raise UsageError("disagreement is an ensemble's: this world model has one M (train M with --m-ensemble K, "
                         "or ensemble=K)")
    draws, found = torch.Generator().manual_seed(seed), []
    for path in chunk_paths(Path(data_dir)):
        chunk = load_chunk(path)
        mu, logvar = model.posterior(chunk["frames"])
        z = model.vae.sample_latent(mu, logvar, draws, noise=latent_noise)
        f0 = a0 = 0
        for length in chunk["lengths"]:
            actions = torch.as_tensor(chunk["actions"][a0 : a0 + length])[None]
            outs = [mdn(z[None, f0 : f0 + length], actions) for mdn in model.mdns]  # mixtures (1, T, Z, mixtures)
            found.append(disagreement(torch.stack([o.logit_pi[0] for o in outs]),
                                      torch.stack([o.mu[0] for o in outs])))
            f0, a0 = f0 + length + 1, a0 + length
    if not found:
        raise UsageError(f"no episode in {data_dir}: record some first")
    return torch.cat(found).numpy()


@torch.no_grad()
def _memories(model: WorldModel, data_dir: str | Path):
    """M's memory ``h`` ``(T, hidden)`` over each episode in ``data_dir``, in turn: V's posterior means and the
    recorded actions in, as a controller would see ``h`` at steps 1..T."""
    for path in chunk_paths(Path(data_dir)):
        chunk = load_chunk(path)
        z = model.encode_frames(chunk["frames"], mean=True)  # (frames, Z)
        f0 = a0 = 0
        for length in chunk["lengths"]:
            actions = torch.as_tensor(chunk["actions"][a0 : a0 + length])
            h, _ = model.mdn.memory(z[None, f0 : f0 + length], actions[None])
            yield h[0]
            f0, a0 = f0 + length + 1, a0 + length


def mean_memory(model: WorldModel, data_dir: str | Path) -> np.ndarray:
    """M's memory ``h`` averaged over every step of the episodes in ``data_dir`` ``(hidden,)`` (as
    :func:`memory_components` sees it). Held at this constant, ``h`` keeps its average and loses its variation
    (:func:`~gailkit.worldmodels.linear_controller.without_memory` folds it into C's bias)."""
    total, steps = torch.zeros(model.mdn_config.hidden, dtype=torch.float64), 0
    for h in _memories(model, data_dir):
        total += h.double().sum(0)
        steps += len(h)
    return (total / steps).numpy()


def memory_components(model: WorldModel, data_dir: str | Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (hidden,), components (k, hidden))``: the mean of M's memory ``h`` over every step of the episodes
    in ``data_dir`` and its ``k`` leading principal directions (orthonormal rows, largest variance first; each
    signed so that its largest entry is positive)."""
    if not 1 <= k <= model.mdn_config.hidden:
        raise UsageError(f"{k} principal components of h: choose from 1 to its {model.mdn_config.hidden} units")
    hs = torch.cat([h.double() for h in _memories(model, data_dir)]).numpy()
    mean = hs.mean(0)
    values, vectors = np.linalg.eigh(np.cov(hs - mean, rowvar=False))
    top = vectors[:, np.argsort(values)[::-1][:k]].T
    top *= np.sign(top[np.arange(k), np.abs(top).argmax(1)])[:, None]
    return mean, top
