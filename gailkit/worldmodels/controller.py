"""Training World Models' C (:mod:`~gailkit.worldmodels.linear_controller`) by CMA-ES in batched dreams.

All candidates x rollouts of a generation run as one :class:`BatchedDream`: one LSTM call per
dream step for the whole population, with each dream's controller applied by a batched matrix
product. Every generation is checkpointed (CMA-ES state + best parameters), so training resumes.

The trained controller is either the best candidate seen (``solution="best"``, chosen on its own
noisy fitness) or the CMA-ES mean (``solution="mean"``: what the paper's code, estool, evaluates,
and the usual choice when fitness is noisy: the best of many noisy scores is biased upwards).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from gailkit.errors import UsageError
from gailkit.nn.checkpoint import CheckpointError, describe_changes, read_json, write_json
from gailkit.progress import progress_bar
from gailkit.worldmodels.cmaes import CMAES
from gailkit.worldmodels.dream import ENSEMBLE_DRAWS, BatchedDream
from gailkit.worldmodels.linear_controller import LinearController, controller_for, map_inputs, shift_inputs
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import check_frame_skip, evaluate_controllers

__all__ = [
    "SOLUTIONS",
    "DreamTrainingConfig",
    "dream_fitness",
    "load_config",
    "load_solution",
    "train_controller_in_dream",
    "train_controller_in_real",
]


SOLUTIONS = ("best", "mean")  # the trained controller: the best candidate seen, or the CMA-ES mean


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
    frame_skip: int = 1  # real env only: each action held for this many env steps
    solution: str = "best"  # the controller returned: "best" candidate seen, or the CMA-ES "mean"
    # CMA-ES searches the controller over inputs - input_offset (e.g. [0 for z, M's data mean of h]: h centred,
    # so that a step in an h weight does not move the action's bias by its product with h's mean); the
    # controllers evaluated, returned and loaded are the same ones over the raw inputs (shift_inputs)
    input_offset: list[float] | None = None
    # with input_offset: CMA-ES searches the controller over input_map @ (inputs - input_offset), fewer inputs than
    # the raw ones (rows orthonormal: e.g. z's identity beside the leading principal components of h, so the search
    # reads what h varies with most in a few numbers); the controllers evaluated are again over the raw inputs
    input_map: list[list[float]] | None = None
    # CMA-ES moves only the controller's parameters at search_index; the others stay at held's values (a full
    # controller: e.g. V only's weights on z held while the search learns the weights on h and the bias)
    search_index: list[int] | None = None
    held: list[float] | None = None
    # the scale of the sampling noise in the z that C and M are fed: in the real env V's (evaluate_controllers'
    # latent_noise), in the dream M's (BatchedDream's): 1 draws (the paper's), 0 feeds the mean; evaluate C so too
    latent_noise: float = 1.0
    # dreams start this many steps into recorded real episodes, M's memory run over the steps before
    # (train.warm_starts), and run to max_steps; 0: at their first frames, M's memory empty
    dream_start: int = 0
    # with an ensemble of M's (WorldModel.members): a dream's next z, reward and end come from the one member it drew
    # for the whole "dream", or from a member drawn every "step" (BatchedDream's ensemble_draw)
    ensemble_draw: str = "dream"
    # with an ensemble: a dream ends where its M's forecasts of the next z part by more than this (dream.disagreement),
    # paying halt_reward; None: dreams never halt (train.ensemble_disagreements measures the data's, to set it)
    halt_above: float | None = None
    halt_reward: float = -100.0

    def __post_init__(self):
        if self.solution not in SOLUTIONS:
            raise UsageError(f"unknown controller solution {self.solution!r}; choose one of {', '.join(SOLUTIONS)}")
        if not self.latent_noise >= 0:
            raise UsageError(f"latent noise {self.latent_noise}: must be >= 0 (1 draws from V's posterior, 0 feeds "
                             "its mean)")
        if self.ensemble_draw not in ENSEMBLE_DRAWS:
            raise UsageError(f"unknown ensemble draw {self.ensemble_draw!r}; choose one of {', '.join(ENSEMBLE_DRAWS)}")
        if self.halt_above is not None and not self.halt_above > 0:
            raise UsageError(f"halt above {self.halt_above}: the disagreement a dream halts at must be > 0")
        if not 0 <= self.dream_start < self.max_steps:
            raise UsageError(f"dream start {self.dream_start}: dreams start at a step from 0 to max_steps - 1 "
                             f"({self.max_steps - 1})")
        if self.input_map is not None:
            T = np.asarray(self.input_map, dtype=np.float64)
            if self.input_offset is None or T.ndim != 2 or T.shape[1] != len(self.input_offset):
                raise ValueError(f"input_map must be a matrix over the {len(self.input_offset or [])} inputs of "
                                 f"input_offset (its rows the searched inputs), got shape {T.shape}")
            if not np.allclose(T @ T.T, np.eye(len(T)), atol=1e-6):
                raise ValueError("input_map's rows must be orthonormal (to_search projects onto them)")
        if (self.search_index is None) != (self.held is None):
            raise ValueError("search_index and held go together: the parameters searched and the others' values")
        if self.search_index is not None:
            if self.input_offset is not None:
                raise ValueError("a search over some parameters (search_index) and over shifted inputs "
                                 "(input_offset) do not combine; choose one")
            index = np.asarray(self.search_index)
            if (not len(index) or len(np.unique(index)) != len(index) or index.min() < 0
                    or index.max() >= len(self.held)):
                raise ValueError(f"search_index must be distinct positions among the {len(self.held)} held "
                                 f"parameters, got {len(index)} from {index.min(initial=0)} to {index.max(initial=0)}")

    def search_size(self, n_params: int) -> int:
        """How many numbers CMA-ES searches for a controller of ``n_params``."""
        if self.input_map is not None:
            raw, searched = len(self.input_offset), len(self.input_map)
            if n_params % (raw + 1):
                raise ValueError(f"input_map is over {raw} inputs; a controller of {n_params} parameters is not")
            return n_params // (raw + 1) * (searched + 1)
        if self.search_index is None:
            return n_params
        if len(self.held) != n_params:
            raise ValueError(f"held has {len(self.held)} parameters; the controller has {n_params}")
        return len(self.search_index)

    def to_search(self, params: np.ndarray) -> np.ndarray:
        """A controller (over the raw inputs) as the point CMA-ES searches from (inverse of :meth:`to_raw`
        on the searched parameters)."""
        params = np.asarray(params, dtype=np.float64)
        if self.search_index is not None:
            return params[..., self.search_index]
        params = params if self.input_offset is None else shift_inputs(params, -np.asarray(self.input_offset))
        return params if self.input_map is None else map_inputs(params, np.asarray(self.input_map).T)

    def to_raw(self, params: np.ndarray) -> np.ndarray:
        """Searched parameters (over ``inputs - input_offset``, or ``input_map @ (inputs - input_offset)``, or the
        ones at ``search_index``) as the controller's over the raw inputs."""
        if self.search_index is not None:
            full = np.empty((*np.shape(params)[:-1], len(self.held)))
            full[...] = self.held
            full[..., self.search_index] = params
            return full
        params = params if self.input_map is None else map_inputs(params, np.asarray(self.input_map))
        return params if self.input_offset is None else shift_inputs(params, np.asarray(self.input_offset))


def _solution(es: CMAES, which: str) -> np.ndarray:
    return es.mean.copy() if which == "mean" else es.best_x.copy()


# what a checkpoint written before a field existed did, where that is not the field's default now
_BEFORE_THE_FIELD = {"ensemble_draw": "step"}


def _saved_config(saved: dict) -> dict:
    """A checkpoint's config with every field: those newer than it as its search ran them."""
    known = dataclasses.asdict(DreamTrainingConfig())
    return {**known, **_BEFORE_THE_FIELD, **{k: v for k, v in saved.items() if k in known}}


def load_config(directory: str | Path) -> DreamTrainingConfig:
    """The training config of the controller in ``directory`` (fields newer than its checkpoint as it ran them)."""
    saved = read_json(Path(directory) / "history.json", what="controller")["config"]
    return DreamTrainingConfig(**_saved_config(saved))


def load_solution(directory: str | Path, which: str | None = None) -> np.ndarray:
    """The controller parameters trained in ``directory``: ``which`` (``"best"`` or ``"mean"``), by
    default the run's own ``solution``."""
    config = load_config(directory)
    which = which or config.solution
    if which not in SOLUTIONS:
        raise UsageError(f"unknown controller solution {which!r}; choose one of {', '.join(SOLUTIONS)}")
    return config.to_raw(_solution(CMAES.load(directory), which))


def dream_fitness(model: WorldModel, controller: LinearController, params: np.ndarray, *, rollouts: int,
                  max_steps: int, tau: float, seed: int, start_z: torch.Tensor | None = None,
                  start_state: tuple[torch.Tensor, torch.Tensor] | None = None,
                  latent_noise: float = 1.0, ensemble_draw: str = "dream", halt_above: float | None = None,
                  halt_reward: float = -100.0) -> np.ndarray:
    """Mean dream return of each candidate ``params (P, n_params)`` over ``max_steps`` -> ``(P,)``.

    ``start_z (S, Z)``: latents of real first frames; each dream starts from one of them
    (without them, from N(0, I), which V's prior only approximates). With ``start_state`` (M's LSTM
    ``(h, c)``, each ``(K, S, hidden)`` for the world model's K M's;
    :func:`~gailkit.worldmodels.train.warm_starts`), the starts are frames inside real episodes and M's
    memory of the steps before. ``latent_noise``: as C is fed in the real env (1 M's draws, 0 its
    mixture's mean), and ``ensemble_draw``, ``halt_above`` and ``halt_reward`` where the world model has
    an ensemble of M's, as :class:`~gailkit.worldmodels.dream.BatchedDream` takes them.
    """
    if start_state is not None and start_z is None:
        raise ValueError("a start state needs its start latents: pass start_z with start_state")
    p = len(params)
    dream = BatchedDream(model, p * rollouts, tau=tau, max_steps=max_steps, seed=seed, latent_noise=latent_noise,
                         ensemble_draw=ensemble_draw, halt_above=halt_above, halt_reward=halt_reward)
    if start_z is not None:
        pick = torch.randint(len(start_z), (p * rollouts,), generator=dream.generator)
        obs = dream.reset(start_z[pick], None if start_state is None else (start_state[0][:, pick],
                                                                           start_state[1][:, pick]))
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


def _check_resumable(out: Path, es: CMAES, n_params: int, saved: dict, config: DreamTrainingConfig,
                     ignored: tuple[str, ...] = ()) -> None:
    """CheckpointError unless the search in ``out`` can go on with this controller and config (the
    ``ignored`` fields do not change this search's returns, e.g. how an ensemble is drawn where there is one M)."""
    if es.n != config.search_size(n_params):
        raise CheckpointError(f"cannot resume {out}: its search has {es.n} parameters, this world model's controller "
                              f"needs {config.search_size(n_params)} (the world model, --v-only or the parameters "
                              "searched changed); train without --resume into another directory")
    free = ("generations", "solution", *ignored)
    saved = {k: v for k, v in _saved_config(saved).items() if k not in free}
    changed = describe_changes(saved, {k: v for k, v in dataclasses.asdict(config).items() if k not in free})
    if changed:
        raise CheckpointError(f"cannot resume {out} with other options ({changed}); pass the run's options "
                              "again (only the number of generations and the solution may change) or train into "
                              "another directory")


def _cma_search(n_params: int, config: DreamTrainingConfig, out: Path, resume: bool, progress: bool,
                fitness_fn, desc: str, x0: np.ndarray | CMAES | None = None,
                ignored: tuple[str, ...] = ()) -> tuple[np.ndarray, list[dict]]:
    """CMA-ES maximising ``fitness_fn(candidates, generation)`` from ``x0`` (default zeros), or
    continuing ``x0`` if it is a :class:`CMAES` (its popsize and step size those of ``config``; with
    ``config.input_offset`` its state is over the shifted inputs, as the search's);
    checkpoints every generation."""
    if resume:
        es = CMAES.load(out)
        saved = read_json(out / "history.json", what="controller")
        history = saved["history"][:es.generation]  # a stop between the two saves: the generation runs again
        _check_resumable(out, es, n_params, saved["config"], config, ignored)
    else:
        if (out / "cmaes.json").exists():
            raise UsageError(f"{out} already holds a controller; continue it with --resume, or delete the folder "
                             "to train a new one")
        if isinstance(x0, CMAES):  # a search to continue (e.g. CMAES.widened), not a start point
            n_search = config.search_size(n_params)
            if (x0.n, x0.lam, x0.sigma) != (n_search, config.popsize, config.sigma0):
                raise ValueError(f"the search to continue has n={x0.n}, popsize {x0.lam}, sigma {x0.sigma}; the "
                                 f"controller and config need {n_search}, {config.popsize}, {config.sigma0}")
            es = x0
        else:  # x0 is a controller over the raw inputs: the search starts from its searched form
            config.search_size(n_params)  # checks held's length
            start = config.to_search(np.zeros(n_params) if x0 is None else x0)
            es = CMAES(start, config.sigma0, popsize=config.popsize, seed=config.seed)
        history = []
    from torch.utils.tensorboard import SummaryWriter

    from gailkit.generators.base import plot_history

    writer = SummaryWriter(str(out / "tb"))
    try:
        for gen in progress_bar(range(es.generation, config.generations), desc=desc, enabled=progress):
            start = time.perf_counter()
            candidates = es.ask()
            fitness = fitness_fn(config.to_raw(candidates), gen)
            es.tell(-fitness)  # CMA-ES minimises
            history.append({"generation": gen + 1, "mean": float(fitness.mean()), "best": float(fitness.max()),
                            "wall_s": round(time.perf_counter() - start, 3)})  # this generation's own time
            # the history first: a stop before the search's state is saved leaves one generation more of it, cut
            # on resume, never one less
            write_json(out / "history.json", {"history": history, "config": dataclasses.asdict(config)})
            es.save(out)
            for key in ("mean", "best"):  # the candidates' returns: their mean and the best of them
                writer.add_scalar(f"controller/{key}", history[-1][key], gen + 1)
            writer.flush()
    finally:
        writer.close()
    if resume:  # the solution may have changed: record the one returned
        write_json(out / "history.json", {"history": history, "config": dataclasses.asdict(config)})
    if history:
        plot_history(out / "curve.png", history, title=f"{desc}: {out.name}", x="generation")
    return config.to_raw(_solution(es, config.solution)), history


def train_controller_in_dream(model: WorldModel, config: DreamTrainingConfig, out: str | Path, *,
                              start_z: torch.Tensor | None = None,
                              start_state: tuple[torch.Tensor, torch.Tensor] | None = None, resume: bool = False,
                              progress: bool = True, x0: np.ndarray | CMAES | None = None
                              ) -> tuple[np.ndarray, list[dict]]:
    """CMA-ES on dream returns from ``x0`` (default zeros) or continuing a :class:`CMAES`;
    checkpoints every generation in ``out``. Dreams start from ``start_z`` (:func:`dream_fitness`); with
    ``config.dream_start`` > 0, from ``warm_starts(model, data, config.dream_start)``'s ``(start_z,
    start_state)``, and run the episode's remaining ``max_steps - dream_start`` steps.

    Returns:
        The controller (``config.solution``) and the per-generation history (mean / best dream return).
    """
    if (config.dream_start > 0) != (start_state is not None):
        raise ValueError(f"dream_start {config.dream_start} with{'out' if start_state is None else ''} a start "
                         "state: dreams that start inside real episodes take warm_starts' latents and M's state, "
                         "dreams from the first frames take neither")
    controller = controller_for(model, memory=config.memory)

    def fitness(candidates: np.ndarray, gen: int) -> np.ndarray:
        return dream_fitness(model, controller, candidates, rollouts=config.rollouts,
                             max_steps=config.max_steps - config.dream_start, tau=config.tau,
                             seed=config.seed * 100_003 + gen, start_z=start_z, start_state=start_state,
                             latent_noise=config.latent_noise, ensemble_draw=config.ensemble_draw,
                             halt_above=config.halt_above, halt_reward=config.halt_reward)

    with torch.random.fork_rng(devices=[]):
        return _cma_search(controller.n_params, config, Path(out), resume, progress, fitness, "CMA-ES (dream)", x0,
                           ignored=("ensemble_draw",) if len(model.mdns) == 1 else ())


_WORKER: dict = {}


def _init_worker(model_dir: str, env_id: str) -> None:
    torch.set_num_threads(1)
    _WORKER["model"], _WORKER["env_id"] = WorldModel.load(model_dir), env_id


def _real_returns(task: tuple[np.ndarray, int, int, int, int, float]) -> np.ndarray:
    """Mean real return of each candidate of a chunk ``(C, n_params)`` -> ``(C,)``, episodes batched."""
    params, episodes, seed, max_steps, frame_skip, latent_noise = task
    return evaluate_controllers(_WORKER["model"], params, _WORKER["env_id"], episodes, seed=seed,
                                max_steps=max_steps, frame_skip=frame_skip, latent_noise=latent_noise).mean(1)


def train_controller_in_real(model_dir: str | Path, env_id: str, config: DreamTrainingConfig, out: str | Path, *,
                             workers: int = 2, timeout_s: float = 600.0, resume: bool = False,
                             progress: bool = True, backend: str = "local", ray_address: str | None = None,
                             x0: np.ndarray | CMAES | None = None) -> tuple[np.ndarray, list[dict]]:
    """CMA-ES on real-environment returns, from ``x0`` (default zeros) or continuing a :class:`CMAES`.

    Each generation's candidates are split into chunks, one per worker, evaluated by a
    :mod:`~gailkit.worldmodels.backends` backend (``"local"`` process pool or ``"ray"``); each
    chunk runs all its candidates' episodes as one batch (:func:`evaluate_controllers`). All
    candidates of a generation play the same tracks with per-episode noise seeds, so the numbers do
    not depend on the backend (nor, up to float rounding of batched network calls, on how many
    workers share the candidates). Training episodes are cut at ``config.max_steps`` (evaluation later
    runs them in full).
    """
    from gailkit.worldmodels.backends import make_backend

    model = WorldModel.load(model_dir)
    model.check_env(env_id, f"world model {model_dir}")
    controller = controller_for(model, memory=config.memory)
    check_frame_skip(config.frame_skip, config.max_steps, "--max-steps")
    with make_backend(backend, workers, timeout_s=timeout_s, initializer=_init_worker,
                      initargs=(str(model_dir), env_id), ray_address=ray_address) as pool:
        def fitness(candidates: np.ndarray, gen: int) -> np.ndarray:
            seed = config.seed * 100_003 + gen * config.rollouts
            chunks = np.array_split(candidates, min(workers, len(candidates)))
            tasks = [(chunk, config.rollouts, seed, config.max_steps, config.frame_skip, config.latent_noise)
                     for chunk in chunks]
            return np.concatenate(pool.map(_real_returns, tasks))

        return _cma_search(controller.n_params, config, Path(out), resume, progress, fitness, "CMA-ES (real)", x0,
                           ignored=("ensemble_draw",))  # the real env draws from no ensemble
