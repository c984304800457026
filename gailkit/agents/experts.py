"""Expert policies: tuned SB3 presets, training, evaluation, pickle-free save/load, demos.

An expert directory holds::

    config.json          env id, algorithm, hyperparameters, versions (enough to rebuild it)
    policy.safetensors   the SB3 policy's weights
    obs_norm.safetensors the observation statistics, for presets trained with normalisation
    card.json            evaluation card: mean/std return, random baseline, steps, wall time
    tb/                  TensorBoard logs of the training run
    manifest.json        (shipped zoo experts) every file's size and SHA-256, checked on load

Presets with ``normalize`` train under SB3's ``VecNormalize``; what the policy needs of it at
run time, the running mean and variance of observations, is saved as arrays and applied by
:meth:`Expert.predict` (never a pickled ``VecNormalize``).

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
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize

from gailkit.agents.configs import CollectConfig, ExpertConfig
from gailkit.agents.fast_sac import FastSAC
from gailkit.agents.run import claim_run_dir
from gailkit.agents.sb3_adapter import deterministic_policy
from gailkit.buffers import NumbaReplayBuffer, NumbaRolloutBuffer
from gailkit.configs import config_from_dict
from gailkit.data.demos import Demonstrations, check_compatible, is_image_space, load_demos, save_demos
from gailkit.data.spaces import describe_space, space_mismatch
from gailkit.data.types import Trajectory
from gailkit.envs.make import check_env_id, make_env
from gailkit.errors import UsageError
from gailkit.evaluation import EVAL_SEED
from gailkit.nn.checkpoint import (
    MANIFEST,
    CheckpointError,
    load_tensors,
    load_weights,
    read_json,
    save_tensors,
    verify_dir,
    write_json,
)
from gailkit.progress import show_progress
from gailkit.versions import versions
from gailkit.zoo import resolve_expert

__all__ = [
    "PRESETS",
    "ExpertPreset",
    "ExpertConfig",
    "Expert",
    "ObsNormalizer",
    "train_expert",
    "load_expert",
    "evaluate_policy",
    "rollout_episodes",
    "random_returns",
    "CollectConfig",
    "collect_demos",
]

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": FastSAC, "dqn": DQN}  # FastSAC: SB3 SAC, faster step
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
    normalize: bool = False  # VecNormalize observations and rewards while training
    policy: dict[str, Any] = dataclasses.field(default_factory=dict)  # more policy kwargs: log_std_init, ortho_init


_MUJOCO_POLICY: dict[str, Any] = dict(normalize=True, net_arch=dict(pi=[256, 256], vf=[256, 256]), activation="relu",
                                      policy=dict(log_std_init=-2.0, ortho_init=False))

# fmt: off
PRESETS: dict[str, ExpertPreset] = {
    #                          algo   steps      envs  hyperparameters
    "CartPole-v1":    ExpertPreset("ppo", 100_000,   8, dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate="lin_0.001", clip_range="lin_0.2")),  # noqa: E501
    "Acrobot-v1":     ExpertPreset("ppo", 200_000,  16, dict(n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0)),  # noqa: E501
    "MountainCar-v0": ExpertPreset("dqn", 120_000,   1, dict(learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000, gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8, exploration_fraction=0.2, exploration_final_eps=0.07), net_arch=[256, 256]),  # noqa: E501
    "Pendulum-v1":    ExpertPreset("sac",  20_000,   1, dict(learning_rate=1e-3)),
    "LunarLander-v3": ExpertPreset("ppo", 1_000_000, 16, dict(n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4, ent_coef=0.01)),  # noqa: E501
    # MuJoCo: RL Zoo's tuned PPO with normalisation (its HalfCheetah-v3 / Walker2d-v3 rows), SAC for Hopper
    # (RL Zoo's tuned Hopper PPO reached 984.8 on Hopper-v5 here, seed 0: the zoo's Hopper is SAC at RL Zoo's settings)
    "Hopper-v5":      ExpertPreset("sac",  300_000,  1, dict(learning_starts=10_000, learning_rate=3e-4, buffer_size=300_000)),  # noqa: E501
    "HalfCheetah-v5": ExpertPreset("ppo", 1_000_000, 1, dict(batch_size=64, n_steps=512, gamma=0.98, learning_rate=2.0633e-05, ent_coef=0.000401762, clip_range=0.1, n_epochs=20, gae_lambda=0.92, max_grad_norm=0.8, vf_coef=0.58096), **_MUJOCO_POLICY),  # noqa: E501
    "Walker2d-v5":    ExpertPreset("ppo", 1_000_000, 1, dict(batch_size=32, n_steps=512, gamma=0.99, learning_rate=5.05041e-05, ent_coef=0.000585045, clip_range=0.1, n_epochs=20, gae_lambda=0.95, max_grad_norm=1.0, vf_coef=0.871923), normalize=True),  # noqa: E501
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
    return {**kwargs, **preset.policy}


def _build(env_id: str, preset: ExpertPreset, seed: int, device: str, tb: str | None) -> BaseAlgorithm:
    venv = make_vec_env(make_env, n_envs=preset.n_envs, seed=seed, env_kwargs={"env_id": env_id})
    if preset.normalize:
        venv = VecNormalize(venv, gamma=preset.hyperparams.get("gamma", 0.99))
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


@dataclasses.dataclass
class ObsNormalizer:
    """What a policy trained under ``VecNormalize`` sees: ``clip((obs - mean) / sqrt(var + eps))``."""

    mean: np.ndarray
    var: np.ndarray
    clip: float = 10.0
    epsilon: float = 1e-8

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        z = (np.asarray(obs, np.float64) - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    @classmethod
    def of(cls, venv: VecNormalize) -> ObsNormalizer:
        return cls(venv.obs_rms.mean.copy(), venv.obs_rms.var.copy(), float(venv.clip_obs), float(venv.epsilon))

    def save(self, path: Path) -> dict[str, float]:
        """Write the arrays to ``path`` (safetensors); returns the scalars for config.json."""
        save_tensors(path, {"mean": torch.from_numpy(self.mean), "var": torch.from_numpy(self.var)})
        return {"clip": self.clip, "epsilon": self.epsilon}

    @classmethod
    def load(cls, path: Path, scalars: dict[str, float], shape: tuple[int, ...]) -> ObsNormalizer:
        t = load_tensors(path, what="expert")
        if set(t) != {"mean", "var"} or any(tuple(t[k].shape) != shape for k in t):
            raise CheckpointError(f"expert: {path} does not hold observation mean and var of shape {shape}; "
                                  "the expert is damaged")
        norm = cls(t["mean"].numpy(), t["var"].numpy(), float(scalars["clip"]), float(scalars["epsilon"]))
        if not (np.isfinite(norm.mean).all() and (norm.var >= 0).all()):
            raise CheckpointError(f"expert: {path} holds non-finite means or negative variances; the expert is damaged")
        return norm


class Expert:
    """A trained SB3 policy with its card; ``predict`` maps raw observations to actions."""

    def __init__(self, model: BaseAlgorithm, env_id: str, card: dict[str, Any] | None = None,
                 obs_norm: ObsNormalizer | None = None):
        self.model, self.env_id, self.card, self.obs_norm = model, env_id, card or {}, obs_norm
        self._act = deterministic_policy(model.policy)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if self.obs_norm is not None:
            obs = self.obs_norm(obs)
        return self._act(obs) if deterministic else self.model.predict(obs, deterministic=False)[0]

    @property
    def observation_space(self) -> gym.Space:
        return self.model.observation_space

    @property
    def action_space(self) -> gym.Space:
        return self.model.action_space

    def save(self, directory: str | Path, config: dict[str, Any]) -> Path:
        directory = Path(directory)
        save_tensors(directory / "policy.safetensors", self.model.policy.state_dict())
        if self.obs_norm is not None:
            config = {**config, "obs_norm": self.obs_norm.save(directory / "obs_norm.safetensors")}
        write_json(directory / "config.json", config)
        if self.card:
            write_json(directory / "card.json", self.card)
        return directory


def load_expert(directory: str | Path, *, device: str = "cpu") -> Expert:
    """Rebuild an expert from ``config.json`` and load ``policy.safetensors`` (no pickle).

    ``directory`` may be ``zoo:ENV``, the zoo's expert for ENV (:mod:`gailkit.zoo`).

    Raises:
        CheckpointError: the directory is missing files or holds another architecture.
    """
    directory = resolve_expert(directory)
    if not directory.is_dir():
        raise CheckpointError(f"expert directory {directory} does not exist; train one with "
                              "`gailkit expert train --env ENV --out DIR`")
    if (directory / MANIFEST).exists():  # a sealed expert (the zoo's): every byte as written
        verify_dir(directory, what="expert")
    config = read_json(directory / "config.json", what="expert")
    preset = config_from_dict(ExpertPreset, config["preset"], source=f"expert: {directory / 'config.json'} (preset)")
    model = _build(config["env_id"], preset, seed=config.get("seed", 0), device=device, tb=None)
    load_weights(model.policy, directory / "policy.safetensors", what="expert")
    obs_norm = None
    if preset.normalize:
        obs_norm = ObsNormalizer.load(directory / "obs_norm.safetensors", config["obs_norm"],
                                      model.observation_space.shape)
    card_path = directory / "card.json"
    card = read_json(card_path, what="expert") if card_path.exists() else {}
    return Expert(model, config["env_id"], card, obs_norm)


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


def evaluate_policy(policy: PolicyFn, env_id: str | gym.Env, episodes: int, *, seed: int) -> np.ndarray:
    """Undiscounted returns ``(episodes,)`` of ``policy`` (in an env id, or an env instance left open)."""
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
    venv = model.get_vec_normalize_env()
    expert = Expert(model, config.env, obs_norm=ObsNormalizer.of(venv) if venv is not None else None)
    returns = evaluate_policy(expert.predict, config.env, config.eval_episodes, seed=EVAL_SEED)
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
        "versions": versions("mujoco", "Box2D"),
    }
    cfg = {
        "env_id": config.env,
        "seed": config.seed,
        "preset": dataclasses.asdict(preset),
        "versions": card["versions"],
    }
    expert.card = card
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

    def policy(obs: np.ndarray) -> np.ndarray:
        return expert.predict(obs, deterministic)

    meta = {
        "expert": str(config.expert),
        "expert_card": expert.card,
        "seed": config.seed,
        "deterministic": deterministic,
    }
    if config.pixels:
        trajectories = rollout_pixel_episodes(policy, env_id, config.pixels, config.episodes, seed=config.seed)
        env_id, meta["states_from"] = config.pixels, env_id
    else:
        trajectories = rollout_episodes(policy, env_id, config.episodes, seed=config.seed)
    env = make_env(env_id)
    path = save_demos(config.out, trajectories, env_id=env_id, observation_space=env.observation_space,
                      action_space=env.action_space, metadata=meta)
    env.close()
    return path, load_demos(path)


def rollout_pixel_episodes(policy: PolicyFn, state_env_id: str, pixel_env_id: str, episodes: int, *,
                           seed: int) -> list[Trajectory]:
    """Episodes of ``policy`` (acting on the states of ``state_env_id``) recorded as the frames of
    ``pixel_env_id``, a pixel version of the same task stepped beside it with the same seeds and
    actions. Rewards and ends must agree at every step: otherwise the two envs are not the same
    task, and the error says where they parted.
    """
    state, pixels = make_env(state_env_id), make_env(pixel_env_id)
    try:
        if not is_image_space(pixels.observation_space):
            raise UsageError(f"--pixels {pixel_env_id}: its observations are "
                             f"{describe_space(pixels.observation_space)}, not image frames; give a pixel env such as "
                             "gailkit/CartPoleCentredPixels-v1")
        if space_mismatch(state.action_space, pixels.action_space):
            raise UsageError(f"--pixels {pixel_env_id} takes {describe_space(pixels.action_space)}, the expert's env "
                             f"{state_env_id} {describe_space(state.action_space)}; give a pixel version of "
                             f"{state_env_id}")
        out = []
        for i in range(episodes):
            obs, _ = state.reset(seed=seed + i)
            frame, _ = pixels.reset(seed=seed + i)
            frames, acts, rews = [frame], [], []
            while True:
                action = policy(obs)
                obs, reward, terminated, truncated, _ = state.step(action)
                frame, pixel_reward, pixel_terminated, pixel_truncated, _ = pixels.step(action)
                if (reward, terminated, truncated) != (pixel_reward, pixel_terminated, pixel_truncated):
                    raise UsageError(
                        f"--pixels {pixel_env_id} parted from {state_env_id} at step {len(acts)} of episode {i} "
                        f"(reward, terminated, truncated: {(pixel_reward, pixel_terminated, pixel_truncated)} vs "
                        f"{(reward, terminated, truncated)}); give a pixel version of the expert's env")
                frames.append(frame), acts.append(action), rews.append(reward)
                if terminated or truncated:
                    break
            out.append(Trajectory(np.asarray(frames), np.asarray(acts), np.asarray(rews), terminated))
        return out
    finally:
        state.close()
        pixels.close()
