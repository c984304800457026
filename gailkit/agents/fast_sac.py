"""SB3's SAC with a faster, numerically equivalent ``train()``: the off-policy generator of DAC and SQIL.

:class:`FastSAC` is SB3's ``SAC`` (same actor, ``predict``, ``collect_rollouts``, schedules and
hyperparameters) whose gradient step does the same arithmetic with less overhead:

* for ReLU MLPs (SB3's ``MlpPolicy`` default) the gradients are written out by hand: each network's
  forward keeps its activations and the backward is a few matrix products and ReLU masks, so no
  autograd graph is built; other activations take an autograd step with the points below;
* the matrix products are torch's, and the element-wise work between them runs in fused Numba kernels
  (:mod:`gailkit.agents.sac_kernels`), each one pass over an activation: bias and ReLU after a
  bias-free product (a product with a bias first copies it into its output), the few-output heads
  as dot products, a ReLU's mask together with the bias gradient below it, a head's whole backward,
  the squashed Gaussian and its backward, the TD errors; every activation and gradient lives in
  buffers reused by every step, so a step allocates almost nothing;
* the twin critics are one :class:`TwinCritic`: layer ``k`` of all ``n_critics`` Q-networks is one
  stacked weight, run by one batched product in the written-out step and updated by one Adam
  kernel call; its state dict is SB3's ``ContinuousCritic``'s, so policies load either way;
* Adam for actor, critics and entropy coefficient as one Numba kernel per optimiser
  (:func:`~gailkit.agents.sac_kernels.adam_kernel`, the target critics' Polyak update in the
  critics' call), without the optimiser's Python layers: torch's fused Adam bit for bit, except that
  subnormal moments are flushed to zero, as the CPU's flush-to-zero mode would; the moments of dead
  ReLU units decay into subnormals and stay there, where they made torch's kernel 6x slower (a fifth
  of FastSAC's step on Hopper);
* the actor loss backpropagates into the actor alone (SB3 also computes critic weight gradients
  there and discards them at the next ``zero_grad``), through each critic on the rows where that
  critic is the minimum alone (elsewhere its gradient is exactly zero);
* the squashed Gaussian's log-probability in closed form from the standard-normal noise;
* minibatches gathered by the Numba replay kernel into arrays the learner owns (zero copy);
* exploration actions drawn by the same arithmetic as ``predict``'s without its layers, and SB3's
  training-mode switches (two per env step) set on a cached module list;
* losses kept as tensors and logged as means once per ``train()`` call.

Same seed, same initial weights and same random draws as SB3's SAC; the updates agree with SB3's
to float32 rounding (``tests/agents/test_fast_sac.py``).

``reward_max`` (opt-in, for rewards known to be bounded, as SQIL's are) clips the critics' TD target
to the largest soft value such rewards allow: ``(reward_max + alpha * |A| * log 2) / (1 - gamma)``,
the entropy of an action squashed into ``[-1, 1]^|A|`` being at most ``|A| log 2`` (the uniform's).
The clip applies to each sampled target, whose entropy term can pass that mean bound, so near the
bound it pulls the target a little low.

``matmul_dtype="bfloat16"`` (opt-in, experimental) runs the hidden-to-hidden products of the
written-out step in bfloat16 with float32 accumulation (twice float32's rate on CPUs with
AVX512-BF16 or AMX; elsewhere it is emulated, slower, and warned about); weights, optimiser state,
activations and gradients stay float32. Its updates are no longer SB3's to float32 rounding; its
learning curves match SB3's within seed noise on Pendulum and Hopper (3 seeds each,
``scripts/bench_sac.py --curves``).
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor, create_mlp
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, SACPolicy
from torch import nn

from gailkit.agents.sac_kernels import (
    adam_kernel,
    bias_relu,
    critic_errors,
    entropy_terms,
    head_backward,
    linear_rows,
    min_head_input_grad,
    polyak_kernel,
    relu_backward_rows,
    relu_backward_sum,
    relu_rows_input_grad,
    squash,
    squash_backward,
)
from gailkit.agents.sb3_adapter import begin_training, count_updates
from gailkit.buffers import NumbaReplayBuffer, ReplayArrays

__all__ = ["MATMUL_DTYPES", "FastSAC", "FastSACPolicy", "TwinCritic", "cpu_info", "squashed_action_log_prob"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
MATMUL_DTYPES: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16}  # None: no cast


@cache
def cpu_info() -> dict[str, Any]:
    """The CPU's model and its native bfloat16 instruction sets (``avx512_bf16``, ``amx_bf16``), read
    from ``/proc/cpuinfo``; ``{}`` where there is none (not Linux): then nothing is known."""
    info = Path("/proc/cpuinfo")
    if not info.exists():
        return {}
    lines = info.read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    return {"cpu": model, "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16"})}


class TwinCritic(BaseModel):
    """SB3's ``ContinuousCritic`` with the ``n_critics`` Q-networks' layers stacked.

    Layer ``k`` is ``weights[k]`` ``(n_critics, in, out)`` (``nn.Linear``'s weight transposed, so its
    gradient needs no copy) and ``biases[k]`` ``(n_critics, out)``: one tensor per layer for Adam
    and the Polyak update. Its ``forward`` (SB3's, for the autograd step and for users) runs one
    ``addmm`` per layer per network; FastSAC's written-out step runs all networks at once
    (:func:`_stacked_relu_mlp`).
    The state dict uses SB3's keys (``qf{i}.{j}.weight``, ``qf{i}.{j}.bias``) both ways.
    Arguments are ``ContinuousCritic``'s.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, net_arch: list[int],
                 features_extractor: BaseFeaturesExtractor, features_dim: int,
                 activation_fn: type[nn.Module] = nn.ReLU, normalize_images: bool = True, n_critics: int = 2,
                 share_features_extractor: bool = True):
        super().__init__(observation_space, action_space, features_extractor=features_extractor,
                         normalize_images=normalize_images)
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        # SB3's networks, built in SB3's order so that a seed gives SB3's initial weights
        nets = [create_mlp(features_dim + get_action_dim(action_space), 1, net_arch, activation_fn)
                for _ in range(n_critics)]
        self._sb3_index = [j for j, layer in enumerate(nets[0]) if isinstance(layer, nn.Linear)]
        self.weights = nn.ParameterList(torch.stack([net[j].weight.detach().T for net in nets])
                                        for j in self._sb3_index)
        self.biases = nn.ParameterList(torch.stack([net[j].bias.detach() for net in nets])
                                       for j in self._sb3_index)
        self.activation = activation_fn()
        self.register_state_dict_post_hook(self._to_sb3_keys)
        self.register_load_state_dict_pre_hook(self._from_sb3_keys)

    def q_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(n_critics, B, 1)`` Q-values of ``obs`` ``(B, *obs_shape)`` and ``actions`` ``(B, A)``."""
        with torch.set_grad_enabled(not self.share_features_extractor and torch.is_grad_enabled()):
            features = self.extract_features(obs, self.features_extractor)
        x = torch.cat([features, actions], dim=1)
        layers = [(w.unbind(0), b.unbind(0)) for w, b in zip(self.weights, self.biases)]  # backward: one stack
        return torch.stack([self._mlp(x, [(w[i], b[i]) for w, b in layers]) for i in range(self.n_critics)])

    def _mlp(self, x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One Q-network on ``x`` ``(B, in)``: ``(B, 1)``."""
        for k, (w, b) in enumerate(layers):
            x = torch.addmm(b, x, w)
            if k < len(layers) - 1:
                x = self.activation(x)
        return x

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """SB3's interface: one ``(B, 1)`` tensor per Q-network."""
        return tuple(self.q_values(obs, actions).unbind(0))

    def q1_forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B, 1)`` Q-values of the first network alone (features without gradient, as SB3)."""
        with torch.no_grad():
            features = self.extract_features(obs, self.features_extractor)
        first = [(w[0], b[0]) for w, b in zip(self.weights, self.biases)]
        return self._mlp(torch.cat([features, actions], dim=1), first)

    def _sb3_keys(self, prefix: str, k: int) -> list[tuple[str, str]]:
        """SB3's (weight, bias) keys of layer ``k`` for each Q-network."""
        j = self._sb3_index[k]
        return [(f"{prefix}qf{i}.{j}.weight", f"{prefix}qf{i}.{j}.bias") for i in range(self.n_critics)]

    @staticmethod
    def _to_sb3_keys(module: TwinCritic, state: OrderedDict, prefix: str, local_metadata: Any) -> None:
        layers = [(state.pop(f"{prefix}weights.{k}"), state.pop(f"{prefix}biases.{k}"), module._sb3_keys(prefix, k))
                  for k in range(len(module.weights))]
        for i in range(module.n_critics):  # SB3's order: network by network
            for weight, bias, keys in layers:
                wkey, bkey = keys[i]
                state[wkey], state[bkey] = weight[i].T.clone(), bias[i].clone()  # safetensors: no shared memory

    @staticmethod
    def _from_sb3_keys(module: TwinCritic, state: dict, prefix: str, *args: Any) -> None:
        for k in range(len(module.weights)):
            keys = module._sb3_keys(prefix, k)
            if all(wkey in state and bkey in state for wkey, bkey in keys):
                state[f"{prefix}weights.{k}"] = torch.stack([state.pop(wkey).T for wkey, _ in keys])
                state[f"{prefix}biases.{k}"] = torch.stack([state.pop(bkey) for _, bkey in keys])


class FastSACPolicy(SACPolicy):
    """SB3's ``SACPolicy`` (``MlpPolicy``) with :class:`TwinCritic` critics and fused Adam by default."""

    def __init__(self, *args: Any, optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, **kwargs: Any):
        if optimizer_class is torch.optim.Adam:
            optimizer_kwargs = {"fused": True, **(optimizer_kwargs or {})}
        super().__init__(*args, optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs, **kwargs)

    def set_training_mode(self, mode: bool) -> None:
        """SB3's (``training`` set on the policy and every module of actor and critic), skipped when they
        are already in ``mode``, else set straight on a cached list of those modules: SB3 switches twice
        per env step, and its ``Module.train`` walks the tree through ``__setattr__`` (~0.14 ms a pair)."""
        if mode == self.training == self.actor.training == self.critic.training:
            return
        cached = getattr(self, "_mode_modules", None)
        if cached is None or cached[0] is not self.actor or cached[1] is not self.critic:
            modules = [self, *self.actor.modules(), *self.critic.modules()]
            cached = self._mode_modules = (self.actor, self.critic, modules)
        for module in cached[2]:
            object.__setattr__(module, "training", mode)  # a plain attribute: Module.__setattr__ adds nothing

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> TwinCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return TwinCritic(**critic_kwargs).to(self.device)


def squashed_action_log_prob(actor: Actor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterised action ``(B, A)`` in [-1, 1] and its log-probability ``(B, 1)``.

    SB3's ``actor.action_log_prob`` with the same noise draw: ``u = mean + std * eps``,
    ``a = tanh(u)``, ``log p = sum(-eps^2 / 2 - log std - log(2 pi) / 2 - log(1 - a^2 + 1e-6))``
    (SB3 computes ``(u - mean) / std``, which is ``eps`` up to rounding).
    """
    mean, log_std, _ = actor.get_action_dist_params(obs)  # log_std clamped as in SB3
    action, log_prob, _ = _squash(mean, log_std, torch.empty_like(mean).normal_())
    return action, log_prob


def _squash(mean: torch.Tensor, log_std: torch.Tensor, eps: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`squashed_action_log_prob` from the Gaussian's parameters and noise; also ``std``."""
    std = log_std.exp()
    action = torch.tanh(torch.addcmul(mean, eps, std))
    log_prob = (0.5 * eps.square() + log_std + torch.log(1 - action.square() + 1e-6)).sum(dim=1, keepdim=True)
    return action, -(log_prob + mean.shape[1] * _HALF_LOG_2PI), std


def _graph_free_ok(policy: SACPolicy) -> bool:
    """Whether :meth:`FastSAC._graph_free_step` applies: ReLU MLPs (at least one hidden layer each) on
    parameter-free flattened features; anything else takes the autograd step."""
    actor, critic = policy.actor, policy.critic
    hidden = list(actor.latent_pi)  # Linear, ReLU, Linear, ReLU, ...
    relu_mlp = len(hidden) > 0 and len(hidden) % 2 == 0 and all(
        isinstance(m, nn.Linear if k % 2 == 0 else nn.ReLU) for k, m in enumerate(hidden))
    return (relu_mlp and isinstance(critic, TwinCritic) and isinstance(critic.activation, nn.ReLU)
            and len(critic.weights) > 1 and not actor.use_sde
            and all(type(m.features_extractor) is FlattenExtractor for m in (actor, critic)))


# ----- the gradient step written out: forward and backward of ReLU MLPs, no autograd graph ----------
def _numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of ``t`` (a parameter too)."""
    return t.detach().numpy()


class _Layer(NamedTuple):
    """A linear layer's weight ``(in, out)`` (stacked networks: ``(n, in, out)``) and bias ``(out,)``
    (``(n, out)``), or their gradient buffers, with NumPy views of both for the kernels (the bias's
    always 2-D: ``(1, out)`` for one network)."""

    w: torch.Tensor
    b: torch.Tensor
    w_np: np.ndarray
    b_np: np.ndarray

    @classmethod
    def of(cls, w: torch.Tensor, b: torch.Tensor) -> _Layer:
        bias = _numpy(b)
        return cls(w, b, _numpy(w), bias.reshape(-1, bias.shape[-1]))


class _Buffers:
    """Tensors that every gradient step reuses, each with its NumPy view, by name: the step allocates
    nothing it keeps, and converts nothing to NumPy, once they exist."""

    def __init__(self) -> None:
        self._store: dict[Any, tuple[torch.Tensor, np.ndarray]] = {}

    def get(self, name: Any, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
            ) -> tuple[torch.Tensor, np.ndarray]:
        """The buffer ``name`` of ``shape`` (made again if its shape changed), and its view."""
        hit = self._store.get(name)
        if hit is None or hit[1].shape != shape:
            t = torch.empty(shape, dtype=dtype)
            hit = self._store[name] = (t, t.numpy())
        return hit


class _Pass(NamedTuple):
    """What a forward pass keeps for its backward."""

    acts: list[torch.Tensor]  # every layer's input (float32), then the output
    arrays: list[np.ndarray]  # their NumPy views (the input's: None)
    low: dict[int, tuple[torch.Tensor, torch.Tensor]]  # layer k -> its input and weight in the low dtype

    def rows(self, index: slice) -> _Pass:
        """The pass of the rows ``index`` of the input alone (views)."""
        return _Pass([a[index] for a in self.acts], [None if a is None else a[index] for a in self.arrays],
                     {k: (x[index], w) for k, (x, w) in self.low.items()})


def _low_layers(layers: list[_Layer], dtype: torch.dtype | None, last_relu: bool = False) -> dict[int, torch.Tensor]:
    """The layers from one hidden activation to the next (the 256x256 ones, nearly all the FLOPs),
    their weight cast to ``dtype`` (stacked layers cast once for all their networks), for the passes
    below; empty if ``dtype`` is None."""
    if dtype is None:
        return {}
    return {k: layer.w.to(dtype) for k, layer in enumerate(layers) if k > 0 and (last_relu or k < len(layers) - 1)}


def _matmul_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
    """``out = a @ b`` (batched if 3-D), computed in ``a``'s dtype (float32 accumulation) and copied
    into the float32 ``out`` where that dtype is a lower one."""
    product = torch.bmm if a.dim() == 3 else torch.mm
    if a.dtype == out.dtype:
        product(a, b, out=out)
    else:
        out.copy_(product(a, b))


def _relu_mlp(x: torch.Tensor, layers: list[_Layer], buffers: _Buffers, name: str,
              low: dict[int, torch.Tensor] | None = None) -> _Pass:
    """``x`` ``(B, in)`` through ``layers``, each followed by a ReLU (an actor's hidden layers): a
    product, then bias and ReLU in one pass (:func:`~gailkit.agents.sac_kernels.bias_relu`), into
    ``buffers`` under ``name``. ``low`` (from :func:`_low_layers`) holds the layers whose products run
    in a low dtype (float32 accumulation, the output rounded to it); biases, activations and
    gradients stay float32."""
    acts, arrays, kept = [x], [None], {}
    for k, layer in enumerate(layers):
        h, h_np = buffers.get((name, k), (len(x), layer.w.shape[-1]))
        if low and k in low:
            kept[k] = x.to(low[k].dtype), low[k]
        _matmul_into(*kept.get(k, (x, layer.w)), h)
        bias_relu(h_np[None], layer.b_np)
        acts.append(h)
        arrays.append(h_np)
        x = h
    return _Pass(acts, arrays, kept)


def _stacked_relu_mlp(x: torch.Tensor, layers: list[_Layer], buffers: _Buffers, name: str,
                      low: dict[int, torch.Tensor]) -> _Pass:
    """:func:`_relu_mlp` of ``n`` Q-networks (at least one hidden layer, one output) on the same
    input ``x`` ``(B, in)``, their layers stacked (a :class:`TwinCritic`'s): one batched product and
    one pass of bias and ReLU per hidden layer for all, and the heads as dot products
    (:func:`~gailkit.agents.sac_kernels.linear_rows`). The activations are ``(n, B, out)``."""
    n, last = len(layers[0].w), len(layers) - 1
    acts, arrays, kept, h = [x], [None], {}, x.expand(n, *x.shape)
    for k, layer in enumerate(layers[:last]):
        out, out_np = buffers.get((name, k), (n, len(x), layer.w.shape[-1]))
        if k in low:
            kept[k] = h.to(low[k].dtype), low[k]
        _matmul_into(*kept.get(k, (h, layer.w)), out)
        bias_relu(out_np, layer.b_np)
        acts.append(out)
        arrays.append(out_np)
        h = out
    q, q_np = buffers.get((name, last), (n, len(x), 1))
    linear_rows(arrays[-1], layers[last].w_np.reshape(n, 1, -1), layers[last].b_np, q_np)  # (n, H, 1) as (n, 1, H)
    acts.append(q)
    arrays.append(q_np)
    return _Pass(acts, arrays, kept)


def _stacked_backward(run: _Pass, layers: list[_Layer], grads: list[_Layer], dq: np.ndarray,
                      buffers: _Buffers, name: str) -> None:
    """The parameter gradients of a :func:`_stacked_relu_mlp` run from ``dq`` ``(n, B, 1)``, the
    loss's gradient in the Q-values, written into ``grads``. The heads' backward and every ReLU's
    are fused with the bias gradients below them (:mod:`~gailkit.agents.sac_kernels`)."""
    n, last = len(layers[0].w), len(layers) - 1
    d, d_np = buffers.get((name, "d", last), run.arrays[last].shape)
    head_backward(dq, layers[last].w_np.reshape(n, 1, -1), run.arrays[last], d_np,
                  grads[last].w_np.reshape(n, 1, -1), grads[last].b_np, grads[last - 1].b_np)
    for k in reversed(range(last)):
        x, w = run.low.get(k, (run.acts[k], layers[k].w))
        if k == 0:
            x = x.expand(n, *x.shape)
        d_low = d.to(x.dtype)
        _matmul_into(x.transpose(1, 2), d_low, grads[k].w)
        if k == 0:
            return
        d, d_np = buffers.get((name, "d", k), run.arrays[k].shape)
        _matmul_into(d_low, w.transpose(1, 2), d)
        relu_backward_sum(d_np, run.arrays[k], grads[k - 1].b_np)


def _min_input_grad(run: _Pass, layers: list[_Layer], g: float, out: np.ndarray, buffers: _Buffers,
                    name: str) -> float:
    """The gradient of ``g * sum_r min_i Q_i(row r)`` in the last ``out.shape[1]`` input columns (the
    actions), written into ``out`` ``(B, A)``, from a :func:`_stacked_relu_mlp` run; returns
    ``sum_r min_i Q_i``. Each row backpropagates through the network that attains its minimum
    alone (elsewhere a network's gradient is exactly zero): the rows are grouped by that network
    (:func:`~gailkit.agents.sac_kernels.min_head_input_grad`), one product per network and layer."""
    n, last = len(layers[0].w), len(layers) - 1
    batch = len(out)
    order, order_np = buffers.get((name, "order"), (batch,), torch.int64)
    _, counts = buffers.get((name, "counts"), (n,), torch.int64)
    d, d_np = buffers.get((name, "d", last), (batch, layers[last].w.shape[1]))
    total = min_head_input_grad(run.arrays[last + 1], g, layers[last].w_np.reshape(n, -1), run.arrays[last],
                                order_np, counts, d_np)
    start = 0
    for i in range(n):
        stop = start + int(counts[i])
        rows, block, block_np = order_np[start:stop], d[start:stop], d_np[start:stop]
        for k in range(last - 1, 0, -1):
            w = run.low[k][1][i] if k in run.low else layers[k].w[i]
            nxt, nxt_np = buffers.get((name, "d", k), (batch, w.shape[0]))
            _matmul_into(block.to(w.dtype), w.T, nxt[start:stop])
            block, block_np = nxt[start:stop], nxt_np[start:stop]
            if k > 1:
                relu_backward_rows(block_np, run.arrays[k][i], rows)
        # the first hidden layer's ReLU, and the product with the action rows of the first weight
        relu_rows_input_grad(block_np, run.arrays[1][i], rows, layers[0].w_np[i][-out.shape[1]:], out)
        start = stop
    return total


def _relu_mlp_backward(run: _Pass, layers: list[_Layer], grads: list[_Layer], d: torch.Tensor,
                       buffers: _Buffers, name: str) -> None:
    """The weight gradients of the :func:`_relu_mlp` ``run`` (``nn.Linear`` layers), and the bias
    gradients below its last layer, written into ``grads``, from ``d``: the gradient at the last
    layer's output through its ReLU, whose bias gradient the caller has written. ``acts[k]``
    (``k > 0``) is the output of ReLU ``k``, so ``acts[k] > 0`` is its derivative's mask; each mask
    is applied with the bias gradient below it."""
    for k in reversed(range(len(layers))):
        x, w = run.low.get(k, (run.acts[k], layers[k].w))
        d_low = d.to(x.dtype)
        _matmul_into(d_low.T, x, grads[k].w.T)  # the weight's gradient in nn.Linear's (out, in) layout: d^T x
        if k == 0:
            return
        d, d_np = buffers.get((name, "d", k), run.arrays[k].shape)
        _matmul_into(d_low, w.T, d)
        relu_backward_sum(d_np[None], run.arrays[k][None], grads[k - 1].b_np)


def _heads(latent: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """``out = latent @ weight.T + bias`` ``(B, O)`` for heads with few outputs (weight ``(O, in)``,
    ``nn.Linear``'s layout): one pass of dot products (:func:`~gailkit.agents.sac_kernels.linear_rows`)."""
    linear_rows(latent[None], weight[None], bias[None], out[None])


def _heads_backward(d_out: np.ndarray, latent: np.ndarray, weight: np.ndarray, grads: list[_Layer],
                    below_bias_grad: np.ndarray, buffers: _Buffers) -> tuple[torch.Tensor, np.ndarray]:
    """The backward of :func:`_heads` on ReLU outputs ``latent``, from ``d_out`` ``(B, O)``: each
    head's gradients written into ``grads`` (in order), the bias gradient below into
    ``below_bias_grad``; returns the gradient into the heads' input through its ReLU, and its view
    (:func:`~gailkit.agents.sac_kernels.head_backward`)."""
    w_grad, w_grad_np = buffers.get("heads w_grad", weight.shape)
    b_grad, b_grad_np = buffers.get("heads b_grad", weight.shape[:1])
    d_in, d_in_np = buffers.get("heads d_in", latent.shape)
    head_backward(d_out[None], weight[None], latent[None], d_in_np[None], w_grad_np[None], b_grad_np[None],
                  below_bias_grad)
    start = 0
    for layer in grads:
        stop = start + len(layer.b)
        layer.w.T.copy_(w_grad[start:stop])
        layer.b.copy_(b_grad[start:stop])
        start = stop
    return d_in, d_in_np


class _AdamArrays(NamedTuple):
    """What :func:`_adam_step` hands :func:`adam_kernel` for one optimiser: flat NumPy views of its
    params, grads, exp_avgs and exp_avg_sqs, and of its step counts (one-element views)."""

    key: tuple[Any, ...]  # (optimizer.state, its parameter list, the grads list): rebuilt when any is another object
    arrays: tuple[tuple[np.ndarray, ...], ...]
    steps: tuple[np.ndarray, ...]


_ADAM_ARRAYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # optimiser -> _AdamArrays, where it applies


def _adam_arrays(optimizer: torch.optim.Optimizer, grads: list[torch.Tensor]) -> _AdamArrays | None:
    """The optimiser's :class:`_AdamArrays`, cached (``load_state_dict`` makes a new ``state``, so the
    key changes), or None where :func:`adam_kernel` does not apply: several groups, options other than
    torch's fused default (amsgrad, maximize, weight decay), no state yet (before the first step), or
    tensors that are not contiguous float32 on the CPU."""
    params = optimizer.param_groups[0]["params"]
    key = (optimizer.state, params, grads)
    cached = _ADAM_ARRAYS.get(optimizer)
    if cached is not None and all(a is b for a, b in zip(cached.key, key, strict=True)):
        return cached
    group = optimizer.param_groups[0]
    if (len(optimizer.param_groups) != 1 or not group.get("fused") or group["amsgrad"] or group["maximize"]
            or group["weight_decay"] or group.get("decoupled_weight_decay") or group.get("differentiable")
            or any(p not in optimizer.state for p in params)):
        return None
    states = [optimizer.state[p] for p in params]
    groups = (params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states])
    steps = [s["step"] for s in states]
    if not all(t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu"
               for g in (*groups, steps) for t in g):
        return None
    arrays = tuple(tuple(t.detach().numpy().reshape(-1) for t in g) for g in groups)
    cached = _ADAM_ARRAYS[optimizer] = _AdamArrays(key, arrays, tuple(t.numpy().reshape(1) for t in steps))
    return cached


def _adam_step(optimizer: torch.optim.Optimizer, grads: list[torch.Tensor],
               polyak: tuple[tuple[np.ndarray, ...], float] | None = None) -> None:
    """``optimizer.step()`` of a one-group fused ``Adam`` with ``grads`` (one per parameter, in the
    group's order; pass the same list every step), minus its Python layers: the same step count, and
    :func:`adam_kernel` (torch's fused kernel, subnormal moments flushed) on the same state tensors.
    The first step (no state yet) and other optimisers go through ``step()``. ``polyak``
    (``(targets, tau)``, targets as flat views in the group's order) averages the updated parameters
    into the targets (SB3's ``polyak_update``), in the kernel's call where it applies."""
    prepared = _adam_arrays(optimizer, grads)
    if prepared is None:
        for p, g in zip(optimizer.param_groups[0]["params"], grads, strict=True):
            p.grad = g
        optimizer.step()
        if polyak is not None:
            polyak_kernel(polyak[0], tuple(_numpy(p).reshape(-1) for p in optimizer.param_groups[0]["params"]),
                          polyak[1])
        return
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    targets, tau = polyak if polyak is not None else (prepared.arrays[0], 0.0)  # no averaging with tau 0
    adam_kernel(*prepared.arrays, prepared.steps, float(group["lr"]), float(beta1), float(beta2), float(group["eps"]),
                targets, tau)


class _Views(NamedTuple):
    """What the graph-free step reads and writes, as views built once per policy: layers as
    :class:`_Layer` (weights ``(in, out)``), gradient buffers in the same layout, and the buffers
    again in each optimiser's parameter order."""

    policy: SACPolicy
    hidden: list[_Layer]  # the actor's hidden layers
    heads: list[_Layer]  # its mean and log-std heads
    actor_grads: list[_Layer]  # hidden, then heads
    actor_grad_list: list[torch.Tensor]
    critic_stack: list[_Layer]  # the Q-networks' layers stacked: (n, in, out), (n, out)
    critic_grads: list[_Layer]  # stacked
    critic_grad_list: list[torch.Tensor]
    targets: list[_Layer]  # stacked
    targets_flat: tuple[np.ndarray, ...]  # the target critics' parameters, flat, in the critic optimiser's order

    @classmethod
    def build(cls, policy: SACPolicy) -> _Views:
        actor, critic, target = policy.actor, policy.critic, policy.critic_target
        linears = [m for m in actor.latent_pi if isinstance(m, nn.Linear)] + [actor.mu, actor.log_std]
        grad = {p: torch.zeros_like(p) for p in (*actor.parameters(), *critic.parameters())}
        for p, g in grad.items():
            p.grad = g  # SB3 leaves the last gradients there too
        actor_layers = [_Layer.of(m.weight.T, m.bias) for m in linears]
        actor_grads = [_Layer.of(grad[m.weight].T, grad[m.bias]) for m in linears]
        return cls(policy, actor_layers[:-2], actor_layers[-2:], actor_grads,
                   [grad[p] for p in actor.optimizer.param_groups[0]["params"]],
                   [_Layer.of(w, b) for w, b in zip(critic.weights, critic.biases, strict=True)],
                   [_Layer.of(grad[w], grad[b]) for w, b in zip(critic.weights, critic.biases, strict=True)],
                   [grad[p] for p in critic.optimizer.param_groups[0]["params"]],
                   [_Layer.of(w, b) for w, b in zip(target.weights, target.biases, strict=True)],
                   tuple(_numpy(dict(zip(critic.parameters(), target.parameters(), strict=True))[p]).reshape(-1)
                         for p in critic.optimizer.param_groups[0]["params"]))


class FastSAC(SAC):
    """SB3's SAC with the gradient step of the module docstring (``"MlpPolicy"`` only, no gSDE)."""

    policy_aliases: ClassVar[dict[str, type]] = {"MlpPolicy": FastSACPolicy}
    policy: FastSACPolicy
    critic: TwinCritic
    critic_target: TwinCritic

    def __init__(self, *args: Any, matmul_dtype: str = "float32", reward_max: float | None = None, **kwargs: Any):
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {sorted(MATMUL_DTYPES)}, got {matmul_dtype!r}")
        if reward_max is not None and not math.isfinite(reward_max):
            raise ValueError(f"reward_max must be a finite number or None, got {reward_max!r}")
        self.matmul_dtype = matmul_dtype
        self.reward_max = reward_max
        if matmul_dtype == "bfloat16" and cpu_info().get("cpu_bf16") == []:
            warnings.warn("this CPU has no native bfloat16 products (neither AVX512-BF16 nor AMX): "
                          "matmul_dtype='bfloat16' is emulated and likely slower than 'float32'", stacklevel=2)
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        if self.use_sde:
            raise ValueError("FastSAC does not implement gSDE; use stable_baselines3.SAC")
        if self.reward_max is not None and not self.gamma < 1:
            raise ValueError(f"reward_max bounds the soft value by a geometric sum: it needs gamma < 1, "
                             f"got {self.gamma}")
        super()._setup_model()
        if self.ent_coef_optimizer is not None:
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1), fused=True)
        self._ent_coef_grad = [torch.zeros(1)]  # reused, so the optimiser's arrays stay cached
        self._batch: ReplayArrays | None = None
        self._graph_free = _graph_free_ok(self.policy)
        self._low_dtype = MATMUL_DTYPES[self.matmul_dtype]
        if self._low_dtype is not None and not self._graph_free:
            raise ValueError(f"matmul_dtype={self.matmul_dtype!r} needs ReLU MLPs on flattened observations "
                             "(the default MlpPolicy); use matmul_dtype='float32'")
        self._views: _Views | None = None
        self._buffers, self._explore_buffers = _Buffers(), _Buffers()  # the step's and exploration's

    def _sample(self, batch_size: int) -> ReplayBufferSamples:
        """A minibatch; the Numba buffer gathers it into storage reused by every step."""
        buf, env = self.replay_buffer, self.get_vec_normalize_env()
        if not isinstance(buf, NumbaReplayBuffer):
            return buf.sample(batch_size, env=env)
        if self._batch is None or len(self._batch.rewards) != batch_size:
            self._batch = buf.batch_arrays(batch_size)
        return buf.sample_into(self._batch, env=env)

    def _policy_views(self) -> _Views:
        """The current policy's :class:`_Views`, built again when the policy object changed (a load)."""
        if self._views is None or self._views.policy is not self.policy:
            self._views = _Views.build(self.policy)
        return self._views

    def _sample_action(self, learning_starts: int, action_noise: ActionNoise | None = None,
                       n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """SB3's, with the policy's action drawn by :meth:`_explore` rather than through ``predict``
        (its checks of the observation, its ``Normal`` object: ~0.2 ms an env step), bit for bit the same."""
        if not self._graph_free or self.num_timesteps < learning_starts or not isinstance(self._last_obs, np.ndarray):
            return super()._sample_action(learning_starts, action_noise, n_envs)
        policy = self.policy
        scaled_action = policy.scale_action(policy.unscale_action(self._explore(self._last_obs)))  # as predict
        if action_noise is not None:
            scaled_action = np.clip(scaled_action + action_noise(), -1, 1)
        return policy.unscale_action(scaled_action), scaled_action

    def _explore(self, obs: np.ndarray) -> np.ndarray:
        """The actor's stochastic actions in [-1, 1] for a batch of observations, as SB3's
        ``actor(obs)`` computes them: ``tanh(mean + eps * std)``, ``eps`` drawn by ``normal_``."""
        v = self._policy_views()
        with torch.no_grad():
            x = self.actor.extract_features(torch.as_tensor(obs, device=self.device), self.actor.features_extractor)
            latent = _relu_mlp(x, v.hidden, self._explore_buffers, "explore").acts[-1]
            mean_head, log_std_head = v.heads
            mean = torch.addmm(mean_head.b, latent, mean_head.w)
            std = torch.addmm(log_std_head.b, latent, log_std_head.w).clamp_(LOG_STD_MIN, LOG_STD_MAX).exp_()
            return torch.tanh(mean + torch.empty_like(mean).normal_() * std).cpu().numpy()

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        begin_training(self, optimizers)
        losses = torch.stack([self._step(self._sample(batch_size), polyak=step % self.target_update_interval == 0)
                              for step in range(gradient_steps)]).mean(dim=0).tolist()
        self.logger.record("train/n_updates", count_updates(self, gradient_steps), exclude="tensorboard")
        for name, value in zip(("ent_coef", "actor_loss", "critic_loss", "ent_coef_loss"), losses):
            if name != "ent_coef_loss" or self.ent_coef_optimizer is not None:
                self.logger.record(f"train/{name}", value)

    def _step(self, data: ReplayBufferSamples, *, polyak: bool) -> torch.Tensor:
        """One gradient step of SB3's SAC; returns (ent_coef, actor loss, critic loss, ent_coef loss)."""
        if self._graph_free:
            with torch.no_grad():
                return self._graph_free_step(data, polyak=polyak)
        actions_pi, log_prob = squashed_action_log_prob(self.actor, data.observations)
        ent_coef, ent_coef_loss = self._update_ent_coef(log_prob)
        discounts = data.discounts if data.discounts is not None else self.gamma
        with torch.no_grad():
            next_actions, next_log_prob = squashed_action_log_prob(self.actor, data.next_observations)
            next_q = self.critic_target.q_values(data.next_observations, next_actions).amin(dim=0)  # (B, 1)
            target_q = data.rewards + (1 - data.dones) * discounts * (next_q - ent_coef * next_log_prob)
            if self.reward_max is not None:
                target_q = target_q.clamp(max=self.target_max(ent_coef.item()))
        q = self.critic.q_values(data.observations, data.actions)  # (n_critics, B, 1)
        critic_loss = 0.5 * q.shape[0] * F.mse_loss(q, target_q.expand_as(q))  # SB3: 0.5 * sum of per-net MSEs
        self._minimise(self.critic.optimizer, critic_loss)
        min_q_pi = self.critic.q_values(data.observations, actions_pi).amin(dim=0)
        actor_loss = (ent_coef * log_prob - min_q_pi).mean()
        self._minimise(self.actor.optimizer, actor_loss)
        if polyak:
            self._polyak()
        return torch.stack([ent_coef.reshape(()), actor_loss.detach(), critic_loss.detach(), ent_coef_loss])

    def _graph_free_step(self, data: ReplayBufferSamples, *, polyak: bool) -> torch.Tensor:
        """:meth:`_step` with the gradients written out (ReLU MLPs, parameter-free features): the same
        arithmetic as autograd's, in SB3's order, without building a graph, in buffers reused by every
        step. Runs under ``no_grad``."""
        v, low, buffers = self._policy_views(), self._low_dtype, self._buffers
        features = self.actor.features_extractor  # parameter-free, so the critics' features are the same
        obs = self.actor.extract_features(data.observations, features)
        batch, n_actions = obs.shape[0], data.actions.shape[1]
        # the actor on obs and next_obs in one pass (same weights); the obs half is kept for its backward
        next_obs = self.actor.extract_features(data.next_observations, features)
        both = _relu_mlp(torch.cat([obs, next_obs]), v.hidden, buffers, "actor", _low_layers(v.hidden, low, True))
        run = both.rows(slice(0, batch))
        head_w, head_w_np = buffers.get("heads w", (2 * n_actions, both.acts[-1].shape[1]))
        head_b, head_b_np = buffers.get("heads b", (2 * n_actions,))
        torch.cat([layer.w.T for layer in v.heads], out=head_w)  # nn.Linear's layout: mean's rows, then log-std's
        torch.cat([layer.b for layer in v.heads], out=head_b)
        heads, heads_np = buffers.get("heads", (2 * batch, 2 * n_actions))  # mean, then the unclamped log-std
        _heads(both.arrays[-1], head_w_np, head_b_np, heads_np)
        eps, eps_np = buffers.get("eps", (2 * batch, n_actions))
        eps[:batch].normal_()  # as SB3 draws them: obs's noise, then next_obs's
        eps[batch:].normal_()
        action, action_np = buffers.get("action", (2 * batch, n_actions))
        std, std_np = buffers.get("std", (2 * batch, n_actions))
        _, log_probs_np = buffers.get("log_prob", (2 * batch, 1))
        squash(heads_np, eps_np, LOG_STD_MIN, LOG_STD_MAX, action_np, std_np, log_probs_np)
        ent_coef, ent_coef_loss = self._graph_free_ent_coef(log_probs_np[:batch])
        alpha = ent_coef.item()
        # the critics' target
        next_x = torch.cat([next_obs, action[batch:]], 1)
        next_q = _stacked_relu_mlp(next_x, v.targets, buffers, "target", _low_layers(v.targets, low)).arrays[-1]
        # critic step: 0.5 * sum over critics of the MSE to the target
        x = torch.cat([obs, data.actions], 1)
        runs = _stacked_relu_mlp(x, v.critic_stack, buffers, "critic", _low_layers(v.critic_stack, low))
        errors, errors_np = buffers.get("errors", runs.arrays[-1].shape)  # (n, B, 1): d loss / d q
        discounts = data.discounts.numpy() if data.discounts is not None else np.empty((0, 1), np.float32)
        critic_loss = torch.tensor(critic_errors(
            runs.arrays[-1], next_q, data.rewards.numpy(), data.dones.numpy(), discounts, self.gamma, alpha,
            log_probs_np[batch:], self.target_max(alpha), errors_np))
        _stacked_backward(runs, v.critic_stack, v.critic_grads, errors_np, buffers, "critic")
        # the targets' Polyak update follows the critics' (the actor step does not touch either)
        _adam_step(self.critic.optimizer, v.critic_grad_list, (v.targets_flat, self.tau) if polyak else None)
        # actor step: mean of ent_coef * log_prob - min_i Q_i(obs, action_pi), with the updated critics
        x_pi = torch.cat([obs, action[:batch]], 1)
        runs = _stacked_relu_mlp(x_pi, v.critic_stack, buffers, "pi", _low_layers(v.critic_stack, low))
        d_action, d_action_np = buffers.get("d_action", (batch, n_actions))
        min_q_sum = _min_input_grad(runs, v.critic_stack, -1 / batch, d_action_np, buffers, "pi")
        actor_loss = torch.tensor(alpha * float(log_probs_np[:batch].mean()) - min_q_sum / batch)
        # through tanh and the log-probability (eps, the sampled noise, is a constant), into the heads
        d_heads, d_heads_np = buffers.get("d_heads", (batch, 2 * n_actions))
        squash_backward(d_action_np, action_np[:batch], eps_np[:batch], std_np[:batch], heads_np[:batch],
                        LOG_STD_MIN, LOG_STD_MAX, float(np.float32(alpha) / np.float32(batch)), d_heads_np)
        d_latent, _ = _heads_backward(d_heads_np, run.arrays[-1], head_w_np, v.actor_grads[-2:],
                                      v.actor_grads[-3].b_np, buffers)
        _relu_mlp_backward(run, v.hidden, v.actor_grads[:-2], d_latent, buffers, "actor")
        _adam_step(self.actor.optimizer, v.actor_grad_list)
        return torch.stack([ent_coef.reshape(()), actor_loss, critic_loss, ent_coef_loss])

    def target_max(self, ent_coef: float) -> float:
        """The ceiling of the critics' TD target at entropy coefficient ``ent_coef``: the largest soft
        value that rewards up to ``reward_max`` allow (the module docstring), inf without ``reward_max``."""
        if self.reward_max is None:
            return math.inf
        return (self.reward_max + ent_coef * get_action_dim(self.action_space) * math.log(2)) / (1 - self.gamma)

    def _polyak(self) -> None:
        """SB3's ``polyak_update`` of the target critics, in two foreach calls."""
        with torch.no_grad():
            target, online = list(self.critic_target.parameters()), list(self.critic.parameters())
            torch._foreach_mul_(target, 1 - self.tau)
            torch._foreach_add_(target, online, alpha=self.tau)

    def _graph_free_ent_coef(self, log_prob: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_update_ent_coef` with the gradient of its loss written out (``log_prob`` ``(B, 1)``)."""
        if self.ent_coef_optimizer is None:
            return self.ent_coef_tensor, torch.tensor(math.nan)
        ent_coef = self.log_ent_coef.exp()  # this step's, before the update
        mean_shifted, loss = entropy_terms(log_prob, self.target_entropy, self.log_ent_coef.item())
        self._ent_coef_grad[0].fill_(-mean_shifted)
        _adam_step(self.ent_coef_optimizer, self._ent_coef_grad)
        return ent_coef, torch.tensor(-loss)

    def _update_ent_coef(self, log_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The entropy coefficient of this step (before its own update) and its loss (NaN if fixed)."""
        if self.ent_coef_optimizer is None:
            return self.ent_coef_tensor, torch.tensor(math.nan)
        ent_coef = self.log_ent_coef.detach().exp()
        loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
        self._minimise(self.ent_coef_optimizer, loss)
        return ent_coef, loss.detach()

    @staticmethod
    def _minimise(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One step of ``optimizer`` on ``loss``, with gradients only for its own parameters."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        optimizer.zero_grad()
        loss.backward(inputs=params)
        optimizer.step()
