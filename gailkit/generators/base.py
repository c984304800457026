"""The generator protocol and the shared training loop.

:class:`Generator` fixes what every model offers (``fit / sample / evaluate / save / load``)
and how it is stored: ``DIR/config.json`` (family, model, config, data description, history,
versions) beside ``DIR/weights.safetensors``; nothing is pickled.

:class:`TorchGenerator` adds the epoch loop that the torch models share: seeded shuffling, a
progress bar, TensorBoard scalars, an atomic checkpoint after every epoch that a later
``fit(..., resume=True)`` continues from bit for bit, sample grids during training and a
loss-curve PNG at the end. A model supplies ``prepare`` (validate data -> tensors),
``_build`` (networks and optimisers), ``train_step`` and ``sample``.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from gailkit.configs import check_bounds, check_types, doc, json_fields
from gailkit.nn.checkpoint import (
    CheckpointError,
    capture_rng,
    describe_changes,
    load_optimizer_tensors,
    load_tensors,
    optimizer_tensors,
    read_json,
    read_progress,
    restore_rng,
    save_tensors,
    tensors_under,
    write_json,
    write_progress,
)
from gailkit.plots import figure, save_png
from gailkit.progress import progress_bar
from gailkit.versions import versions

__all__ = ["Generator", "GeneratorConfig", "TorchGenerator", "plot_history"]

FORMAT = "gailkit.generator"
FORMAT_VERSION = 1


@dataclasses.dataclass
class GeneratorConfig:
    """Training options every generator has; models subclass this and add their own fields.

    Building a config checks it: each field has its declared type, and each name in
    ``bounds`` lies in its interval (``"[1, inf)"``, ``"(0, 1]"``, ...), so a bad option is
    refused before any data is loaded. Subclasses extend ``bounds`` with their own fields
    (``bounds = {**GeneratorConfig.bounds, "latent": "[1, inf)"}``) and call
    ``super().__post_init__()`` from their own ``__post_init__``.
    """

    epochs: int = dataclasses.field(default=20, metadata=doc("passes over the training data"))
    batch_size: int = dataclasses.field(default=128, metadata=doc("examples per gradient step"))
    lr: float = dataclasses.field(default=1e-3, metadata=doc("learning rate"))
    seed: int = dataclasses.field(default=0, metadata=doc("seeds initialisation, shuffling and noise"))
    grid_every: int = dataclasses.field(default=5, metadata=doc("epochs between sample grids (0: never)"))

    # epochs=0 is allowed: fit() then builds and saves the untrained model (a baseline).
    bounds: ClassVar[dict[str, str]] = {"epochs": "[0, inf)", "batch_size": "[1, inf)", "lr": "(0, inf)",
                                        "seed": "[0, 2**32)", "grid_every": "[0, inf)"}

    def __post_init__(self) -> None:
        check_types(self)
        check_bounds(self, self.bounds)


class Generator(abc.ABC):
    """A trainable generative model.

    Construct with a config (``Model(Model.Config(...))`` or keyword overrides
    ``Model(epochs=5)``); the networks are built when the data shape is known, by ``fit`` or
    ``load``. Subclasses set ``Config`` and are registered with
    :func:`gailkit.generators.register`, which sets ``family`` and ``name``.
    """

    family: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Config: ClassVar[type] = GeneratorConfig

    def __init__(self, config: Any = None, /, **overrides: Any) -> None:
        config = self.Config() if config is None else config
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} takes a {self.Config.__name__}, got {type(config).__name__}")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(config)}
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option(s) {', '.join(sorted(unknown))}")
        self.config = dataclasses.replace(config, **overrides)
        self.data_info: dict[str, Any] | None = None
        self.history: list[dict[str, float]] = []

    # -- to implement -------------------------------------------------------------------------
    @abc.abstractmethod
    def _build(self) -> None:
        """Create networks (and optimisers) for ``self.data_info``."""

    @abc.abstractmethod
    def fit(self, data: Any, *, out: str | Path | None = None, resume: bool = False,
            progress: bool = True) -> Generator:
        """Train on ``data``; with ``out``, checkpoint there and save the final model there."""

    @abc.abstractmethod
    def sample(self, n: int, *, seed: int | None = None, **kwargs: Any) -> Any:
        """``n`` samples; the same seed gives the same samples."""

    @abc.abstractmethod
    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, float]:
        """Metrics against held-out ``data``, as plain floats."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything learned, as a flat name -> tensor mapping."""
        return {}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state_tensors` on a model built for the same data."""

    def extra_meta(self) -> dict[str, Any]:
        """JSON-able learned state that is not a tensor (a vocabulary, a fitted threshold)."""
        return {}

    def load_extra_meta(self, meta: Mapping[str, Any]) -> None:
        """Inverse of :meth:`extra_meta`."""

    def save_samples(self, path: str | Path, *, n: int = 64, seed: int = 0) -> Path | None:
        """Write ``n`` samples to ``path`` in the family's form (a PNG grid, a text file, MIDI);
        families override this. Returns the path written, or None if the model cannot."""
        return None

    # -- shared -------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.data_info is not None

    def build(self, data_info: Mapping[str, Any]) -> None:
        """Build the networks for data described by ``data_info`` (shapes, classes, vocabulary)."""
        self.data_info = dict(data_info)
        self._build()

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(f"{self.family}/{self.name}: call fit() or load() before {what}()")

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``weights.safetensors`` to ``directory`` (atomically each)."""
        self._require_built("save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_tensors(directory / "weights.safetensors", self.state_tensors())
        self._write_config(directory, extra=self.extra_meta())
        return directory

    def _write_config(self, directory: Path, *, extra: Mapping[str, Any]) -> None:
        """``directory/config.json``: what :meth:`_read_config` checks and rebuilds from."""
        write_json(directory / "config.json", {
            "format": FORMAT, "version": FORMAT_VERSION, "family": self.family, "model": self.name,
            "config": json_fields(self.config), "data": self.data_info, "extra": dict(extra),
            "history": self.history, "versions": versions(),
        })

    @classmethod
    def _read_config(cls, directory: Path) -> tuple[dict[str, Any], Generator]:
        """Check ``directory/config.json`` is this model's; returns it and an unbuilt model of its config."""
        meta = read_json(directory / "config.json", what="generator")
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"generator: {directory} holds no gailkit generator (config.json lacks "
                                  f"'format': '{FORMAT}')")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise CheckpointError(f"generator: {directory} was written by a newer gailkit (format "
                                  f"{meta['version']} > {FORMAT_VERSION}); upgrade gailkit")
        if (meta.get("family"), meta.get("model")) != (cls.family, cls.name):
            raise CheckpointError(f"generator: {directory} holds a {meta.get('family')}/{meta.get('model')} model, "
                                  f"not {cls.family}/{cls.name}; load it with gailkit.generators.load_generator")
        for key in ("config", "data"):
            if not isinstance(meta[key], dict):
                raise CheckpointError(f"generator: {directory}/config.json: {key!r} is a JSON "
                                      f"{type(meta[key]).__name__}, not an object; the file is damaged (train the "
                                      f"model again or restore the directory)")
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        try:
            config = cls.Config(**{k: v for k, v in meta["config"].items() if k in fields})
        except ValueError as e:  # UsageError included: a saved option outside what the model accepts
            raise CheckpointError(f"generator: {directory}/config.json holds an invalid option ({e}); the file is "
                                  f"damaged (train the model again or restore the directory)") from None
        return meta, cls(config)

    @classmethod
    def load(cls, directory: str | Path) -> Generator:
        """Rebuild a model saved by :meth:`save`; CheckpointError if it holds another model."""
        directory = Path(directory)
        meta, model = cls._read_config(directory)
        model.build(meta["data"])
        model.load_extra_meta(meta.get("extra", {}))
        # read outside the try: a missing or corrupt file is reported as such, not as a misfit
        tensors = load_tensors(directory / "weights.safetensors", what="generator")
        try:
            model.load_state_tensors(tensors)
        except (RuntimeError, KeyError) as e:
            detail = f"no tensor {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
            raise CheckpointError(f"generator: {directory}/weights.safetensors does not fit the "
                                  f"{cls.family}/{cls.name} model its config describes ({detail}); it belongs to "
                                  f"another model or run: restore the directory or train again") from None
        model.history = list(meta.get("history", []))
        return model


class TorchGenerator(Generator):
    """A generator trained by minibatch gradient steps over epochs (see the module docstring)."""

    #: drop the last partial batch (batch norm and GAN losses dislike tiny batches)
    drop_last: ClassVar[bool] = True

    @abc.abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks, by name (their weights are what :meth:`save` stores)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers, by name (checkpointed with the weights)."""
        return {}

    @abc.abstractmethod
    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        """Validate ``data`` (clear errors), build the model if needed, return aligned tensors."""

    @abc.abstractmethod
    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        """One gradient step on a minibatch; returns scalars to log."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Called after each epoch (0-based); returns extra scalars for the history."""
        return {}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v for name, m in self.modules().items() for k, v in m.state_dict().items()}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for name, module in self.modules().items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})

    def build(self, data_info: Mapping[str, Any]) -> None:
        super().build(data_info)
        self.train_mode(False)  # modules are in eval mode except inside fit()

    def train_mode(self, training: bool) -> None:
        for module in self.modules().values():
            module.train(training)

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self, directory: Path, epoch: int) -> None:
        tensors = dict(self.state_tensors())
        for name, opt in self.optimizers().items():
            tensors.update({f"optim.{name}.{k}": v for k, v in optimizer_tensors(opt).items()})
        rng_tensors, rng_meta = capture_rng()
        tensors.update({f"rng.{k}": v for k, v in rng_tensors.items()})
        write_progress(directory, epoch, tensors, {
            "epoch": epoch, "config": json_fields(self.config), "data": self.data_info,
            "extra": self.extra_meta(), "history": self.history, "rng": rng_meta,
        })

    def _restore(self, directory: Path) -> int:
        progress = read_progress(directory)
        damaged = (f"the checkpoint in {directory} is damaged; delete that folder to train {directory.parent} from "
                   f"the start, or use another --out")
        if not isinstance(progress["config"], dict) or not isinstance(progress["history"], list):
            raise CheckpointError(f"{directory}/progress.json has the wrong structure: {damaged}")
        saved = {k: v for k, v in progress["config"].items() if k != "epochs"}
        current = {k: v for k, v in json_fields(self.config).items() if k != "epochs"}
        if saved != current:
            raise CheckpointError(f"cannot resume {directory.parent}: its run used other options "
                                  f"({describe_changes(saved, current)}); "
                                  f"resume with the same options (only --epochs may change) or use another --out")
        if progress["data"] != self.data_info:
            raise CheckpointError(f"cannot resume {directory.parent}: it was trained on other data "
                                  f"({progress['data']} vs {self.data_info})")
        tensors = load_tensors(directory / progress["state"], what="training checkpoint")
        try:  # the options and data matched, so tensors that do not fit mean a damaged file
            self.load_extra_meta(progress.get("extra", {}))
            self.load_state_tensors(tensors)
            for name, opt in self.optimizers().items():
                load_optimizer_tensors(opt, tensors_under(tensors, f"optim.{name}."))
            restore_rng(tensors_under(tensors, "rng."), progress["rng"])
        except (RuntimeError, KeyError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            detail = f"no tensor {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
            raise CheckpointError(f"{directory / progress['state']} does not fit the model ({detail}): {damaged}"
                                  ) from None
        self.history = list(progress["history"])
        return int(progress["epoch"])

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, data: Any, *, out: str | Path | None = None, resume: bool = False,
            progress: bool = True) -> TorchGenerator:
        """Train for ``config.epochs`` epochs (see the module docstring for what ``out`` holds).

        Args:
            data: what the family takes (an ``ImageData`` for digits and images, ...).
            out: run directory; without it nothing is written.
            resume: continue the run in ``out`` from its last checkpoint. Without it, an ``out``
                that already holds a run is an error rather than silently overwritten.
            progress: show a progress bar.
        """
        torch.manual_seed(self.config.seed)  # before prepare(): it may build (initialise) the networks
        np.random.seed(self.config.seed)
        tensors = self.prepare(data)
        n = len(tensors[0])
        cfg = self.config
        start = 0
        out = Path(out) if out is not None else None
        ckpt = out / "checkpoint" if out is not None else None
        if ckpt is not None and (ckpt / "progress.json").exists():
            if not resume:
                raise CheckpointError(f"{out} already holds a training run; pass --resume (resume=True) to "
                                      f"continue it, or choose another --out")
            start = self._restore(ckpt)
        elif resume:
            raise CheckpointError(f"nothing to resume: {ckpt}/progress.json is missing"
                                  if ckpt else "resume=True needs out=DIR")
        writer = None
        if out is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        batch = min(cfg.batch_size, n)
        n_batches = n // batch if self.drop_last else -(-n // batch)
        try:
            for epoch in range(start, cfg.epochs):
                t0 = time.perf_counter()
                order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
                self.train_mode(True)
                sums: dict[str, float] = {}
                bar = progress_bar(range(n_batches), desc=f"{self.family}/{self.name} {epoch + 1}/{cfg.epochs}",
                                   enabled=progress, leave=False)
                for b in bar:
                    idx = order[b * batch:(b + 1) * batch]
                    logs = self.train_step(tuple(t[idx] for t in tensors))
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    if b % 10 == 0:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()}, refresh=False)
                self.train_mode(False)
                record = {"epoch": epoch + 1, **{k: v / n_batches for k, v in sums.items()}}
                record.update(self.end_epoch(epoch))
                record["wall_s"] = time.perf_counter() - t0
                self.history.append(record)
                if writer is not None:
                    for k, v in record.items():
                        if k != "epoch":
                            writer.add_scalar(f"{self.name}/{k}", v, epoch + 1)
                    writer.flush()
                if out is not None:
                    self._checkpoint(ckpt, epoch + 1)
                    if cfg.grid_every and ((epoch + 1) % cfg.grid_every == 0 or epoch + 1 == cfg.epochs):
                        self.save_samples(out / "samples" / f"epoch_{epoch + 1:04d}.png")
        finally:
            if writer is not None:
                writer.close()
            self.train_mode(False)
        if out is not None:
            self.save(out)
            if self.history:
                plot_history(out / "curve.png", self.history, title=f"{self.family}/{self.name}")
        return self


def plot_history(path: str | Path, history: list[dict[str, float]], *, title: str, x: str = "epoch") -> Path:
    """Per-epoch (per-``x``) scalars, one small panel each (losses live on different scales), written atomically.
    Records with a ``member`` (an ensemble's, each trained in turn) draw one line per member."""
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in history[0] if k not in (x, "epoch", "member", "wall_s")][:8]
    cols = min(4, max(1, len(keys)))
    rows = -(-len(keys) // cols) if keys else 1
    fig = figure(figsize=(3.2 * cols, 2.4 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    members = sorted({h.get("member", 0) for h in history})
    for ax, key in zip(axes.flat, keys):
        for member in members:
            rows_of = [h for h in history if h.get("member", 0) == member]
            ax.plot([h[x] for h in rows_of], [h.get(key, np.nan) for h in rows_of], marker="o", ms=2,
                    label=f"member {member + 1}")
        if len(members) > 1:
            ax.legend(fontsize="x-small")
        ax.set(title=key, xlabel=x)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path)
