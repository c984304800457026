"""What the expert commands take: one dataclass per command, checked up front, light to import.

``gailkit expert train`` and ``demos collect`` generate their flags from these
(:mod:`gailkit.configs`). Every value is checked in ``__post_init__`` against its type and
the interval in ``bounds`` (:func:`gailkit.configs.check_bounds`), before anything is written;
a bad one raises :class:`~gailkit.errors.UsageError` naming the flag and the range.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from gailkit.configs import check_bounds, check_types, doc
from gailkit.errors import UsageError

__all__ = ["CollectConfig", "ExpertConfig"]

EXPERT_ALGOS = ("ppo", "sac", "dqn")


@dataclasses.dataclass
class ExpertConfig:
    """What ``gailkit expert train`` takes; unset fields come from the env's preset."""

    env: str = dataclasses.field(metadata=doc("Gymnasium env id, e.g. CartPole-v1"))
    out: Path = dataclasses.field(default=Path("runs/expert"), metadata=doc("output directory"))
    algo: str | None = dataclasses.field(default=None, metadata=doc("ppo, sac or dqn (default: preset)"))
    steps: int | None = dataclasses.field(default=None, metadata=doc("environment steps (default: preset)"))
    seed: int = dataclasses.field(default=0, metadata=doc("random seed"))
    eval_episodes: int = dataclasses.field(default=20, metadata=doc("episodes for the card's evaluation"))
    device: str = dataclasses.field(default="cpu", metadata=doc("torch device"))
    progress: bool = dataclasses.field(default=True, metadata=doc("show a progress bar"))

    bounds: ClassVar[dict[str, str]] = {"steps": "[1, inf)", "eval_episodes": "[1, inf)", "seed": "[0, 2**32)"}

    def __post_init__(self) -> None:
        check_types(self)
        if self.algo is not None and self.algo not in EXPERT_ALGOS:
            raise UsageError(f"--algo {self.algo!r}: choose one of {', '.join(EXPERT_ALGOS)}")
        self.out = Path(self.out)
        check_bounds(self, self.bounds)


@dataclasses.dataclass
class CollectConfig:
    """What ``gailkit demos collect`` takes."""

    expert: Path = dataclasses.field(metadata=doc(
        "expert directory (from `gailkit expert train`), or zoo:ENV for the zoo's"))
    episodes: int = dataclasses.field(default=10, metadata=doc("episodes to record"))
    out: Path = dataclasses.field(default=Path("demos.npz"), metadata=doc("output .npz file"))
    seed: int = dataclasses.field(default=0, metadata=doc("episode i is reset with seed + i"))
    env: str | None = dataclasses.field(default=None, metadata=doc(
        "record in another env with the same spaces, e.g. gailkit/CartPoleFixedHorizon-v1 "
        "(default: the expert's env)"))
    stochastic: bool = dataclasses.field(default=False, metadata=doc("sample actions instead of the mode"))
    pixels: str | None = dataclasses.field(default=None, metadata=doc(
        "save the frames of this pixel env instead of states, e.g. gailkit/CartPoleCentredPixels-v1: it is "
        "stepped beside the expert's env with the same seeds and actions (the expert still sees states)"))

    bounds: ClassVar[dict[str, str]] = {"episodes": "[1, inf)", "seed": "[0, 2**32)"}

    def __post_init__(self) -> None:
        check_types(self)
        self.expert, self.out = Path(self.expert), Path(self.out)
        check_bounds(self, self.bounds)
