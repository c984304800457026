"""What the agent commands take: one dataclass per command, checked up front, light to import.

``gailkit expert train``, ``demos collect`` and ``imitate`` generate their flags from these
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

__all__ = ["ALGORITHMS", "CollectConfig", "ExpertConfig", "ImitationConfig"]

ALGORITHMS = ("bc", "gail", "airl", "dac")
EXPERT_ALGOS = ("ppo", "sac", "dqn")


@dataclasses.dataclass
class ImitationConfig:
    """What ``gailkit imitate`` takes (the discriminator's options are ``--disc-*``)."""

    env: str = dataclasses.field(metadata=doc("Gymnasium env id to imitate in"))
    demos: Path = dataclasses.field(metadata=doc("demonstration .npz file"))
    algo: str = dataclasses.field(default="gail", metadata=doc("bc, gail, airl or dac"))
    steps: int = dataclasses.field(default=100_000, metadata=doc("environment steps"))
    out: Path = dataclasses.field(default=Path("runs/imitate"), metadata=doc("run directory"))
    seed: int = dataclasses.field(default=0, metadata=doc("random seed"))
    absorbing: bool = dataclasses.field(default=True, metadata=doc(
        "wrap the env in an absorbing state so termination cannot leak reward (use --no-absorbing "
        "for fixed-horizon ids such as gailkit/CartPoleFixedHorizon-v1)"))
    n_envs: int | None = dataclasses.field(default=None, metadata=doc(
        "parallel environments (default: 8 for gail/airl, 1 for dac)"))
    n_steps: int | None = dataclasses.field(default=None, metadata=doc(
        "steps per env per round (default: 128 for gail/airl, 256 for dac)"))
    batch_size: int = dataclasses.field(default=256, metadata=doc("PPO minibatch size"))
    n_epochs: int = dataclasses.field(default=10, metadata=doc("PPO epochs per round"))
    learning_rate: float = dataclasses.field(default=1e-3, metadata=doc("PPO learning rate"))
    gamma: float = dataclasses.field(default=0.98, metadata=doc("discount, in (0, 1]"))
    gae_lambda: float = dataclasses.field(default=0.9, metadata=doc("GAE lambda, in [0, 1]"))
    ent_coef: float = dataclasses.field(default=0.01, metadata=doc("PPO entropy coefficient"))
    use_sde: bool = dataclasses.field(default=False, metadata=doc(
        "generalised state-dependent exploration for continuous actions (PPO)"))
    disc_updates: int | None = dataclasses.field(default=None, metadata=doc(
        "discriminator steps per round (default: 16 for gail/airl, 4 for dac)"))
    balance: bool = dataclasses.field(default=False, metadata=doc(
        "adapt disc_updates to keep the discriminator's accuracy in [balance_low, balance_high]"))
    balance_low: float = dataclasses.field(default=0.6, metadata=doc("lower accuracy bound"))
    balance_high: float = dataclasses.field(default=0.85, metadata=doc("upper accuracy bound"))
    bc_steps: int = dataclasses.field(default=0, metadata=doc("BC steps (warm start; the whole run for bc)"))
    eval_every: int = dataclasses.field(default=10_000, metadata=doc("steps between evaluations"))
    eval_episodes: int = dataclasses.field(default=10, metadata=doc("episodes per evaluation"))
    checkpoint_every: int = dataclasses.field(default=20_000, metadata=doc("steps between checkpoints"))
    progress: bool = dataclasses.field(default=True, metadata=doc("show a progress bar"))

    bounds: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("n_envs", "n_steps", "batch_size", "n_epochs", "eval_episodes", "eval_every",
                         "checkpoint_every", "disc_updates"), "[1, inf)"),
        "bc_steps": "[0, inf)", "seed": "[0, 2**32)", "gamma": "(0, 1]", "gae_lambda": "[0, 1]",
        "learning_rate": "(0, inf)", "ent_coef": "[0, inf)", "balance_low": "[0, 1]", "balance_high": "[0, 1]",
    }

    def __post_init__(self) -> None:
        check_types(self)
        if self.algo not in ALGORITHMS:
            raise UsageError(f"--algo {self.algo!r}: choose one of {', '.join(ALGORITHMS)}")
        off_policy = self.algo == "dac"
        for name, on, off in (("n_envs", 8, 1), ("n_steps", 128, 256), ("disc_updates", 16, 4)):
            if getattr(self, name) is None:
                setattr(self, name, off if off_policy else on)
        self.out, self.demos = Path(self.out), Path(self.demos)
        # BC takes no environment steps; every other algorithm needs some
        check_bounds(self, {**self.bounds, "steps": "[0, inf)" if self.algo == "bc" else "[1, inf)"})
        if self.balance_high <= self.balance_low:
            raise UsageError(f"--balance-high {self.balance_high} must exceed --balance-low {self.balance_low}")


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

    expert: Path = dataclasses.field(metadata=doc("expert directory (from `gailkit expert train`)"))
    episodes: int = dataclasses.field(default=10, metadata=doc("episodes to record"))
    out: Path = dataclasses.field(default=Path("demos.npz"), metadata=doc("output .npz file"))
    seed: int = dataclasses.field(default=0, metadata=doc("episode i is reset with seed + i"))
    env: str | None = dataclasses.field(default=None, metadata=doc(
        "record in another env with the same spaces, e.g. gailkit/CartPoleFixedHorizon-v1 "
        "(default: the expert's env)"))
    stochastic: bool = dataclasses.field(default=False, metadata=doc("sample actions instead of the mode"))

    bounds: ClassVar[dict[str, str]] = {"episodes": "[1, inf)", "seed": "[0, 2**32)"}

    def __post_init__(self) -> None:
        check_types(self)
        self.expert, self.out = Path(self.expert), Path(self.out)
        check_bounds(self, self.bounds)
