"""Import and export demonstrations as local `Minari <https://minari.farama.org>`_ datasets.

``demos_from_minari`` reads a dataset that is already on disk into :class:`Demonstrations`;
``demos_to_minari`` writes :class:`Demonstrations` as a new Minari dataset. Neither touches
the network: gailkit never downloads data, fetch remote datasets yourself with
``minari download ID``.

Minari finds datasets under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), in
``ROOT/<dataset id>/data``. Both functions take ``data_path`` to use another root; while
writing, that root is passed to Minari by setting ``MINARI_DATASETS_PATH`` for the duration
of the call (restored afterwards), so do not export from several threads at once.

Minari is optional: install it with ``pip install "gailkit[minari]"``. Writing datasets also
needs Minari's storage backend (``minari[hdf5]``, h5py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from gailkit.data.demos import DemoFormatError, Demonstrations, _validate
from gailkit.data.types import Trajectory

if TYPE_CHECKING:
    from types import ModuleType

    from minari import MinariDataset

__all__ = ["demos_from_minari", "demos_to_minari"]

_ENV_VAR = "MINARI_DATASETS_PATH"
_SUPPORTED_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
)


def _import_minari() -> ModuleType:
    """Import minari, or raise an ImportError that says how to install it."""
    try:
        import minari
    except ImportError as e:
        raise ImportError(
            'Minari support needs the optional dependency minari: pip install "gailkit[minari]"'
        ) from e
    return minari


def _datasets_root(data_path: str | os.PathLike | None) -> Path:
    """The directory holding Minari datasets: ``data_path``, else Minari's own default."""
    if data_path is not None:
        return Path(data_path)
    env_root = os.environ.get(_ENV_VAR)
    return Path(env_root) if env_root else Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def _minari_root(data_path: str | os.PathLike | None) -> Iterator[None]:
    """Point ``MINARI_DATASETS_PATH`` at ``data_path`` (if given) and restore it on exit."""
    if data_path is None:
        yield
        return
    old = os.environ.get(_ENV_VAR)
    os.environ[_ENV_VAR] = os.fspath(data_path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_ENV_VAR, None)
        else:
            os.environ[_ENV_VAR] = old


def _check_dataset_id(dataset_id: str) -> None:
    """Reject ids Minari cannot parse (this also keeps ids from escaping the datasets root)."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):  # minari 0.5 raises TypeError when "-vN" is missing
        raise DemoFormatError(
            f"malformed Minari dataset id {dataset_id!r}: ids look like "
            "'namespace/name-v0' (the namespace is optional, the version is required)"
        ) from None


def _check_space(space: gym.Space, what: str, source: str) -> None:
    """Raise DemoFormatError unless gailkit can store ``space``."""
    if isinstance(space, _SUPPORTED_SPACES):
        return
    hint = (
        " Flatten the observations first (gymnasium.wrappers.FlattenObservation when "
        "recording, or gymnasium.spaces.flatten on the data) and store that dataset."
        if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple))
        else ""
    )
    raise DemoFormatError(
        f"{source}: {what} space {space!r} is not supported; gailkit demonstrations need a "
        f"Box, Discrete, MultiDiscrete or MultiBinary space.{hint}"
    )


def demos_from_minari(
    dataset_id: str, *, data_path: str | os.PathLike | None = None
) -> Demonstrations:
    """Load a local Minari dataset as gailkit demonstrations.

    Each episode becomes a :class:`Trajectory` with its ``T + 1`` observations, ``T`` actions
    and ``T`` rewards; ``terminal`` is the episode's last termination flag (False when it was
    truncated). Nothing is downloaded.

    Args:
        dataset_id: Minari id, e.g. ``"mujoco/hopper/expert-v0"``.
        data_path: root directory holding Minari datasets; default ``$MINARI_DATASETS_PATH``
            or ``~/.minari/datasets``.

    Returns:
        The episodes, with ``env_id`` taken from the dataset's env spec (the dataset id if it
        has none) and ``metadata["minari_dataset_id"]`` set.

    Raises:
        ImportError: minari is not installed.
        DemoFormatError: the dataset is not available locally, is unreadable, uses spaces
            gailkit cannot store (e.g. Dict observations), or holds NaN/inf values.
    """
    minari = _import_minari()
    _check_dataset_id(dataset_id)
    source = f"Minari dataset {dataset_id!r}"
    data_dir = _datasets_root(data_path) / dataset_id / "data"
    if not data_dir.is_dir():
        raise DemoFormatError(
            f"{source} is not available locally (looked in {data_dir}). gailkit never downloads "
            f"data: fetch it yourself with `minari download {dataset_id}`, or pass data_path / "
            f"set {_ENV_VAR} to the directory that holds it."
        )
    try:
        dataset = minari.MinariDataset(data_dir)
    except (ValueError, OSError, KeyError) as e:
        raise DemoFormatError(f"{source}: cannot be read ({type(e).__name__}: {e})") from None
    obs_space, act_space = dataset.observation_space, dataset.action_space
    _check_space(obs_space, "observation", source)
    _check_space(act_space, "action", source)

    obs, acts, rews, terminal = [], [], [], []
    for i, episode in enumerate(dataset.iterate_episodes()):
        ep_obs, ep_acts = np.asarray(episode.observations), np.asarray(episode.actions)
        if len(ep_obs) != len(ep_acts) + 1 or len(episode.rewards) != len(ep_acts):
            raise DemoFormatError(
                f"{source}: episode {i} has {len(ep_obs)} observations, {len(ep_acts)} actions "
                f"and {len(episode.rewards)} rewards; expected T + 1, T and T"
            )
        obs.append(ep_obs)
        acts.append(ep_acts)
        rews.append(np.asarray(episode.rewards))
        terminal.append(bool(episode.terminations[-1]) if len(ep_acts) else False)
    if not obs:
        raise DemoFormatError(f"{source}: holds no episodes")
    lengths = np.array([len(a) for a in acts], dtype=np.int64)
    _validate(
        np.concatenate(obs),
        np.concatenate(acts),
        np.concatenate(rews),
        lengths,
        np.array(terminal, dtype=bool),
        obs_space,
        act_space,
        source=source,
    )
    trajectories = tuple(
        Trajectory(obs=o, acts=a, rews=r, terminal=t)
        for o, a, r, t in zip(obs, acts, rews, terminal)
    )
    env_id = dataset.env_spec.id if dataset.env_spec is not None else dataset_id
    return Demonstrations(
        trajectories, env_id, obs_space, act_space, {"minari_dataset_id": dataset_id}
    )


def _episode_buffers(
    minari: ModuleType, demos: Demonstrations, fill_missing_rewards: bool
) -> list[Any]:
    """One Minari ``EpisodeBuffer`` per trajectory."""
    missing = [i for i, t in enumerate(demos.trajectories) if t.rews is None]
    if missing and not fill_missing_rewards:
        raise DemoFormatError(
            f"Minari datasets require rewards, but {len(missing)} of {len(demos)} episodes have "
            f"none (first: episode {missing[0]}). Pass fill_missing_rewards=True to store zero "
            "rewards instead."
        )
    buffers = []
    for i, traj in enumerate(demos.trajectories):
        ends = np.zeros(len(traj), dtype=bool)
        ends[-1] = True
        rews = traj.rews if traj.rews is not None else np.zeros(len(traj), dtype=np.float32)
        buffers.append(
            minari.data_collector.EpisodeBuffer(
                id=i,
                observations=np.asarray(traj.obs),
                actions=np.asarray(traj.acts),
                rewards=np.asarray(rews, dtype=np.float64),  # what Minari's collector stores
                terminations=ends & traj.terminal,
                truncations=ends & (not traj.terminal),
            )
        )
    return buffers


def demos_to_minari(
    demos: Demonstrations,
    dataset_id: str,
    *,
    data_path: str | os.PathLike | None = None,
    author: str | None = None,
    author_email: str | None = None,
    algorithm_name: str | None = None,
    description: str | None = None,
    code_permalink: str | None = None,
    fill_missing_rewards: bool = False,
) -> MinariDataset:
    """Write demonstrations as a new local Minari dataset.

    The env spec is recorded when ``demos.env_id`` is a registered Gymnasium id (Minari then
    builds the env once); otherwise only the spaces are stored. Image observations are stored
    losslessly (Minari's default JPEG encoding is turned off). ``demos.metadata`` is not
    exported.

    Args:
        demos: episodes to export.
        dataset_id: new Minari id, ``(namespace/)name-vN``; it must not exist yet.
        data_path: root directory for Minari datasets; default ``$MINARI_DATASETS_PATH``
            or ``~/.minari/datasets``.
        author: dataset author(s), stored in Minari's metadata.
        author_email: contact address, stored in Minari's metadata.
        algorithm_name: name of the policy or algorithm that produced the episodes.
        description: free-text description of the dataset.
        code_permalink: link to the code that produced the episodes.
        fill_missing_rewards: store zero rewards for episodes without rewards instead of
            raising (Minari datasets always have rewards).

    Returns:
        The created ``minari.MinariDataset``.

    Raises:
        ImportError: minari (or its storage backend) is not installed.
        DemoFormatError: malformed ``dataset_id``, unsupported spaces, or episodes without
            rewards and ``fill_missing_rewards`` is False.
        ValueError: a dataset with this id already exists under the root.
    """
    minari = _import_minari()
    _check_dataset_id(dataset_id)
    source = f"exporting to Minari dataset {dataset_id!r}"
    _check_space(demos.observation_space, "observation", source)
    _check_space(demos.action_space, "action", source)
    if len(demos) == 0:
        raise DemoFormatError(f"{source}: nothing to export, no trajectories")
    buffers = _episode_buffers(minari, demos, fill_missing_rewards)
    env_spec = gym.spec(demos.env_id) if demos.env_id in gym.registry else None

    dataset_dir = _datasets_root(data_path) / dataset_id
    existed = dataset_dir.exists()
    with _minari_root(data_path), warnings.catch_warnings():
        # Minari warns about every optional metadata field left out; the caller chose that.
        warnings.filterwarnings("ignore", message=r"`\w+` is set to None", category=UserWarning)
        try:
            return minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env_spec,
                observation_space=demos.observation_space,
                action_space=demos.action_space,
                author=author,
                author_email=author_email,
                algorithm_name=algorithm_name,
                description=description,
                code_permalink=code_permalink,
                jpeg_encoding=False,
            )
        except BaseException:
            if not existed:  # don't leave a half-written dataset behind
                shutil.rmtree(dataset_dir, ignore_errors=True)
            raise

