"""Behaviour cloning of SB3 policies: maximum likelihood of expert actions.

``pretrain_policy`` trains any SB3 ``ActorCriticPolicy`` in place (GAIL uses it to warm-start
PPO); ``BC`` wraps one policy with fit / predict / save / load (the ``bc`` imitation algorithm,
:mod:`gailkit.agents.bc`, trains one in a run directory). A BC directory holds::

    config.json          BCConfig, JSON space descriptions, versions (enough to rebuild it)
    policy.safetensors   the policy's weights

Only the actor is trained: the value head gets no gradient and no L2 penalty, so a warm-started
PPO critic starts where its own initialisation put it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import ConstantSchedule

from gailkit.agents.sb3_adapter import deterministic_policy
from gailkit.data.demos import Demonstrations
from gailkit.data.spaces import describe_space, space_from_json, space_mismatch, space_to_json
from gailkit.data.types import Transitions
from gailkit.errors import UsageError
from gailkit.nn.checkpoint import CheckpointError, load_weights, read_json, save_tensors, write_json
from gailkit.progress import progress_bar
from gailkit.versions import versions

__all__ = ["BC", "BCConfig", "bc_loss", "pretrain_policy"]

_LOG_EVERY = 100  # gradient steps per logged (and returned) mean of the loss statistics
_CRITIC_PREFIXES = ("value_net.", "mlp_extractor.value_net.", "vf_features_extractor.")


def _parse_net_arch(value: str | Sequence[int]) -> tuple[int, ...]:
    """``"64,64"`` (from the command line) or ``[64, 64]`` -> ``(64, 64)``."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    try:
        arch = tuple(int(x) for x in items)
    except (TypeError, ValueError):
        raise UsageError(f"net_arch must be layer widths such as 64,64; got {value!r}") from None
    if any(w < 1 for w in arch):
        raise UsageError(f"net_arch widths must be positive, got {arch}")
    return arch


@dataclasses.dataclass
class BCConfig:
    """What behaviour cloning (``gailkit bc`` and GAIL's warm start) takes."""

    steps: int = field(default=2000, metadata={"help": "gradient steps"})
    batch_size: int = field(default=256, metadata={"help": "transitions per minibatch"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    ent_weight: float = field(default=1e-3, metadata={"help": "weight of the entropy bonus"})
    l2_weight: float = field(default=0.0, metadata={"help": "weight of the actor's L2 penalty"})
    net_arch: tuple[int, ...] = field(
        default=(64, 64), metadata={"help": "hidden layer widths of the policy, e.g. 64,64"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the initial weights and minibatches"})

    def __post_init__(self) -> None:
        self.net_arch = _parse_net_arch(self.net_arch)
        if self.steps < 1 or self.batch_size < 1:
            raise UsageError(f"steps and batch_size must be at least 1, "
                             f"got {self.steps} and {self.batch_size}")
        if self.lr <= 0 or self.ent_weight < 0 or self.l2_weight < 0:
            raise UsageError(f"need lr > 0 and non-negative weights; got lr={self.lr}, "
                             f"ent_weight={self.ent_weight}, l2_weight={self.l2_weight}")


def _actor_parameters(policy: ActorCriticPolicy) -> list[torch.nn.Parameter]:
    """Parameters the action distribution depends on (everything but the critic)."""
    return [p for name, p in policy.named_parameters() if not name.startswith(_CRITIC_PREFIXES)]


def bc_loss(
    policy: ActorCriticPolicy,
    obs: torch.Tensor,
    acts: torch.Tensor,
    ent_weight: float,
    l2_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log-likelihood of expert actions, minus an entropy bonus, plus L2.

    ``loss = -mean(log pi(a|s)) - ent_weight * mean(H[pi(.|s)]) + l2_weight * sum(w**2)``,
    the sum over the actor's parameters. The log-likelihood and entropy are those of
    ``policy.evaluate_actions``, read from ``policy.get_distribution`` so that one actor
    forward also gives the mode (the critic is not run).

    Args:
        policy: an SB3 actor-critic policy (Discrete, MultiDiscrete, MultiBinary or Box actions).
        obs: ``(B, *obs_shape)`` observations, as ``policy.obs_to_tensor`` would give them.
        acts: ``(B,)`` integer actions for Discrete, ``(B, *act_shape)`` otherwise.
        ent_weight: weight of the entropy bonus.
        l2_weight: weight of the squared L2 norm of the actor's parameters.

    Returns:
        The scalar loss (with gradients) and float statistics ``loss``, ``neglogp``,
        ``entropy``, ``l2`` and either ``accuracy`` (fraction of rows whose most likely
        action equals the expert's, all components for multi-dimensional discrete actions)
        or ``mse`` (mean squared error of the Gaussian mean, for Box actions).
    """
    dist = policy.get_distribution(obs)
    log_prob = dist.log_prob(acts)  # (B,)
    neglogp = -log_prob.mean()
    entropy = dist.entropy()
    # gSDE has no closed-form entropy; -log p of the data is PPO's stand-in for it.
    entropy = -log_prob.mean() if entropy is None else entropy.mean()
    l2 = torch.stack([p.square().sum() for p in _actor_parameters(policy)]).sum()
    loss = neglogp - ent_weight * entropy + l2_weight * l2

    stats = {"loss": loss.item(), "neglogp": neglogp.item(),
             "entropy": entropy.item(), "l2": l2.item()}
    with torch.no_grad():
        mode = dist.mode()
        if isinstance(policy.action_space, gym.spaces.Box):
            stats["mse"] = (mode - acts).square().mean().item()
        else:
            match = (mode == acts).reshape(len(acts), -1).all(dim=1)
            stats["accuracy"] = match.float().mean().item()
    return loss, stats


def _check_spaces(policy: ActorCriticPolicy, data: Transitions | Demonstrations) -> Transitions:
    """The transitions of ``data``; ValueError if they do not fit the policy's spaces."""
    if isinstance(data, Demonstrations):
        pairs = (("observation", policy.observation_space, data.observation_space),
                 ("action", policy.action_space, data.action_space))
        for what, ours, theirs in pairs:
            diff = space_mismatch(ours, theirs)
            if diff:
                raise UsageError(
                    f"demonstrations from {data.env_id} do not fit the policy: {what} space {diff} "
                    f"(data {describe_space(theirs)}, policy {describe_space(ours)})"
                )
        data = data.transitions()
    obs_shape, act_shape = policy.observation_space.shape, policy.action_space.shape or ()
    if data.obs.shape[1:] != obs_shape:
        raise UsageError(f"observations have shape {data.obs.shape[1:]} but the policy's "
                         f"observation space is {describe_space(policy.observation_space)}")
    if data.acts.shape[1:] != act_shape:
        raise UsageError(f"actions have shape {data.acts.shape[1:]} but the policy's action "
                         f"space is {describe_space(policy.action_space)}")
    space = policy.action_space
    if isinstance(space, gym.spaces.Discrete) and len(data):
        lo, hi = data.acts.min(), data.acts.max()
        if lo < 0 or hi >= space.n:
            raise UsageError(f"discrete actions must lie in [0, {space.n}) for "
                             f"{describe_space(space)}; got [{lo}, {hi}]")
    return data


def _as_tensors(policy: ActorCriticPolicy, data: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, *obs_shape)`` observations and actions in the dtypes the distributions expect."""
    obs = torch.tensor(data.obs, device=policy.device)  # a copy: the arrays are read-only
    acts = torch.tensor(data.acts, device=policy.device)
    if isinstance(policy.action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        acts = acts.long()
    else:  # Box (Gaussian) and MultiBinary (Bernoulli) take float actions, flattened per row
        acts = acts.float().reshape(len(acts), -1)
    return obs, acts


def pretrain_policy(
    policy: ActorCriticPolicy,
    transitions: Transitions | Demonstrations,
    config: BCConfig,
    *,
    progress: bool = False,
    logger: Logger | None = None,
) -> dict[str, float]:
    """Train ``policy``'s actor in place by behaviour cloning.

    Minibatches of ``config.batch_size`` rows are drawn without replacement from a fresh
    permutation each epoch (the incomplete last batch is skipped) by a ``torch.Generator``
    seeded with ``config.seed``; the global RNGs are neither read nor changed. The policy's
    own optimizer (PPO's) is left alone: BC uses a fresh Adam with ``config.lr``.

    Args:
        policy: an SB3 actor-critic policy, e.g. ``PPO(...).policy``.
        transitions: ``N`` expert transitions; with ``Demonstrations`` their recorded spaces
            are compared with the policy's, with ``Transitions`` only the shapes.
        config: steps, batch size, learning rate, loss weights and seed.
        progress: show a progress bar (on a terminal only, see :mod:`gailkit.progress`).
        logger: optional SB3 logger; ``bc/*`` means are recorded and dumped every 100 steps.

    Returns:
        Means of :func:`bc_loss`'s statistics over the last (up to) 100 steps, and ``steps``.

    Raises:
        ValueError: fewer transitions than one batch, or data that does not fit the policy.
    """
    data = _check_spaces(policy, transitions)
    if len(data) < config.batch_size:
        raise UsageError(f"too few transitions ({len(data)}) for batch size {config.batch_size}: "
                         "lower --batch-size or record more episodes")
    obs, acts = _as_tensors(policy, data)
    optimizer = torch.optim.Adam(_actor_parameters(policy), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    n_batches = len(data) // config.batch_size
    order, window, last = torch.empty(0, dtype=torch.long), [], {}

    bar = progress_bar(total=config.steps, desc="bc", unit="step", enabled=progress)
    policy.set_training_mode(True)
    try:
        for step in range(config.steps):
            k = step % n_batches
            if k == 0:
                order = torch.randperm(len(data), generator=generator)
            idx = order[k * config.batch_size : (k + 1) * config.batch_size].to(policy.device)
            loss, stats = bc_loss(policy, obs[idx], acts[idx], config.ent_weight, config.l2_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            window.append(stats)
            if len(window) == _LOG_EVERY or step == config.steps - 1:
                last = {key: float(np.mean([s[key] for s in window])) for key in window[0]}
                window = []
                if logger is not None:
                    for key, value in last.items():
                        logger.record(f"bc/{key}", value)
                    logger.dump(step + 1)
                bar.set_postfix(loss=f"{last['loss']:.3f}")
            bar.update()
    finally:
        policy.set_training_mode(False)
        bar.close()
    return {**last, "steps": float(config.steps)}


class BC:
    """A behaviour-cloned SB3 actor-critic policy (MLP, tanh) with fit / predict / save / load.

    Attributes:
        policy: the ``ActorCriticPolicy``; its weights are initialised from ``config.seed``.
        stats: statistics of the last :meth:`fit` (empty before).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: BCConfig | None = None,
        *,
        device: str = "cpu",
    ):
        self.observation_space, self.action_space = observation_space, action_space
        self.config = config or BCConfig()
        # Seed the initial weights without touching the caller's global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.policy = ActorCriticPolicy(
                observation_space, action_space, ConstantSchedule(self.config.lr),
                net_arch={"pi": list(self.config.net_arch), "vf": []},
            ).to(device)
        self.policy.set_training_mode(False)
        self._act = deterministic_policy(self.policy)
        self.stats: dict[str, float] = {}

    def fit(self, demos: Demonstrations | Transitions, *, progress: bool = False,
            logger: Logger | None = None) -> BC:
        """Train on expert data with :func:`pretrain_policy`; a second call continues training."""
        self.stats = pretrain_policy(self.policy, demos, self.config,
                                     progress=progress, logger=logger)
        return self

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for ``(*obs_shape)`` or ``(B, *obs_shape)`` observations, as SB3's ``predict``
        (Box actions are clipped to the action space)."""
        return self._act(obs) if deterministic else self.policy.predict(obs, deterministic=False)[0]

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``policy.safetensors`` (each atomically) to ``directory``."""
        directory = Path(directory)
        save_tensors(directory / "policy.safetensors", self.policy.state_dict())
        write_json(directory / "config.json", {
            "kind": "bc",
            "config": dataclasses.asdict(self.config),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "stats": self.stats,
            "versions": versions(),
        })
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu") -> BC:
        """Rebuild a BC policy saved by :meth:`save` (no pickle).

        Raises:
            CheckpointError: the directory or a file is missing, corrupt, or the weights do
                not fit the policy that ``config.json`` describes.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"BC directory {directory} does not exist; train one with "
                                  "BC(...).fit(demos).save(dir)")
        meta = read_json(directory / "config.json", what="BC")
        try:
            if meta.get("kind") != "bc":
                raise UsageError(f"kind is {meta.get('kind')!r}, not 'bc'")
            config = BCConfig(**meta["config"])
            obs_space = space_from_json(meta["observation_space"])
            act_space = space_from_json(meta["action_space"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"BC: {directory}/config.json is not a BC config ({e})") from None
        bc = cls(obs_space, act_space, config, device=device)
        load_weights(bc.policy, directory / "policy.safetensors", what="BC")
        bc.stats = dict(meta.get("stats", {}))
        return bc
