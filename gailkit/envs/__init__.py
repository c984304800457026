"""Gailkit environments, registered with Gymnasium on ``import gailkit``.

Ids live in the ``gailkit/`` namespace: ``gymnasium.make("gailkit/CartPoleFixedHorizon-v1")``.
"""

from __future__ import annotations

import gymnasium as gym

from gailkit.envs.pixels import PixelObservation
from gailkit.envs.wrappers import AbsorbingStateWrapper

__all__ = ["AbsorbingStateWrapper", "NEEDS_ARGUMENTS", "PixelObservation", "registered_ids", "REGISTRY", "SAME_FRAMES",
           "same_frames"]

# id -> (entry point, max_episode_steps, kwargs, what it is)
REGISTRY: dict[str, tuple[str, int, dict, str]] = {
    "gailkit/CartPoleFixedHorizon-v1": (
        "gailkit.envs.fixed_horizon:FixedHorizonCartPoleEnv", 500, {},
        "CartPole-v1 run to 500 steps; reward 1 while the pole is up, 0 after it falls",
    ),
    "gailkit/AcrobotFixedHorizon-v1": (
        "gailkit.envs.fixed_horizon:FixedHorizonAcrobotEnv", 500, {},
        "Acrobot-v1 run to 500 steps; reward 0 while the tip is above the line, else -1",
    ),
    "gailkit/MountainCarFixedHorizon-v0": (
        "gailkit.envs.fixed_horizon:FixedHorizonMountainCarEnv", 200, {},
        "MountainCar-v0 run to 200 steps; reward 0 while at the goal, else -1",
    ),
}
for _name, _base, _horizon in (
    ("CartPole", "CartPole-v1", 500), ("Acrobot", "Acrobot-v1", 500),
    ("MountainCar", "MountainCar-v0", 200), ("LunarLander", "LunarLander-v3", 1000),
    ("Hopper", "Hopper-v5", 1000), ("HalfCheetah", "HalfCheetah-v5", 1000),
):
    REGISTRY[f"gailkit/{_name}Absorbing-{_base.rsplit('-', 1)[1]}"] = (
        "gailkit.envs.wrappers:make_absorbing", _horizon, {"base_id": _base},
        f"{_base} with an absorbing state after termination (obs + 1 flag), {_horizon} steps",
    )


REGISTRY["gailkit/CartPolePixels-v1"] = (
    "gailkit.envs.pixels:make_pixels", 500, {"base_id": "CartPole-v1"},
    "CartPole-v1 seen as 64x64 RGB frames (the world models' cheap test bed)",
)
REGISTRY["gailkit/CartPoleCentredPixels-v1"] = (
    "gailkit.envs.pixels:make_cartpole_centred", 500, {},
    "CartPole-v1 drawn as 64x64 frames in a view that follows the cart (thick pole, track-end posts)",
)
REGISTRY["gailkit/PendulumPixels-v1"] = (
    "gailkit.envs.pixels:make_pixels", 200, {"base_id": "Pendulum-v1"},
    "Pendulum-v1 seen as 64x64 RGB frames",
)

REGISTRY["gailkit/CarRacing64-v3"] = (
    "gailkit.envs.pixels:make_resized", 1000, {"base_id": "CarRacing-v3"},
    "CarRacing-v3 with 64x64 observations (World Models' input size; extra box2d)",
)
for _size in (64, 96):
    REGISTRY[f"gailkit/FastCarRacing{_size}-v3"] = (
        "gailkit.envs.car_racing:FastCarRacing", 1000, {"size": _size},
        f"CarRacing-v3's dynamics, track and reward; {_size}x{_size} observations drawn by Numba, "
        "26-31x faster (scripts/bench_envs.py; extra box2d)",
    )
    REGISTRY[f"gailkit/FastCarRacing{_size}NoIndicators-v3"] = (
        "gailkit.envs.car_racing:FastCarRacing", 1000, {"size": _size, "indicators": False},
        f"FastCarRacing{_size}-v3 with the bar under the view left black (no speed, steering or wheel "
        "gauges): the World Models paper's input, which cropped the bar off (extra box2d)",
    )
REGISTRY["gailkit/HalfCheetahWithPosition-v5"] = (
    "gymnasium.envs.mujoco.half_cheetah_v5:HalfCheetahEnv", 1000, {"exclude_current_positions_from_observation": False},
    "HalfCheetah-v5 with the torso's x position first in the observation (18 numbers), as seals' HalfCheetah: "
    "a reward or potential of the state alone can see progress (extra mujoco)",
)
REGISTRY["gailkit/Dream-v0"] = (
    "gailkit.worldmodels.dream:DreamEnv", 1000, {},
    "a trained world model as an env: gymnasium.make('gailkit/Dream-v0', world_model=DIR)",
)
REGISTRY["gailkit/ChoraleComposer-v0"] = (
    # built by a factory beside the music generators, which hands the env its theory rules and critic
    # (a string entry point: envs import nothing from generators)
    "gailkit.generators.music.composer_env:make_composer_env", 1024, {},
    "write a 4-part chorale token by token; music-theory reward plus a critic's log D (n_bars=2 by default)",
)
# ids whose observations are the same pictures of the same task (a world model fits them all)
SAME_FRAMES = [frozenset({"gailkit/CarRacing64-v3", "gailkit/FastCarRacing64-v3"})]


def same_frames(a: str, b: str) -> bool:
    """Whether envs ``a`` and ``b`` show the same frames (equal ids, or one of :data:`SAME_FRAMES`)."""
    return a == b or any(a in group and b in group for group in SAME_FRAMES)


NEEDS_ARGUMENTS = frozenset({"gailkit/Dream-v0"})  # cannot be made without user arguments


def _register_all() -> None:
    for env_id, (entry_point, horizon, kwargs, _) in REGISTRY.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=horizon, kwargs=kwargs)



def registered_ids() -> list[str]:
    """All ``gailkit/`` ids currently in Gymnasium's registry."""
    return sorted(i for i in gym.registry if i.startswith("gailkit/"))


_register_all()
