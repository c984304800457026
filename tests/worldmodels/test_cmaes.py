"""CMA-ES: converges on standard test functions and resumes exactly from a checkpoint."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from gailkit.worldmodels.cmaes import CMAES


def run(es, f, generations):
    for _ in range(generations):
        xs = es.ask()
        es.tell(np.array([f(x) for x in xs]))
    return es


def test_sphere_and_rosenbrock():
    sphere = run(CMAES(np.full(10, 3.0), 1.0, seed=0), lambda x: float(x @ x), 250)
    # measured with seeds 0 / 1 / 2: sphere 2.5e-15 / 3.6e-16 / 2.3e-16, Rosenbrock 1e-29 / 2e-29 / 7e-30
    assert sphere.best_f < 1e-10, f"sphere: best f {sphere.best_f:.2e}"
    rosen = run(CMAES(np.zeros(5), 0.5, seed=0),
                lambda x: float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)), 600)
    assert rosen.best_f < 1e-6 and np.allclose(rosen.best_x, 1.0, atol=1e-2), f"Rosenbrock: {rosen.best_f:.2e}"


def test_ill_conditioned_ellipsoid_learns_the_covariance():
    scales = 10.0 ** np.linspace(0, 3, 6)
    es = run(CMAES(np.ones(6), 1.0, seed=1), lambda x: float(np.sum((scales * x) ** 2)), 400)
    assert es.best_f < 1e-8, f"best f {es.best_f:.2e}"  # seeds 1 / 2 / 3: 6e-16 / 4e-16 / 8e-18


def test_checkpoint_resumes_identically(tmp_path):
    f = lambda x: float(np.sum((x - 2.0) ** 2))  # noqa: E731
    straight = run(CMAES(np.zeros(4), 1.0, seed=3), f, 30)
    half = run(CMAES(np.zeros(4), 1.0, seed=3), f, 15)
    half.save(tmp_path)
    resumed = run(CMAES.load(tmp_path), f, 15)
    np.testing.assert_array_equal(resumed.mean, straight.mean)
    assert resumed.sigma == straight.sigma and resumed.generation == 30


def test_tell_checks_its_input():
    es = CMAES(np.zeros(3), 1.0)
    with pytest.raises(RuntimeError, match="without a preceding ask"):
        es.tell(np.zeros(es.lam))
    es.ask()
    with pytest.raises(ValueError, match="finite fitness"):
        es.tell(np.full(es.lam, np.nan))


def test_controller_improves_its_dream_return(tmp_path):
    import gymnasium as gym
    import torch

    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, dream_fitness, train_controller_in_dream
    from gailkit.worldmodels.linear_controller import controller_for

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    with torch.no_grad():  # a world whose reward follows the action fed to M: one of the two actions pays
        model.mdn.reward_head.weight.zero_()
        model.mdn.reward_head.bias.zero_()
        model.mdn.lstm.weight_ih_l0[:, 4:].mul_(10.0)
        model.mdn.reward_head.weight.copy_(torch.randn(1, 8))
        model.mdn.done_head.bias.fill_(-20.0)  # dreams never end early
    cfg = DreamTrainingConfig(generations=12, popsize=10, rollouts=2, max_steps=30, seed=0)
    _, history = train_controller_in_dream(model, cfg, tmp_path, progress=False)
    c = controller_for(model)
    always = np.zeros((2, c.n_params))
    always[0, -2] = always[1, -1] = 1.0  # bias only: always action 0 / always action 1
    best_constant = dream_fitness(model, c, always, rollouts=8, max_steps=30, tau=cfg.tau, seed=99).max()
    first, last = history[0]["mean"], history[-1]["mean"]
    closed = (last - first) / (best_constant - first)  # share of the way from random controllers to the best action
    # measured with seeds 0..5 (world model and CMA-ES): 1.06 / 0.99 / 1.01 / 1.00 / 0.99 / 0.99
    assert closed > 0.7, f"dream return {first:.2f} -> {last:.2f}, best constant action {best_constant:.2f}"
    resumed_cfg = dataclasses.replace(cfg, generations=14)
    _, more = train_controller_in_dream(model, resumed_cfg, tmp_path, resume=True, progress=False)
    assert [h["generation"] for h in more] == list(range(1, 15))
    assert all(h["wall_s"] > 0 for h in more)  # each generation timed, resumed or not
    assert (tmp_path / "curve.png").stat().st_size > 0  # the candidates' mean and best returns, per generation
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 2  # TensorBoard: the run, then its resume


def test_controller_solution_is_the_best_candidate_or_the_cmaes_mean(tmp_path):
    import gymnasium as gym
    import pytest
    import torch

    from gailkit.errors import UsageError
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.cmaes import CMAES
    from gailkit.worldmodels.controller import DreamTrainingConfig, load_solution, train_controller_in_dream

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    cfg = DreamTrainingConfig(generations=3, popsize=6, rollouts=2, max_steps=10, seed=0)
    best, _ = train_controller_in_dream(model, cfg, tmp_path, progress=False)
    es = CMAES.load(tmp_path)
    assert not np.allclose(es.mean, es.best_x)  # else this test could not tell them apart
    np.testing.assert_array_equal(best, es.best_x)
    np.testing.assert_array_equal(load_solution(tmp_path), es.best_x)  # the run's own choice
    np.testing.assert_array_equal(load_solution(tmp_path, "mean"), es.mean)
    # the solution may change on resume (it does not touch the search), and the run records it
    mean, history = train_controller_in_dream(model, dataclasses.replace(cfg, solution="mean"), tmp_path,
                                              resume=True, progress=False)
    np.testing.assert_array_equal(mean, es.mean)
    assert len(history) == 3
    np.testing.assert_array_equal(load_solution(tmp_path), es.mean)
    with pytest.raises(UsageError, match="unknown controller solution 'median'; choose one of best, mean"):
        DreamTrainingConfig(solution="median")
    with pytest.raises(UsageError, match="unknown controller solution"):
        load_solution(tmp_path, "median")


def test_widened_search_keeps_step_size_and_covariance_and_goes_on():
    scales = 10.0 ** np.linspace(0, 2, 4)
    narrow = run(CMAES(np.ones(4), 1.0, seed=0), lambda x: float(np.sum((scales * (x - 1)) ** 2)), 80)
    index = np.array([0, 2, 3, 5])  # the old coordinates' places among 6; 1 and 4 are new
    wide = narrow.widened(6, index, popsize=narrow.lam, seed=1)
    np.testing.assert_array_equal(wide.mean[index], narrow.mean)
    assert wide.mean[[1, 4]].tolist() == [0.0, 0.0] and wide.sigma == narrow.sigma and wide.n == 6
    np.testing.assert_array_equal(wide.C[np.ix_(index, index)], narrow.C)
    np.testing.assert_array_equal(wide.C[[1, 4]][:, [1, 4]], np.eye(2) * np.diag(narrow.C).mean())
    assert not wide.C[np.ix_([1, 4], index)].any()
    # what is carried over was learned: the cheap axis stretched, C[0,0] / C[3,3] (seeds 0 / 1 / 2: 874 / 3810 / 1068)
    assert narrow.C[0, 0] > 100 * narrow.C[3, 3], np.diag(narrow.C)
    all_scales = np.array([scales[0], 1.0, scales[1], scales[2], 1.0, scales[3]])
    wide = run(wide, lambda x: float(np.sum((all_scales * (x - 1)) ** 2)), 300)
    assert wide.best_f < 1e-8, f"best f {wide.best_f:.2e}"  # seeds 0 / 1 / 2: 2e-24 / 1e-26 / 4e-25
    with pytest.raises(ValueError, match="distinct positions"):
        narrow.widened(6, np.array([0, 0, 1, 2]))
    with pytest.raises(ValueError, match="distinct positions"):
        narrow.widened(4, np.array([0, 2, 3, 5]))


def test_a_v_only_search_continues_as_v_m_c_with_its_step_size_and_covariance(tmp_path):
    import gymnasium as gym
    import torch

    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream
    from gailkit.worldmodels.linear_controller import controller_for, memory_index

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    cfg = DreamTrainingConfig(generations=4, popsize=6, rollouts=2, max_steps=10, seed=0, memory=False)
    train_controller_in_dream(model, cfg, tmp_path / "v_only", progress=False)
    v_only = CMAES.load(tmp_path / "v_only")
    full = controller_for(model).n_params
    start = v_only.widened(full, memory_index(model), popsize=6, seed=1)
    vmc = dataclasses.replace(cfg, memory=True, seed=1, sigma0=start.sigma, generations=2)
    with pytest.raises(ValueError, match="popsize 6, sigma"):  # the config must describe the search it continues
        train_controller_in_dream(model, dataclasses.replace(vmc, sigma0=0.5), tmp_path / "bad", x0=start,
                                  progress=False)
    train_controller_in_dream(model, vmc, tmp_path / "vmc", x0=start, progress=False)
    es = CMAES.load(tmp_path / "vmc")
    assert es.n == full and es.generation == 2
    again = v_only.widened(full, memory_index(model), popsize=6, seed=1)  # the same start gives the same run
    train_controller_in_dream(model, vmc, tmp_path / "vmc2", x0=again, progress=False)
    np.testing.assert_array_equal(CMAES.load(tmp_path / "vmc2").mean, es.mean)


def test_a_search_over_centred_inputs_evaluates_and_returns_raw_controllers(tmp_path, monkeypatch):
    import gymnasium as gym
    import torch

    import gailkit.worldmodels.controller as controller_module
    from gailkit.errors import UsageError
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, load_solution, train_controller_in_dream
    from gailkit.worldmodels.linear_controller import LinearController, controller_for, shift_inputs

    small = LinearController(5, gym.spaces.Box(-1.0, 1.0, (3,)))
    rng = np.random.default_rng(0)
    params, x, offset = rng.normal(size=(4, small.n_params)), rng.normal(size=(4, 5)), rng.normal(size=5)
    np.testing.assert_allclose(small.act(shift_inputs(params, offset), x), small.act(params, x - offset), atol=1e-6)
    np.testing.assert_allclose(shift_inputs(shift_inputs(params, offset), -offset), params, atol=1e-12)
    with pytest.raises(UsageError, match="do not fit an input offset of 4 values"):
        shift_inputs(params, offset[:4])

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    n = controller_for(model).n_params
    offset = np.concatenate([np.zeros(4), rng.normal(size=8)])  # [z, h - h_mean]
    cfg = DreamTrainingConfig(generations=2, popsize=6, rollouts=2, max_steps=10, seed=0, solution="mean",
                              input_offset=offset.tolist())
    x0 = rng.normal(size=n)  # a controller over the raw inputs
    seen = []
    fitness = controller_module.dream_fitness
    monkeypatch.setattr(controller_module, "dream_fitness",
                        lambda m, c, candidates, **kw: seen.append(candidates) or fitness(m, c, candidates, **kw))
    best, _ = train_controller_in_dream(model, cfg, tmp_path, x0=x0, progress=False)
    # the first generation, drawn again: CMA-ES starts from x0 over the shifted inputs and draws there;
    # the controllers evaluated are those candidates over the raw inputs
    replay = CMAES(shift_inputs(x0, -offset), cfg.sigma0, popsize=6, seed=0)
    np.testing.assert_allclose(seen[0], shift_inputs(replay.ask(), offset), atol=1e-12)
    es = CMAES.load(tmp_path)
    np.testing.assert_allclose(best, shift_inputs(es.mean, offset), atol=1e-12)
    np.testing.assert_array_equal(load_solution(tmp_path), best)  # loaded over the raw inputs too
    assert not np.allclose(best, es.mean)  # (which differs from the search's own)


def test_a_search_over_mapped_inputs_evaluates_raw_controllers_and_starts_from_the_nearest(tmp_path, monkeypatch):
    """input_map: CMA-ES searches a controller over u = T (x - offset), fewer inputs than x; every controller
    evaluated or returned acts on x exactly as the searched one acts on u."""
    import gymnasium as gym
    import torch

    import gailkit.worldmodels.controller as controller_module
    from gailkit.nn.checkpoint import CheckpointError
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, load_solution, train_controller_in_dream
    from gailkit.worldmodels.linear_controller import LinearController, controller_for, map_inputs, with_memory

    rng = np.random.default_rng(1)
    T = np.linalg.qr(rng.normal(size=(6, 3)))[0].T  # 3 orthonormal rows over 6 inputs
    offset = rng.normal(size=6)
    cfg = DreamTrainingConfig(input_offset=offset.tolist(), input_map=T.tolist())
    over_u, over_x = LinearController(3, gym.spaces.Box(-1.0, 1.0, (2,))), LinearController(6, gym.spaces.Box(
        -1.0, 1.0, (2,)))
    theta, x = rng.normal(size=(4, over_u.n_params)), rng.normal(size=(4, 6))
    assert cfg.search_size(over_x.n_params) == over_u.n_params == 8
    np.testing.assert_allclose(over_x.act(cfg.to_raw(theta), x), over_u.act(theta, (x - offset) @ T.T), atol=1e-6)
    np.testing.assert_allclose(cfg.to_search(cfg.to_raw(theta)), theta, atol=1e-12)  # inverse on the map's span
    np.testing.assert_allclose(map_inputs(map_inputs(theta, T), T.T), theta, atol=1e-12)
    with pytest.raises(ValueError, match="orthonormal"):
        DreamTrainingConfig(input_offset=offset.tolist(), input_map=(2 * T).tolist())
    with pytest.raises(ValueError, match="matrix over the 5 inputs"):
        DreamTrainingConfig(input_offset=offset[:5].tolist(), input_map=T.tolist())

    torch.manual_seed(0)  # the search: z's 4 inputs as they are, h's 8 units through 2 directions
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    T = np.zeros((6, 12))
    T[:4, :4], T[4:, 4:] = np.eye(4), np.linalg.qr(rng.normal(size=(8, 2)))[0].T
    offset = np.concatenate([np.zeros(4), rng.normal(size=8)])
    cfg = DreamTrainingConfig(generations=2, popsize=6, rollouts=2, max_steps=10, seed=0, solution="mean",
                              input_offset=offset.tolist(), input_map=T.tolist())
    vonly = rng.normal(size=controller_for(model, memory=False).n_params)
    x0 = with_memory(model, vonly)  # V only's controller, h's weights 0: the search starts from it exactly
    seen = []
    fitness = controller_module.dream_fitness
    monkeypatch.setattr(controller_module, "dream_fitness",
                        lambda m, c, candidates, **kw: seen.append(candidates) or fitness(m, c, candidates, **kw))
    best, _ = train_controller_in_dream(model, cfg, tmp_path, x0=x0, progress=False)
    es = CMAES.load(tmp_path)
    assert es.n == 2 * (6 + 1) and seen[0].shape == (6, controller_for(model).n_params)
    replay = CMAES(cfg.to_search(x0), cfg.sigma0, popsize=6, seed=0)
    np.testing.assert_allclose(cfg.to_raw(replay.mean), x0, atol=1e-12)
    np.testing.assert_allclose(seen[0], cfg.to_raw(replay.ask()), atol=1e-12)
    np.testing.assert_allclose(best, cfg.to_raw(es.mean), atol=1e-12)
    np.testing.assert_array_equal(load_solution(tmp_path), best)
    T[4:] *= -1  # another map: refused on resume, named in one line, not printed whole
    with pytest.raises(CheckpointError, match=r"other options \(input_map: \[\[1.0, ") as refused:
        train_controller_in_dream(model, dataclasses.replace(cfg, generations=3, input_map=T.tolist()), tmp_path,
                                  resume=True, progress=False)
    assert len(str(refused.value)) < 400, str(refused.value)


def test_a_search_over_some_parameters_holds_the_others(tmp_path, monkeypatch):
    import gymnasium as gym
    import torch

    import gailkit.worldmodels.controller as controller_module
    from gailkit.nn.checkpoint import CheckpointError
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, load_solution, train_controller_in_dream
    from gailkit.worldmodels.linear_controller import controller_for, memory_index

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    n = controller_for(model).n_params
    rng = np.random.default_rng(0)
    held = rng.normal(size=n)  # e.g. V only's controller, widened
    z_weights = memory_index(model)[:-2]  # the biases are searched with h's weights
    searched = np.setdiff1d(np.arange(n), z_weights)
    cfg = DreamTrainingConfig(generations=2, popsize=6, rollouts=2, max_steps=10, seed=0, solution="mean",
                              search_index=searched.tolist(), held=held.tolist())
    seen = []
    fitness = controller_module.dream_fitness
    monkeypatch.setattr(controller_module, "dream_fitness",
                        lambda m, c, candidates, **kw: seen.append(candidates) or fitness(m, c, candidates, **kw))
    best, _ = train_controller_in_dream(model, cfg, tmp_path / "c", x0=held, progress=False)
    # CMA-ES searches len(searched) numbers from held's values there; every controller evaluated is a full
    # one, with held's values everywhere else
    es = CMAES.load(tmp_path / "c")
    assert es.n == len(searched) == n - len(z_weights)
    replay = CMAES(held[searched], cfg.sigma0, popsize=6, seed=0).ask()
    assert seen[0].shape == (6, n)
    np.testing.assert_array_equal(seen[0][:, searched], replay)
    for candidates in seen:
        np.testing.assert_array_equal(candidates[:, z_weights], np.broadcast_to(held[z_weights], (6, len(z_weights))))
    np.testing.assert_array_equal(best[searched], es.mean)
    np.testing.assert_array_equal(best[z_weights], held[z_weights])
    np.testing.assert_array_equal(load_solution(tmp_path / "c"), best)
    assert not np.array_equal(best[searched], held[searched])
    # resuming with more generations goes on; with other held values it is refused
    train_controller_in_dream(model, dataclasses.replace(cfg, generations=3), tmp_path / "c", resume=True,
                              progress=False)
    assert CMAES.load(tmp_path / "c").generation == 3
    with pytest.raises(CheckpointError, match="held"):
        train_controller_in_dream(model, dataclasses.replace(cfg, generations=4, held=(held + 1).tolist()),
                                  tmp_path / "c", resume=True, progress=False)


def test_search_index_is_checked():
    from gailkit.worldmodels.controller import DreamTrainingConfig

    with pytest.raises(ValueError, match="go together"):
        DreamTrainingConfig(search_index=[0, 1])
    with pytest.raises(ValueError, match="distinct positions among the 3"):
        DreamTrainingConfig(search_index=[0, 0], held=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="distinct positions among the 3"):
        DreamTrainingConfig(search_index=[1, 3], held=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="do not combine"):
        DreamTrainingConfig(search_index=[1], held=[0.0, 1.0], input_offset=[0.0])
    with pytest.raises(ValueError, match="held has 3 parameters; the controller has 5"):
        DreamTrainingConfig(search_index=[1], held=[0.0, 1.0, 2.0]).search_size(5)


def test_a_controller_search_resumed_after_a_stop_equals_an_uninterrupted_one(tmp_path):
    import gymnasium as gym
    import torch

    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    cfg = DreamTrainingConfig(generations=4, popsize=6, rollouts=2, max_steps=10, seed=2)
    best, history = train_controller_in_dream(model, cfg, tmp_path / "straight", progress=False)
    train_controller_in_dream(model, dataclasses.replace(cfg, generations=2), tmp_path / "stopped", progress=False)
    again, resumed = train_controller_in_dream(model, cfg, tmp_path / "stopped", resume=True, progress=False)
    np.testing.assert_array_equal(again, best)
    assert [(h["mean"], h["best"]) for h in resumed] == [(h["mean"], h["best"]) for h in history]
    assert len({h["mean"] for h in history}) > 1  # the generations' returns differ: the comparison could fail


class _Stop(Exception):
    """The process stopping (kill -9) at a write."""


@pytest.mark.parametrize("stop_at", [0, 1, 2])  # before each of a generation's three writes
def test_a_search_stopped_at_any_write_of_its_save_resumes_as_an_uninterrupted_one(tmp_path, monkeypatch, stop_at):
    """Each generation writes its history, the arrays and cmaes.json naming them; stopped before any one of
    them, the search resumes from a whole state and its generations and history are an uninterrupted one's."""
    import gymnasium as gym
    import torch

    import gailkit.files
    import gailkit.nn.checkpoint
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream

    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    cfg = DreamTrainingConfig(generations=4, popsize=6, rollouts=2, max_steps=10, seed=2)
    best, history = train_controller_in_dream(model, cfg, tmp_path / "straight", progress=False)

    stopped = tmp_path / "stopped"
    writes = []
    atomic_write = gailkit.files.atomic_write

    def write_then_stop(path, write):
        if Path(path).parent == stopped:  # the search's own files, not TensorBoard's
            writes.append(Path(path).name)
            if len(writes) == 3 * 2 + stop_at:  # two generations saved, the third's save cut here
                raise _Stop
        return atomic_write(path, write)

    monkeypatch.setattr(gailkit.files, "atomic_write", write_then_stop)
    monkeypatch.setattr(gailkit.nn.checkpoint, "atomic_write", write_then_stop)
    with pytest.raises(_Stop):
        train_controller_in_dream(model, cfg, stopped, progress=False)
    monkeypatch.undo()
    assert writes[:3] == ["history.json", "cmaes_00001.safetensors", "cmaes.json"], writes
    again, resumed = train_controller_in_dream(model, cfg, stopped, resume=True, progress=False)
    np.testing.assert_array_equal(again, best)
    assert [(h["generation"], h["mean"], h["best"]) for h in resumed] == \
        [(h["generation"], h["mean"], h["best"]) for h in history]
    assert sorted(p.name for p in stopped.glob("cmaes*")) == ["cmaes.json", "cmaes_00004.safetensors"]


def test_a_search_saved_before_cmaes_json_named_its_arrays_resumes(tmp_path):
    """cmaes.safetensors without a name in cmaes.json: how searches were saved before; they load, and their
    next save replaces the old file."""
    import json

    f = lambda x: float(np.sum((x - 2.0) ** 2))  # noqa: E731
    es = run(CMAES(np.zeros(4), 1.0, seed=3), f, 5)
    es.save(tmp_path)
    meta = json.loads((tmp_path / "cmaes.json").read_text())
    (tmp_path / meta.pop("state")).rename(tmp_path / "cmaes.safetensors")
    (tmp_path / "cmaes.json").write_text(json.dumps(meta))
    old = CMAES.load(tmp_path)
    for k in ("mean", "C", "pc", "ps", "best_x"):
        np.testing.assert_array_equal(getattr(old, k), getattr(es, k))
    assert (old.generation, old.sigma) == (5, es.sigma)
    run(old, f, 1).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmaes.json", "cmaes_00006.safetensors"]
