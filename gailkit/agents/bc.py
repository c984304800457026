"""BC: behaviour cloning as an imitation algorithm (``gailkit imitate bc``).

No environment steps: the policy is fit to the expert's actions (``--bc-*`` options, see
:class:`~gailkit.agents.cloning.BCConfig`), saved in ``bc/`` and evaluated once. The run
directory holds what every run's does (``config.json``, ``demos.npz``, ``eval.json``,
``curve.png``, ``tb/``: the ``bc/*`` loss statistics); it has no checkpoint, since it trains in
seconds.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

from stable_baselines3.common.logger import configure

from gailkit.agents.base import Run, RunConfig
from gailkit.agents.cloning import BC, BCConfig
from gailkit.agents.experts import evaluate_policy
from gailkit.agents.registry import register
from gailkit.data.demos import Demonstrations
from gailkit.evaluation import EVAL_SEED, normalised_return

__all__ = ["BehaviourCloning", "BCRunConfig"]


@dataclasses.dataclass(kw_only=True)
class BCRunConfig(RunConfig):
    """What ``gailkit imitate bc`` takes besides the ``--bc-*`` options."""


@register("bc")
class BehaviourCloning(Run):
    """Behaviour cloning of the demonstrations (no environment steps)."""

    Config = BCRunConfig
    parts: ClassVar[dict[str, type]] = {"bc": BCConfig}
    fixed: ClassVar[dict[str, tuple[str, ...]]] = {"bc": ("seed",)}  # the run's seed
    resumable = False

    def __init__(self, config: BCRunConfig, *, bc: BCConfig | None = None, demos: Demonstrations | None = None):
        super().__init__(config, demos=demos)
        self.bc_config = self.resolve_parts(config, {"bc": bc})["bc"]
        self.policy = BC(self.demos.observation_space, self.demos.action_space, self.bc_config)

    @classmethod
    def resolve_parts(cls, config: BCRunConfig, parts: dict[str, Any]) -> dict[str, Any]:
        return {**parts, "bc": dataclasses.replace(parts.get("bc") or BCConfig(), seed=config.seed)}

    def part_configs(self) -> dict[str, Any]:
        return {"bc": self.bc_config}

    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        env = self._make_env()  # through the perception, if the run has one
        returns = evaluate_policy(self.policy.predict, env, episodes or self.config.eval_episodes, seed=EVAL_SEED)
        env.close()
        result = {"steps": 0, "return_mean": float(returns.mean()), "return_std": float(returns.std())}
        norm = normalised_return(result["return_mean"], self.expert_return, self.random_return)
        if norm is not None:
            result["normalised"] = norm
        return result

    def train(self, *, resume: bool = False) -> list[dict[str, float]]:
        """Fit, save ``bc/`` and record one evaluation (``resume`` is refused by the caller)."""
        self._write_config()
        self._clock = time.perf_counter()
        logger = configure(str(self.out / "tb"), ["tensorboard"])  # bc/* every 100 gradient steps
        try:
            self.policy.fit(self.demos, progress=self.config.progress, logger=logger)
        finally:
            logger.close()
        self.policy.save(self.out / "bc")
        self._record(self.evaluate())
        return self.history

    @classmethod
    def load(cls, directory: str | Path) -> BehaviourCloning:
        config, parts = cls.saved_configs(directory, progress=False)
        run = cls(config, **parts)
        run.policy = BC.load(Path(directory) / "bc")
        return run
