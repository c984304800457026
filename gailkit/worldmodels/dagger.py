"""World Models' linear controller C fitted to a privileged teacher by DAgger, on ``[z, h]`` or ``z`` alone.

CMA-ES asks whether its search finds a controller; this asks what C's inputs can express. A teacher
that reads the simulator's state (e.g. :class:`gailkit.envs.car_racing.TrackFollower`) labels every
frame with its action; C is fitted to the labels by least squares, then drives, and the frames it
meets are labelled and added (DAgger: Ross, Gordon and Bagnell, 2011). The same procedure with the
same teacher and tracks, run once for C over ``[z, h]`` and once over ``z``, says whether M's
memory carries something a linear controller can drive with. C over ``[z, a_{t-1}]`` (the action
taken the step before) is the control for a copycat: M is fed every action, so h holds the last
one, and an imitator that reads its own last action can fit a smooth teacher by repeating it (de Haan,
Jayaraman and Levine, 2019, "Causal Confusion in Imitation Learning"). :func:`drive` drives any of
these C without a teacher. :func:`teacher_frames` and :func:`linear_probe` ask what ``h`` and ``z`` hold along the
teacher's driving (the car's speed, the last action) by linear read-outs.

Iteration 0 drives with the teacher; iteration ``i`` with C, except that each step takes the
teacher's action with probability ``beta_decay ** i`` (per step, drawn from the episode's own
generator). M's memory always follows the actions taken. V's sampling noise is drawn as in
:func:`gailkit.worldmodels.real.evaluate_controllers`, so the fitted C meets the inputs it is
evaluated on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from gailkit.envs.make import make_env
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import load_tensors, read_json, save_tensors, write_json
from gailkit.progress import progress_bar
from gailkit.worldmodels.linear_controller import LinearController
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.real import fast_encoder

__all__ = ["DaggerConfig", "DaggerResult", "TeacherFrames", "dagger_controller", "dagger_inputs", "drive",
           "fit_linear_controller", "linear_probe", "teacher_frames", "teacher_returns"]

Teacher = Callable[[object], np.ndarray]  # (env) -> action, reading env.unwrapped
Measure = Callable[[object], np.ndarray]  # (env) -> quantities of the simulator's state, e.g. the car's speed


@dataclasses.dataclass
class _Episodes:
    inputs: np.ndarray  # (steps, C's inputs), the labelled steps of all episodes interleaved tick by tick
    labels: np.ndarray  # (steps, actions): the teacher's
    measures: np.ndarray | None  # (steps, quantities): ``measure`` of each labelled step's env
    episode: np.ndarray  # (steps,): the index in ``tracks`` of each labelled step's episode
    returns: np.ndarray  # (episodes,)


@dataclasses.dataclass(frozen=True)
class DaggerConfig:
    """DAgger's budget. Training tracks: ``first_track + 10_000 * seed + iteration * episodes + e``."""

    iterations: int = 6  # iteration 0 (the teacher drives) and this many - 1 with C driving
    episodes: int = 8  # episodes per iteration, stepped together
    max_steps: int = 1000  # env steps per episode at most
    beta_decay: float = 0.5  # the teacher's share of steps at iteration i: beta_decay ** i
    ridge: float = 1e-3  # L2 penalty on C's weights over standardised inputs
    seed: int = 0
    first_track: int = 1_000_000  # well apart from the evaluation tracks (gailkit.evaluation.EVAL_SEED)

    def __post_init__(self):
        if self.iterations < 1 or self.episodes < 1 or self.max_steps < 1:
            raise UsageError(f"iterations ({self.iterations}), episodes ({self.episodes}) and max_steps "
                             f"({self.max_steps}) must be >= 1")
        if not 0.0 <= self.beta_decay <= 1.0 or self.ridge < 0:
            raise UsageError(f"beta_decay ({self.beta_decay}) must be in [0, 1] and ridge ({self.ridge}) >= 0")


@dataclasses.dataclass
class DaggerResult:
    """The fitted C, one record per iteration, and C's inputs averaged over every labelled step."""

    params: np.ndarray
    history: list[dict]
    input_mean: np.ndarray

    def save(self, directory: str | Path) -> Path:
        """``params`` and ``input_mean`` in ``dagger.safetensors``, the history in ``dagger.json`` (written
        last: a folder with it holds a whole result)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_tensors(directory / "dagger.safetensors", {"params": torch.from_numpy(np.asarray(self.params, np.float64)),
                                                        "input_mean": torch.from_numpy(np.asarray(self.input_mean,
                                                                                                  np.float64))})
        write_json(directory / "dagger.json", {"history": self.history})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DaggerResult:
        directory = Path(directory)
        history = read_json(directory / "dagger.json", what="DAgger result")["history"]
        arrays = load_tensors(directory / "dagger.safetensors", what="DAgger result")
        return cls(arrays["params"].numpy(), history, arrays["input_mean"].numpy())


def fit_linear_controller(controller: LinearController, inputs: np.ndarray, actions: np.ndarray, *,
                          ridge: float = 1e-3) -> np.ndarray:
    """C's parameters minimising the mean squared error of its (tanh-squashed) actions to ``actions``,
    each action dimension scaled to its range, plus ``ridge`` times the squared weights over
    standardised inputs. Starts from least squares on the squashing's inverse, then L-BFGS in float64.
    Box actions only. Returns the flat ``(out_dim * in_dim + out_dim,)`` layout of :class:`LinearController`.
    """
    if controller.discrete:
        raise UsageError("fit_linear_controller fits Box actions; a discrete C has no squared error to fit")
    x = np.asarray(inputs, np.float64)
    y = np.asarray(actions, np.float64)
    if x.ndim != 2 or x.shape[1] != controller.in_dim or y.shape != (len(x), controller.out_dim):
        raise UsageError(f"inputs {x.shape} and actions {y.shape} do not fit C's {controller.in_dim} inputs and "
                         f"{controller.out_dim} actions")
    low, high = controller.action_space.low.astype(np.float64), controller.action_space.high.astype(np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / scale
    unit = 2.0 * (y - low) / (high - low) - 1.0  # the actions as tanh's outputs, in [-1, 1]
    # the start: least squares on atanh of the (clipped) targets, ridge as above
    design = np.hstack([xs, np.ones((len(xs), 1))])
    start = _ridge(design, np.arctanh(np.clip(unit, -0.9, 0.9)), ridge)
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)  # (in_dim + 1, out_dim)
    xt, ut = torch.from_numpy(design), torch.from_numpy(unit)
    optimizer = torch.optim.LBFGS([theta], max_iter=200, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = 0.25 * ((torch.tanh(xt @ theta) - ut) ** 2).mean() + ridge * (theta[:-1] ** 2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    weights = theta.detach().numpy()
    w = (weights[:-1] / scale[:, None]).T  # (out_dim, in_dim) over the raw inputs
    b = weights[-1] - w @ mean
    return np.concatenate([w.ravel(), b])


def _ridge(design: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    """Least squares with ``ridge`` times the rows' count on every weight but the last row's (the intercept)."""
    penalty = ridge * len(design) * np.diag(np.r_[np.ones(design.shape[1] - 1), 0.0])
    return np.linalg.solve(design.T @ design + penalty, design.T @ targets)


def dagger_inputs(model: WorldModel, *, memory: bool = True, previous_action: bool = False) -> LinearController:
    """C over ``z``, then ``h`` (``memory``), then the action taken at the step before (``previous_action``;
    zeros at the first step). ``[z, a_{t-1}]`` is the classic test of a copycat: an imitator that reads its
    own last action can fit a smooth teacher by repeating it, and then drives by repeating itself."""
    width = model.latent_dim + (model.mdn_config.hidden if memory else 0)
    if previous_action:
        space = model.action_space
        if not isinstance(space, gym.spaces.Box):
            raise UsageError(f"previous_action needs Box actions; this world model's are {space}")
        width += int(np.prod(space.shape))
    return LinearController(width, model.action_space)


@torch.no_grad()
def _drive(model: WorldModel, env_id: str, teacher: Teacher | None, controller: LinearController,
           params: np.ndarray | None, beta: float, tracks: list[int], max_steps: int, seed: int, *,
           memory: bool, previous_action: bool, measure: Measure | None = None) -> _Episodes:
    """Episodes stepped together, every step labelled by the teacher (and measured by ``measure``);
    without a teacher, C drives alone (``beta`` 0) and nothing is labelled."""
    envs = [make_env(env_id) for _ in tracks]
    vae = fast_encoder(model)
    hidden = model.mdn_config.hidden
    h, c = torch.zeros(1, len(envs), hidden), torch.zeros(1, len(envs), hidden)
    last = np.zeros((len(envs), controller.out_dim), np.float32)
    rngs = [np.random.default_rng([seed, track]) for track in tracks]
    obs = np.stack([env.reset(seed=track)[0] for env, track in zip(envs, tracks, strict=True)])
    running = np.ones(len(envs), bool)
    returns = np.zeros(len(envs))
    inputs, labels, measures, owners = [], [], [], []
    try:
        for _ in range(max_steps):
            rows = np.flatnonzero(running)
            if not len(rows):
                break
            idx = torch.as_tensor(rows)
            x = torch.from_numpy(obs[rows]).permute(0, 3, 1, 2).float() / 255.0
            mu, logvar = vae.encode(x)
            eps = torch.from_numpy(np.stack([rngs[i].standard_normal(model.latent_dim) for i in rows])).float()
            z = mu + torch.exp(0.5 * logvar) * eps
            parts = [z.numpy()] + ([h[0, idx].numpy()] if memory else []) + ([last[rows]] if previous_action else [])
            x_in = np.concatenate(parts, 1).astype(np.float64)
            if teacher is None:
                actions = controller.act(np.broadcast_to(params, (len(rows), len(params))), x_in)
            else:
                taught = np.stack([teacher(envs[i]) for i in rows]).astype(np.float32)
                inputs.append(x_in)
                labels.append(taught)
                owners.append(rows)
                if measure is not None:
                    measures.append(np.stack([measure(envs[i]) for i in rows]))
                actions = taught.copy()
                if params is not None:
                    own = controller.act(np.broadcast_to(params, (len(rows), len(params))), x_in)
                    mine = np.array([rngs[i].random() >= beta for i in rows])
                    actions[mine] = own[mine]
            if memory:
                state = (h[:, idx].contiguous(), c[:, idx].contiguous())
                _, (h[:, idx], c[:, idx]) = model.mdn.memory(z[:, None], torch.from_numpy(actions)[:, None], state)
            last[rows] = actions
            for k, i in enumerate(rows):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[k])
                returns[i] += float(reward)
                running[i] = not (terminated or truncated)
    finally:
        for env in envs:
            env.close()
    if teacher is None:
        return _Episodes(np.zeros((0, controller.in_dim)), np.zeros((0, controller.out_dim)), None,
                         np.zeros(0, int), returns)
    return _Episodes(np.concatenate(inputs), np.concatenate(labels),
                     np.concatenate(measures) if measure is not None else None, np.concatenate(owners), returns)


def drive(model: WorldModel, env_id: str, params: np.ndarray, tracks: list[int], *, memory: bool = True,
          previous_action: bool = False, max_steps: int = 1000, seed: int = 0) -> np.ndarray:
    """The return of C (inputs as :func:`dagger_inputs`) on each of ``tracks``, all stepped together. V's
    noise is drawn per track from ``(seed, track)``; for C over ``[z, h]`` or ``z``,
    :func:`gailkit.worldmodels.real.evaluate_controller` is the benchmark's evaluation."""
    model.check_env(env_id)
    controller = dagger_inputs(model, memory=memory, previous_action=previous_action)
    params = np.asarray(params, np.float64)
    if params.shape != (controller.n_params,):
        raise UsageError(f"C has {params.shape} parameters; its inputs take {controller.n_params}")
    return _drive(model, env_id, None, controller, params, 0.0, list(tracks), max_steps, seed,
                  memory=memory, previous_action=previous_action).returns


def dagger_controller(model: WorldModel, env_id: str, teacher: Teacher, *, memory: bool = True,
                      previous_action: bool = False, config: DaggerConfig = DaggerConfig(),
                      progress: bool = True) -> DaggerResult:
    """C over ``[z, h]`` (``memory=True``) or ``z``, and the action before (``previous_action``), fitted to
    ``teacher`` by DAgger.

    Returns the last fit's parameters, its inputs' average (``[z, h]``'s ``h`` part is what M's ablation
    holds ``h`` at) and one record per iteration: the tracks' mean return as driven
    (the teacher and C mixed), the steps labelled so far, and C's mean squared error to the labels
    (actions scaled to ``[-1, 1]``) on this iteration's frames before and after refitting.
    """
    model.check_env(env_id)
    controller = dagger_inputs(model, memory=memory, previous_action=previous_action)
    span = (controller.action_space.high - controller.action_space.low).astype(np.float64)
    xs, ys, history, params = [], [], [], None
    for it in progress_bar(range(config.iterations), desc="DAgger", enabled=progress):
        beta = 1.0 if params is None else config.beta_decay ** it
        first = config.first_track + 10_000 * config.seed + it * config.episodes
        run = _drive(model, env_id, teacher, controller, params, beta, list(range(first, first + config.episodes)),
                     config.max_steps, config.seed, memory=memory, previous_action=previous_action)
        x, y, returns = run.inputs, run.labels, run.returns

        def error(p: np.ndarray, x=x, y=y) -> float:
            return float((((controller.act(p[None].repeat(len(x), 0), x) - y) * 2 / span) ** 2).mean())

        before = None if params is None else error(params)
        xs.append(x)
        ys.append(y)
        params = fit_linear_controller(controller, np.concatenate(xs), np.concatenate(ys), ridge=config.ridge)
        history.append({"iteration": it, "teacher_share": beta, "return_as_driven": float(returns.mean()),
                        "labelled_steps": int(sum(len(a) for a in xs)), "error_before_fit": before,
                        "error_after_fit": error(params)})
    return DaggerResult(params, history, np.concatenate(xs).mean(0))


def teacher_returns(env_id: str, teacher: Teacher, tracks: list[int]) -> np.ndarray:
    """The teacher's own return on each track (reset seed), one episode each."""
    returns = np.zeros(len(tracks))
    env = make_env(env_id)
    try:
        for k, track in enumerate(tracks):
            env.reset(seed=track)
            while True:
                _, reward, terminated, truncated, _ = env.step(teacher(env))
                returns[k] += float(reward)
                if terminated or truncated:
                    break
    finally:
        env.close()
    return returns


@dataclasses.dataclass
class TeacherFrames:
    """The teacher's own driving as C would see it, one row per step: V's ``z`` (noise drawn as C's), M's
    ``h`` before the step, the action before (zeros at an episode's first step), the teacher's action,
    ``measure`` of the env at that step, and each row's episode (its index in the tracks)."""

    z: np.ndarray
    h: np.ndarray
    previous_action: np.ndarray
    action: np.ndarray
    measures: np.ndarray
    episode: np.ndarray


def teacher_frames(model: WorldModel, env_id: str, teacher: Teacher, measure: Measure, tracks: list[int], *,
                   max_steps: int = 1000, seed: int = 0) -> TeacherFrames:
    """Episodes driven by ``teacher`` alone (DAgger's iteration 0) on ``tracks``, stepped together: what M's
    memory and V's code hold along them, beside what the simulator says (``measure``), for linear probes
    (:func:`linear_probe`) of what ``h`` knows that ``z`` does not."""
    model.check_env(env_id)
    controller = dagger_inputs(model, memory=True, previous_action=True)
    run = _drive(model, env_id, teacher, controller, None, 1.0, list(tracks), max_steps, seed, memory=True,
                 previous_action=True, measure=measure)
    zd, hd = model.latent_dim, model.mdn_config.hidden
    return TeacherFrames(run.inputs[:, :zd], run.inputs[:, zd:zd + hd], run.inputs[:, zd + hd:], run.labels,
                         run.measures, run.episode)


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
                 ridge: float = 1e-2) -> np.ndarray:
    """Held-out R^2 of ridge regression from ``x`` to each column of ``y``: inputs standardised on the
    training rows, an unpenalised intercept, penalty ``ridge`` times the training rows' count
    (scikit-learn's ``Ridge(alpha=ridge * n)`` on the standardised inputs). 1 is a perfect linear read-out,
    0 or below no better than the test rows' own mean."""
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    y_train, y_test = np.asarray(y_train, np.float64), np.asarray(y_test, np.float64)
    if x_train.ndim != 2 or x_test.shape[1:] != x_train.shape[1:] or len(y_train) != len(x_train) \
            or len(y_test) != len(x_test):
        raise UsageError(f"probe inputs {x_train.shape}/{x_test.shape} and targets {y_train.shape}/{y_test.shape} "
                         "do not pair up: give (rows, features) inputs and one target row per input row")
    mean, scale = x_train.mean(0), x_train.std(0) + 1e-8
    w = _ridge(np.hstack([(x_train - mean) / scale, np.ones((len(x_train), 1))]), y_train, ridge)
    predicted = np.hstack([(x_test - mean) / scale, np.ones((len(x_test), 1))]) @ w
    y2 = y_test.reshape(len(y_test), -1)
    return 1.0 - ((predicted.reshape(y2.shape) - y2) ** 2).sum(0) / ((y2 - y2.mean(0)) ** 2).sum(0)
