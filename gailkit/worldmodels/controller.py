"""World Models' C: a linear controller on ``[z, h]``, trained by CMA-ES inside batched dreams.

All candidates x rollouts of a generation run as one :class:`BatchedDream`: one LSTM call per
dream step for the whole population, with each dream's controller applied by a batched matrix
product. Every generation is checkpointed (CMA-ES state + best parameters), so training resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from gailkit.nn.checkpoint import read_json, write_json
from gailkit.worldmodels.cmaes import CMAES
from gailkit.worldmodels.dream import BatchedDream
from gailkit.worldmodels.model import WorldModel

__all__ = [
    "LinearController",
    "DreamTrainingConfig",
    "controller_for",
    "dream_fitness",
    "train_controller_in_dream",
    "train_controller_in_real",
]


class LinearController:
    """``a = W [z, h] + b``: argmax for discrete actions, tanh scaled to the bounds for Box."""

    def __init__(self, in_dim: int, action_space: gym.Space):
        self.in_dim, self.action_space = in_dim, action_space
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.out_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.n_params = self.out_dim * (in_dim + 1)

    def act(self, params: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Batched: ``params (B, n_params)``, ``obs (B, in_dim)`` -> actions ``(B,)`` or ``(B, A)``."""
        W = params[:, : self.out_dim * self.in_dim].reshape(-1, self.out_dim, self.in_dim)
        b = params[:, self.out_dim * self.in_dim :]
        out = np.einsum("boi,bi->bo", W, obs) + b  # (B, out_dim)
        if self.discrete:
            return out.argmax(1)
        low, high = self.action_space.low, self.action_space.high
        return (low + (np.tanh(out) + 1) * 0.5 * (high - low)).astype(np.float32)


def controller_for(model: WorldModel, *, memory: bool = True, n_params: int | None = None) -> LinearController:
    """The controller over ``[z, h]`` (``memory=True``, V+M+C) or over ``z`` alone (the paper's V-only row).

    With ``n_params``, which of the two is inferred from the parameter count of a trained one.
    """
    z, h = model.latent_dim, model.mdn_config.hidden
    if n_params is not None:
        full, v_only = LinearController(z + h, model.action_space), LinearController(z, model.action_space)
        if n_params == full.n_params:
            return full
        if n_params == v_only.n_params:
            return v_only
        raise ValueError(f"controller parameters ({n_params}) fit neither [z, h] ({full.n_params}) nor z alone "
                         f"({v_only.n_params}) of this world model; was it trained with another one?")
    return LinearController(z + h if memory else z, model.action_space)


@dataclasses.dataclass
class DreamTrainingConfig:
    """CMA-ES in the dream (or, with ``train_controller_in_real``, in the real env)."""

    generations: int = 50
    popsize: int = 32
    rollouts: int = 4  # dreams per candidate
    max_steps: int = 200  # dream horizon
    tau: float = 1.15  # M's temperature: > 1 makes the dream harder to exploit
    sigma0: float = 0.5
    seed: int = 0
    memory: bool = True  # controller sees [z, h]; False: z only (V-only, train it in the real env)


def dream_fitness(model: WorldModel, controller: LinearController, params: np.ndarray, *, rollouts: int,
                  max_steps: int, tau: float, seed: int, start_z: torch.Tensor | None = None) -> np.ndarray:
    """Mean dream return of each candidate ``params (P, n_params)`` -> ``(P,)``.

    ``start_z (S, Z)``: latents of real first frames; each dream starts from one of them
    (without them, from N(0, I), which V's prior only approximates).
    """
    p = len(params)
    dream = BatchedDream(model, p * rollouts, tau=tau, max_steps=max_steps, seed=seed)
    if start_z is not None:
        pick = torch.randint(len(start_z), (p * rollouts,), generator=dream.generator)
        obs = dream.reset(start_z[pick])
    else:
        obs = dream.reset()
    per_dream = np.repeat(params, rollouts, axis=0)
    returns, alive = np.zeros(p * rollouts), np.ones(p * rollouts, dtype=bool)
    for _ in range(max_steps):
        obs, rewards, terminated, truncated = dream.step(controller.act(per_dream, obs[:, :controller.in_dim]))
        returns += rewards * alive
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return returns.reshape(p, rollouts).mean(1)


def _cma_search(n_params: int, config: DreamTrainingConfig, out: Path, resume: bool, progress: bool,
                fitness_fn, desc: str) -> tuple[np.ndarray, list[dict]]:
    """CMA-ES maximising ``fitness_fn(candidates, generation)``; checkpoints every generation."""
    if resume:
        es = CMAES.load(out)
        history = read_json(out / "history.json", what="controller")["history"]
    else:
        es = CMAES(np.zeros(n_params), config.sigma0, popsize=config.popsize, seed=config.seed)
        history = []
    for gen in tqdm(range(es.generation, config.generations), desc=desc, disable=not progress):
        candidates = es.ask()
        fitness = fitness_fn(candidates, gen)
        es.tell(-fitness)  # CMA-ES minimises
        history.append({"generation": gen + 1, "mean": float(fitness.mean()), "best": float(fitness.max())})
        es.save(out)
        write_json(out / "history.json", {"history": history, "config": dataclasses.asdict(config)})
    return es.best_x, history


def train_controller_in_dream(model: WorldModel, config: DreamTrainingConfig, out: str | Path, *,
                              start_z: torch.Tensor | None = None, resume: bool = False,
                              progress: bool = True) -> tuple[np.ndarray, list[dict]]:
    """CMA-ES on dream returns; checkpoints every generation in ``out``.

    Returns:
        The best parameters found and the per-generation history (mean / best dream return).
    """
    controller = controller_for(model, memory=config.memory)

    def fitness(candidates: np.ndarray, gen: int) -> np.ndarray:
        return dream_fitness(model, controller, candidates, rollouts=config.rollouts, max_steps=config.max_steps,
                             tau=config.tau, seed=config.seed * 100_003 + gen, start_z=start_z)

    with torch.random.fork_rng(devices=[]):
        return _cma_search(controller.n_params, config, Path(out), resume, progress, fitness, "CMA-ES (dream)")


_WORKER: dict = {}


def _init_worker(model_dir: str, env_id: str) -> None:
    torch.set_num_threads(1)
    _WORKER["model"], _WORKER["env_id"] = WorldModel.load(model_dir), env_id


def _real_return(task: tuple[np.ndarray, int, int, int]) -> float:
    from gailkit.worldmodels.train import evaluate_controller

    params, episodes, seed, max_steps = task
    return float(evaluate_controller(_WORKER["model"], params, _WORKER["env_id"], episodes, seed=seed,
                                     max_steps=max_steps).mean())


def train_controller_in_real(model_dir: str | Path, env_id: str, config: DreamTrainingConfig, out: str | Path, *,
                             workers: int = 2, timeout_s: float = 600.0, resume: bool = False,
                             progress: bool = True) -> tuple[np.ndarray, list[dict]]:
    """CMA-ES on real-environment returns, candidates evaluated in a :class:`ResilientPool`.

    Training episodes are cut at ``config.max_steps`` (evaluation later runs them in full).
    """
    from gailkit.worldmodels.workers import ResilientPool

    model = WorldModel.load(model_dir)
    controller = controller_for(model, memory=config.memory)
    with ResilientPool(workers, timeout_s=timeout_s, initializer=_init_worker,
                       initargs=(str(model_dir), env_id)) as pool:
        def fitness(candidates: np.ndarray, gen: int) -> np.ndarray:
            seed = config.seed * 100_003 + gen * config.rollouts
            return np.array(pool.map(_real_return, [(c, config.rollouts, seed, config.max_steps) for c in candidates]))

        return _cma_search(controller.n_params, config, Path(out), resume, progress, fitness, "CMA-ES (real)")
