"""World Models' C itself: a linear map from ``[z, h]`` (or ``z`` alone) to an action.

Its own module because both the CMA-ES search (:mod:`gailkit.worldmodels.controller`) and
the real-environment evaluation (:mod:`gailkit.worldmodels.train`) need it, and neither may
import the other (no import cycles).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from gailkit.errors import UsageError
from gailkit.worldmodels.model import WorldModel

__all__ = ["LinearController", "controller_for", "map_inputs", "memory_index", "shift_inputs", "with_memory",
           "without_memory"]


class LinearController:
    """``a = W [z, h] + b``: argmax for discrete actions, tanh scaled to the bounds for Box."""

    def __init__(self, in_dim: int, action_space: gym.Space):
        self.in_dim, self.action_space = in_dim, action_space
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.out_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.n_params = self.out_dim * (in_dim + 1)

    def act(self, params: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Batched: ``params (B, n_params)``, ``obs (B, in_dim)`` -> actions ``(B,)`` or ``(B, A)``."""
        W = params[:, : self.out_dim * self.in_dim].reshape(-1, self.out_dim, self.in_dim)
        b = params[:, self.out_dim * self.in_dim :]
        out = np.einsum("boi,bi->bo", W, obs) + b  # (B, out_dim)
        if self.discrete:
            return out.argmax(1)
        low, high = self.action_space.low, self.action_space.high
        return (low + (np.tanh(out) + 1) * 0.5 * (high - low)).astype(np.float32)


def controller_for(model: WorldModel, *, memory: bool = True, n_params: int | None = None) -> LinearController:
    """The controller over ``[z, h]`` (``memory=True``, V+M+C) or over ``z`` alone (the paper's V-only row).

    With ``n_params``, which of the two is inferred from the parameter count of a trained one.
    """
    z, h = model.latent_dim, model.mdn_config.hidden
    if n_params is not None:
        full, v_only = LinearController(z + h, model.action_space), LinearController(z, model.action_space)
        if n_params == full.n_params:
            return full
        if n_params == v_only.n_params:
            return v_only
        raise UsageError(f"controller parameters ({n_params}) fit neither [z, h] ({full.n_params}) nor z alone "
                         f"({v_only.n_params}) of this world model; was it trained with another one?")
    return LinearController(z + h if memory else z, model.action_space)


def _weights_and_bias(params: np.ndarray, in_dim: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``W (..., out_dim, in_dim)`` and ``b (..., out_dim)`` of linear controllers over ``in_dim`` inputs;
    UsageError naming ``what`` if ``params`` do not fit."""
    out_dim = params.shape[-1] // (in_dim + 1)
    if out_dim * (in_dim + 1) != params.shape[-1] or out_dim == 0:
        raise UsageError(f"{params.shape[-1]} controller parameters do not fit {what}")
    return (params[..., : out_dim * in_dim].reshape(*params.shape[:-1], out_dim, in_dim),
            params[..., out_dim * in_dim :])


def shift_inputs(params: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Parameters of a linear controller over ``x - offset`` as the same controller's over ``x``:
    ``W`` unchanged, ``b - W offset`` (``-offset`` maps back). ``params (..., n_params)``, batched over
    the leading axes; ``offset (in_dim,)`` fixes the layout. With ``offset = [0, mean of h]``, a
    search over the first parameters moves the bias only through what ``h`` varies with, not its mean."""
    params, offset = np.asarray(params, dtype=np.float64), np.asarray(offset, dtype=np.float64)
    W, b = _weights_and_bias(params, len(offset), f"an input offset of {len(offset)} values")
    return np.concatenate([params[..., : W.shape[-2] * W.shape[-1]], b - W @ offset], axis=-1)


def map_inputs(params: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Parameters of a linear controller over ``u = T x`` as the same controller's over ``x``: ``W T``, ``b``
    unchanged. ``params (..., n_params)``, batched over the leading axes; ``T (len(u), len(x))`` fixes the
    layout. With orthonormal rows, ``T.T`` maps a controller over ``x`` back to the nearest one over ``u``."""
    params, T = np.asarray(params, dtype=np.float64), np.asarray(T, dtype=np.float64)
    W, b = _weights_and_bias(params, T.shape[0], f"an input map from {T.shape[0]} inputs")
    return np.concatenate([(W @ T).reshape(*params.shape[:-1], -1), b], axis=-1)


def memory_index(model: WorldModel) -> np.ndarray:
    """Where a V-only controller's parameters sit among a V+M+C controller's: its weights on ``z``
    (each row's first ``latent_dim`` inputs), then its biases; the rest are the weights on ``h``."""
    small, full = controller_for(model, memory=False), controller_for(model)
    rows = np.arange(small.out_dim)[:, None] * full.in_dim + np.arange(small.in_dim)
    return np.concatenate([rows.ravel(), full.out_dim * full.in_dim + np.arange(small.out_dim)])


def all_but_z_weights(model: WorldModel) -> np.ndarray:
    """A V+M+C controller's parameters other than its weights on ``z``: those on ``h``, then the biases.
    A search over these alone holds the map from ``z`` where it starts (e.g. at V only's)."""
    z_weights = memory_index(model)[: -controller_for(model, memory=False).out_dim]
    return np.setdiff1d(np.arange(controller_for(model).n_params), z_weights)


def with_memory(model: WorldModel, v_only: np.ndarray) -> np.ndarray:
    """A V-only controller's parameters as a V+M+C controller's: the same map from ``z``, zero
    weights on ``h``; so the two act alike, and a search from there learns only what ``h`` adds."""
    small, full = controller_for(model, memory=False), controller_for(model)
    v_only = np.asarray(v_only, dtype=np.float64)
    if v_only.shape != (small.n_params,):
        raise UsageError(f"a V-only controller of this world model has {small.n_params} parameters, not "
                         f"{v_only.shape}")
    wide = np.zeros(full.n_params)
    wide[memory_index(model)] = v_only
    return wide


def without_memory(model: WorldModel, params: np.ndarray, h: np.ndarray | None = None) -> np.ndarray:
    """A V+M+C controller's parameters as a V-only controller's (the inverse of :func:`with_memory`):
    its weights on ``h`` dropped (``h`` taken as 0), or with ``h`` a constant ``(hidden,)`` (e.g.
    :func:`~gailkit.worldmodels.train.mean_memory`), their product with it folded into the bias.
    Evaluated beside the full controller, it shows what C does with ``z`` alone: whether the search
    learned to use ``h`` (M's ablation)."""
    small, full = controller_for(model, memory=False), controller_for(model)
    params = np.asarray(params, dtype=np.float64)
    if params.shape != (full.n_params,):
        raise UsageError(f"a V+M+C controller of this world model has {full.n_params} parameters, not "
                         f"{params.shape}")
    W = params[: full.out_dim * full.in_dim].reshape(full.out_dim, full.in_dim)
    bias = params[full.out_dim * full.in_dim:]
    if h is not None:
        bias = bias + W[:, small.in_dim:] @ np.asarray(h, dtype=np.float64)
    return np.concatenate([W[:, : small.in_dim].ravel(), bias])
