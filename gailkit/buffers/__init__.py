"""Numba kernels over rollouts and the SB3-compatible buffers built on them."""

from gailkit.buffers import kernels
from gailkit.buffers.assembly import trajectories_from_rollout
from gailkit.buffers.mixed import ExpertMixReplayBuffer
from gailkit.buffers.replay import NumbaReplayBuffer, ReplayArrays
from gailkit.buffers.rollout import ImitationRolloutBuffer, NumbaRolloutBuffer

__all__ = ["ExpertMixReplayBuffer", "ImitationRolloutBuffer", "NumbaReplayBuffer", "NumbaRolloutBuffer", "ReplayArrays",
           "kernels", "trajectories_from_rollout"]
