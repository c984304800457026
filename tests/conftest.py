import os
import tempfile

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
# Tests leave the checkout as they found it. Numba caches compiled kernels beside their source
# (gailkit/buffers/__pycache__) and Hypothesis keeps its examples and constants in ./.hypothesis:
# both go to a directory that lives as long as this test process. The pytest-xdist workers inherit
# the main process's environment, so they share its Numba cache: a kernel one worker compiled, the
# other loads (compiling the SAC and buffer kernels takes ~17 s a process).
_SCRATCH = tempfile.TemporaryDirectory(prefix="gailkit-tests-")
os.environ.setdefault("GAILKIT_TESTS_NUMBA_CACHE", os.path.join(_SCRATCH.name, "numba"))
os.environ["NUMBA_CACHE_DIR"] = os.environ["GAILKIT_TESTS_NUMBA_CACHE"]

import torch
from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(os.path.join(_SCRATCH.name, "hypothesis"))

# Small MLPs run fastest on one thread, and two pytest-xdist workers on a 2-core machine
# would otherwise oversubscribe the cores (OpenMP spin-waits make that 5-10x slower).
torch.set_num_threads(1)

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _write_only_under_tmp(tmp_path_factory):
    """Run every test from an empty directory of pytest's tmp, with gailkit's cache there too.

    Files that libraries drop into the working directory (MuJoCo's MUJOCO_LOG.TXT) or into the
    user's cache (parsed chorales under ~/.cache/gailkit) then stay out of the checkout and home, and the
    folders SB3's own ``learn()`` makes out of /tmp.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("cwd"))
        mp.setenv("GAILKIT_CACHE", str(tmp_path_factory.mktemp("gailkit_cache")))
        # SB3's learn() without a tensorboard_log makes an empty folder per call in tempfile's dir
        mp.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
        yield


def pendulum_controller(obs: np.ndarray) -> np.ndarray:
    """A damping Pendulum controller: torque against the angular velocity, within the torque limit."""
    return np.clip([-2.0 * obs[2]], -2, 2).astype(np.float32)


@pytest.fixture
def pendulum_demos(tmp_path):
    """``make(episodes, policy=pendulum_controller)``: a Pendulum-v1 demonstration file in tmp_path."""
    import gymnasium as gym

    from gailkit.agents.experts import rollout_episodes
    from gailkit.data import save_demos

    def make(episodes: int, policy=pendulum_controller):
        env = gym.make("Pendulum-v1")
        trajs = rollout_episodes(policy, "Pendulum-v1", episodes, seed=0)
        return save_demos(tmp_path / "pendulum.npz", trajs, env_id="Pendulum-v1",
                          observation_space=env.observation_space, action_space=env.action_space)

    return make


def cartpole_controller(obs: np.ndarray) -> int:
    """A hand-written CartPole expert (return 500): push towards where the pole is falling."""
    return int(obs[2] + 0.5 * obs[3] > 0)


@pytest.fixture(scope="session")
def cartpole_demos(tmp_path_factory):
    """10 expert CartPole-v1 episodes with an expert card, written by save_demos."""
    import gymnasium as gym

    from gailkit.agents.experts import random_returns, rollout_episodes
    from gailkit.data import save_demos

    trajs = rollout_episodes(cartpole_controller, "CartPole-v1", 10, seed=0)
    env = gym.make("CartPole-v1")
    card = {"env_id": "CartPole-v1", "return_mean": float(np.mean([t.episode_return for t in trajs])),
            "random_return_mean": float(random_returns("CartPole-v1", 20, seed=0).mean())}
    return save_demos(tmp_path_factory.mktemp("demos") / "cartpole.npz", trajs, env_id="CartPole-v1",
                      observation_space=env.observation_space, action_space=env.action_space,
                      metadata={"expert_card": card})
