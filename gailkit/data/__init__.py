"""Data types, demonstration files and dataset import/export."""

from gailkit.data.demos import (
    SCHEMA_VERSION,
    DemoFormatError,
    Demonstrations,
    DemoReader,
    check_compatible,
    is_image_space,
    load_demos,
    open_demos,
    save_demos,
)
from gailkit.data.spaces import describe_space, space_from_json, space_to_json
from gailkit.data.types import Trajectory, Transitions, flatten_trajectories

__all__ = [
    "SCHEMA_VERSION",
    "DemoFormatError",
    "DemoReader",
    "Demonstrations",
    "Trajectory",
    "Transitions",
    "check_compatible",
    "describe_space",
    "flatten_trajectories",
    "is_image_space",
    "load_demos",
    "open_demos",
    "save_demos",
    "space_from_json",
    "space_to_json",
]
