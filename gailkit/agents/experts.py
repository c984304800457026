"""Expert policies: tuned SB3 presets, training, evaluation, pickle-free save/load, demos.

An expert directory holds::

    config.json          env id, algorithm, hyperparameters, versions (enough to rebuild it)
    policy.safetensors   the SB3 policy's weights
    card.json            evaluation card: mean/std return, random baseline, steps, wall time
    tb/                  TensorBoard logs of the training run

Hyperparameters follow the RL Baselines3 Zoo, trimmed to what runs on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.utils import LinearSchedule

from gailkit.agents.configs import CollectConfig, ExpertConfig
from gailkit.agents.run import claim_run_dir
from gailkit.buffers import NumbaReplayBuffer, NumbaRolloutBuffer
from gailkit.configs import config_from_dict
from gailkit.data.demos import Demonstrations, check_compatible, load_demos, save_demos
from gailkit.data.types import Trajectory
from gailkit.envs.make import check_env_id, make_env
from gailkit.errors import UsageError
from gailkit.evaluation import EVAL_SEED
from gailkit.nn.checkpoint import CheckpointError, load_weights, read_json, save_tensors, write_json
from gailkit.progress import show_progress
from gailkit.versions import versions

__all__ = [
    "PRESETS",
    "ExpertPreset",
    "ExpertConfig",
    "Expert",
    "train_expert",
    "load_expert",
    "evaluate_policy",
    "rollout_episodes",
    "random_returns",
    "CollectConfig",
    "collect_demos",
]

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "dqn": DQN}
ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


@dataclasses.dataclass(frozen=True)
class ExpertPreset:
    """One row of the preset table. ``hyperparams`` go to the SB3 constructor as they are,
    except ``"lin_X"`` strings (a learning rate or clip range decaying linearly from X to 0)."""

    algo: str
    steps: int
    n_envs: int
    hyperparams: dict[str, Any]
    net_arch: Any = None
    activation: str | None = None


# fmt: off
PRESETS: dict[str, ExpertPreset] = {
    #                          algo   steps      envs  hyperparameters
    "CartPole-v1":    ExpertPreset("ppo", 100_000,   8, dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate="lin_0.001", clip_range="lin_0.2")),
    "Acrobot-v1":     ExpertPreset("ppo", 200_000,  16, dict(n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0)),
    "MountainCar-v0": ExpertPreset("dqn", 120_000,   1, dict(learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000, gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8, exploration_fraction=0.2, exploration_final_eps=0.07), net_arch=[256, 256]),
    "Pendulum-v1":    ExpertPreset("sac",  20_000,   1, dict(learning_rate=1e-3)),
    "LunarLander-v3": ExpertPreset("ppo", 1_000_000, 16, dict(n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4, ent_coef=0.01)),
    "Hopper-v5":      ExpertPreset("sac", 1_000_000, 1, dict(learning_starts=10_000)),
    "HalfCheetah-v5": ExpertPreset("sac", 1_000_000, 1, dict(learning_starts=10_000)),
}
# fmt: on


def _resolve(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        return LinearSchedule(float(value[4:]), 0.0, 1.0)
    return value


def _policy_kwargs(preset: ExpertPreset) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if preset.net_arch is not None:
        kwargs["net_arch"] = preset.net_arch
    if preset.activation is not None:
        kwargs["activation_fn"] = ACTIVATIONS[preset.activation]
    return kwargs


def _build(env_id: str, preset: ExpertPreset, seed: int, device: str, tb: str | None) -> BaseAlgorithm:
    venv = make_vec_env(env_id, n_envs=preset.n_envs, seed=seed)
    kwargs = {k: _resolve(v) for k, v in preset.hyperparams.items()}
    if preset.algo == "ppo":
        kwargs["rollout_buffer_class"] = NumbaRolloutBuffer
    elif preset.algo == "sac":
        kwargs["replay_buffer_class"] = NumbaReplayBuffer
        kwargs["replay_buffer_kwargs"] = {"seed": seed}
    return ALGOS[preset.algo](
        "MlpPolicy", venv, policy_kwargs=_policy_kwargs(preset), seed=seed, device=device,
        tensorboard_log=tb, verbose=0, **kwargs,
    )


class Expert:
    """A trained SB3 policy with its card; ``predict`` maps observations to actions."""

    def __init__(self, model: BaseAlgorithm, env_id: str, card: dict[str, Any] | None = None):
        self.model, self.env_id, self.card = model, env_id, card or {}

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return action

    @property
    def observation_space(self) -> gym.Space:
        return self.model.observation_space

    @property
    def action_space(self) -> gym.Space:
        return self.model.action_space

    def save(self, directory: str | Path, config: dict[str, Any]) -> Path:
        directory = Path(directory)
        save_tensors(directory / "policy.safetensors", self.model.policy.state_dict())
        write_json(directory / "config.json", config)
        if self.card:
            write_json(directory / "card.json", self.card)
        return directory


def load_expert(directory: str | Path, *, device: str = "cpu") -> Expert:
    """Rebuild an expert from ``config.json`` and load ``policy.safetensors`` (no pickle).

    Raises:
        CheckpointError: the directory is missing files or holds another architecture.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"expert directory {directory} does not exist; train one with "
                              "`gailkit expert train --env ENV --out DIR`")
    config = read_json(directory / "config.json", what="expert")
    preset = config_from_dict(ExpertPreset, config["preset"], source=f"expert: {directory / 'config.json'} (preset)")
    model = _build(config["env_id"], preset, seed=config.get("seed", 0), device=device, tb=None)
    load_weights(model.policy, directory / "policy.safetensors", what="expert")
    card_path = directory / "card.json"
    card = read_json(card_path, what="expert") if card_path.exists() else {}
    return Expert(model, config["env_id"], card)


PolicyFn = Callable[[np.ndarray], Any]


def rollout_episodes(
    policy: PolicyFn, env_id: str | gym.Env, episodes: int, *, seed: int, with_obs: bool = True
) -> list[Trajectory]:
    """Run ``episodes`` episodes, episode ``i`` reset with seed ``seed + i``.

    Args:
        policy: maps one observation to one action.
        env_id: env id or an env instance (not closed here).
        with_obs: keep observations and actions (False keeps only rewards: cheaper evaluation).
    """
    env = make_env(env_id) if isinstance(env_id, str) else env_id
    env.action_space.seed(seed)
    out = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            all_obs, acts, rews = [obs], [], []
            while True:
                action = policy(obs)
                obs, reward, terminated, truncated, _ = env.step(action)
                if not np.isfinite(reward):
                    raise UsageError(f"{env.spec.id if env.spec else env}: reward {reward} at step "
                                     f"{len(rews)} of episode {i} is not finite")
                rews.append(reward)
                if with_obs:
                    acts.append(action)
                    all_obs.append(obs)
                if terminated or truncated:
                    break
            if with_obs:
                out.append(Trajectory(np.asarray(all_obs), np.asarray(acts), np.asarray(rews), terminated))
            else:
                n = len(rews)
                out.append(Trajectory(np.zeros(n + 1), np.zeros(n), np.asarray(rews), terminated))
    finally:
        if isinstance(env_id, str):
            env.close()
    return out


def evaluate_policy(policy: PolicyFn, env_id: str, episodes: int, *, seed: int) -> np.ndarray:
    """Undiscounted returns ``(episodes,)`` of ``policy``."""
    return np.array([t.episode_return for t in rollout_episodes(policy, env_id, episodes, seed=seed, with_obs=False)])


def random_returns(env_id: str, episodes: int, *, seed: int) -> np.ndarray:
    """Returns of the uniform random policy (the 0 of normalised scores)."""
    env = make_env(env_id)
    space = env.action_space
    env.close()
    space.seed(seed)
    return evaluate_policy(lambda _: space.sample(), env_id, episodes, seed=seed)


def train_expert(config: ExpertConfig) -> tuple[Expert, Path]:
    """Train, evaluate and save an expert; returns it and its directory."""
    check_env_id(config.env)
    if config.env not in PRESETS and config.algo is None:
        raise UsageError(f"no preset for {config.env!r}; pass --algo (ppo, sac, dqn) or use one of "
                         f"{sorted(PRESETS)}")
    base = PRESETS.get(config.env, ExpertPreset(config.algo or "ppo", 100_000, 1, {}))
    if config.algo is not None and config.algo != base.algo:
        if config.algo not in ALGOS:
            raise UsageError(f"unknown algorithm {config.algo!r}; choose from {sorted(ALGOS)}")
        base = ExpertPreset(config.algo, base.steps, 1, {})  # preset hyperparameters are per algo
    preset = dataclasses.replace(base, steps=config.steps or base.steps)
    with claim_run_dir(config.out, resume=False, what="expert") as out:
        return _train_expert(config, preset, out)


def _train_expert(config: ExpertConfig, preset: ExpertPreset, out: Path) -> tuple[Expert, Path]:
    start = time.perf_counter()
    model = _build(config.env, preset, config.seed, config.device, tb=str(out / "tb"))
    model.learn(total_timesteps=preset.steps, progress_bar=show_progress(config.progress), tb_log_name="expert")
    wall = time.perf_counter() - start
    returns = evaluate_policy(lambda o: model.predict(o, deterministic=True)[0], config.env,
                              config.eval_episodes, seed=EVAL_SEED)
    rand = random_returns(config.env, config.eval_episodes, seed=EVAL_SEED)
    card = {
        "env_id": config.env,
        "algo": preset.algo,
        "steps": preset.steps,
        "seed": config.seed,
        "eval_episodes": config.eval_episodes,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "random_return_mean": float(rand.mean()),
        "random_return_std": float(rand.std()),
        "wall_time_s": round(wall, 2),
    }
    cfg = {
        "env_id": config.env,
        "seed": config.seed,
        "preset": dataclasses.asdict(preset),
        "versions": versions(),
    }
    expert = Expert(model, config.env, card)
    expert.save(out, cfg)
    return expert, out


def collect_demos(config: CollectConfig) -> tuple[Path, Demonstrations]:
    """Record expert episodes and write them to ``config.out``; returns the path and the data."""
    expert = load_expert(config.expert)
    env_id = config.env or expert.env_id
    if env_id != expert.env_id:
        check_compatible(expert.observation_space, expert.action_space, env_id,
                         source=f"expert {config.expert} (trained in {expert.env_id})")
    deterministic = not config.stochastic
    trajectories = rollout_episodes(lambda o: expert.predict(o, deterministic), env_id,
                                    config.episodes, seed=config.seed)
    env = make_env(env_id)
    meta = {
        "expert": str(config.expert),
        "expert_card": expert.card,
        "seed": config.seed,
        "deterministic": deterministic,
    }
    path = save_demos(config.out, trajectories, env_id=env_id, observation_space=env.observation_space,
                      action_space=env.action_space, metadata=meta)
    env.close()
    return path, load_demos(path)
