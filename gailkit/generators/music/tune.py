"""Fine-tune a saved chorale transformer by PPO in ``gailkit/ChoraleComposer-v0``.

This is what ``gailkit generate tune DIR --out OUT`` runs. ``DIR`` is a ``music/transformer``
run (``gailkit generate train music transformer --out DIR``); its LM becomes the policy and,
frozen, the KL reference of :class:`~gailkit.generators.music.composer.ComposerTrainer`, whose
critic learns Bach's training chorales against the pieces the policy writes. ``OUT`` then holds:

- ``config.json`` + ``weights.safetensors``: a ``music/transformer`` generator with the tuned
  weights, so ``gailkit generate sample OUT`` and ``gailkit generate eval OUT`` work on it as on
  any generator;
- ``rl/``: the trainer's checkpoint (policy, reference, optimiser, critic, RNG states,
  history), replaced as a whole every ``checkpoint_every`` iterations, so an interrupted run
  continues with ``resume=True`` (``--resume``) from its last one, bit for bit;
- ``tb/``: TensorBoard scalars per iteration; ``curve.png``: the same as a picture.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from gailkit.errors import UsageError
from gailkit.generators.music.composer import ComposerConfig, ComposerTrainer
from gailkit.nn.checkpoint import CheckpointError, atomic_dir, recover_dir
from gailkit.progress import progress_bar

__all__ = ["tune_transformer"]


def _first_difference(a: ComposerConfig, b: ComposerConfig) -> str | None:
    for field in dataclasses.fields(a):
        if getattr(a, field.name) != getattr(b, field.name):
            return f"{field.name} is {getattr(b, field.name)!r} here but {getattr(a, field.name)!r} in the run"
    return None


def tune_transformer(init: str | Path, out: str | Path, *, iterations: int, config: ComposerConfig | None = None,
                     resume: bool = False, checkpoint_every: int = 10, progress: bool = True,
                     chorales: list | None = None) -> tuple[Any, ComposerTrainer]:
    """PPO fine-tuning of the music transformer saved in ``init``; see the module docstring.

    Args:
        init: a ``music/transformer`` generator directory.
        out: run directory (must not hold another run unless ``resume``).
        iterations: PPO iterations in all (a resumed run continues up to this number).
        config: the trainer's options (default :class:`ComposerConfig`); on resume, None takes
            the run's own, and any other must equal it.
        resume: continue the run in ``out``.
        checkpoint_every: iterations between checkpoints (the last one is always saved).
        chorales: Bach chorales for the critic's real side (default: the training split of
            :func:`gailkit.data.chorales.load_chorales`).

    Returns:
        (the tuned ``MusicTransformer``, also saved in ``out``; the trainer).
    """
    from gailkit.data.chorales import load_chorales, split_chorales
    from gailkit.generators import load_generator
    from gailkit.generators.base import plot_history
    from gailkit.generators.music.transformer import MusicTransformer

    if iterations < 1 or checkpoint_every < 1:
        raise UsageError(f"iterations and checkpoint_every must be >= 1, got {iterations} and {checkpoint_every}")
    model = load_generator(init)
    if not isinstance(model, MusicTransformer):
        raise UsageError(f"{init} holds {model.family}/{model.name}; tuning needs a music/transformer run "
                         f"(gailkit generate train music transformer --out DIR)")
    out = Path(out)
    if chorales is None:
        chorales = split_chorales(load_chorales(), "train")
    rl = recover_dir(out / "rl")
    if (rl / "config.json").exists():
        if not resume:
            raise CheckpointError(f"{out} already holds a tuning run; pass --resume (resume=True) to continue it, "
                                  f"or choose another --out")
        trainer = ComposerTrainer.load(rl, chorales=chorales)
        if config is not None and (diff := _first_difference(trainer.config, config)):
            raise UsageError(f"cannot resume {out} with other options: {diff}; pass the run's options again "
                             f"or use another --out")
    elif resume:
        raise CheckpointError(f"nothing to resume: {rl}/config.json is missing")
    else:
        trainer = ComposerTrainer(model.lm, chorales=chorales, config=config)
    shape = ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size")
    if any(getattr(trainer.lm.config, k) != getattr(model.lm.config, k) for k in shape):
        raise UsageError(f"the run in {out} tunes a transformer of another shape than the one in {init}; "
                         f"pass the directory the run started from")
    if 16 * (n_bars := trainer.config.n_bars) > model.data_info["window"]:
        raise UsageError(f"pieces of {n_bars} bars are {16 * n_bars} sixteenths; the transformer in {init} sees "
                         f"{model.data_info['window']}: use --n-bars {model.data_info['window'] // 16} or fewer")

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))
    bar = progress_bar(total=iterations, initial=trainer.iteration, desc="music/transformer PPO", enabled=progress)
    try:
        while trainer.iteration < iterations:
            row = trainer.step()
            for key, value in row.items():
                if key != "iteration":
                    writer.add_scalar(f"tune/{key}", value, trainer.iteration)
            bar.update(1)
            bar.set_postfix({k: f"{row[k]:.3g}" for k in ("return", "mean_d") if k in row}, refresh=False)
            if trainer.iteration % checkpoint_every == 0 or trainer.iteration == iterations:
                writer.flush()
                atomic_dir(rl, trainer.save)
    finally:
        bar.close()
        writer.close()
    model.lm.load_state_dict(trainer.lm.state_dict())
    model.save(out)
    plot_history(out / "curve.png", [{"epoch": r["iteration"] + 1, **{k: v for k, v in r.items() if k != "iteration"}}
                                     for r in trainer.history], title="music/transformer PPO in ChoraleComposer-v0")
    return model, trainer
