"""SB3's SAC with a faster, numerically equivalent ``train()``: the off-policy generator of DAC and SQIL.

:class:`FastSAC` is SB3's ``SAC`` (same actor, ``predict``, ``collect_rollouts``, schedules and
hyperparameters) whose gradient step does the same arithmetic with less overhead:

* for ReLU MLPs (SB3's ``MlpPolicy`` default) the gradients are written out by hand: each network's
  forward keeps its activations and the backward is a few matrix products and ReLU masks, so no
  autograd graph is built; other activations take an autograd step with the points below;
* the twin critics are one :class:`TwinCritic`: layer ``k`` of all ``n_critics`` Q-networks is one
  stacked weight, run by one batched product in the written-out step and updated by one Adam
  kernel call and one Polyak call; its state dict is SB3's ``ContinuousCritic``'s, so policies load
  either way;
* the Q heads' input gradient (one output column, so an outer product) as a broadcast multiply, the
  same bits as the matrix product at a tenth of its cost;
* Adam for actor, critics and entropy coefficient as one Numba kernel per optimiser (:func:`adam_kernel`),
  without the optimiser's Python layers: torch's fused Adam bit for bit, except that subnormal moments
  are flushed to zero, as the CPU's flush-to-zero mode would; the moments of dead ReLU units decay into
  subnormals and stay there, where they made torch's kernel 6x slower (a fifth of FastSAC's step on Hopper);
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
from numba import njit, types
from numba.extending import intrinsic
from stable_baselines3 import SAC
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor, create_mlp
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, SACPolicy
from torch import nn

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

    def layers(self) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per Q-network, its layers' ``(weight (in, out), bias)`` (views of the stacked parameters)."""
        return [[(w[i], b[i]) for w, b in zip(self.weights, self.biases)] for i in range(self.n_critics)]

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
    """Whether :meth:`FastSAC._graph_free_step` applies: ReLU MLPs (at least one hidden layer) on
    parameter-free flattened features; anything else takes the autograd step."""
    actor, critic = policy.actor, policy.critic
    hidden = list(actor.latent_pi)  # Linear, ReLU, Linear, ReLU, ...
    relu_mlp = len(hidden) > 0 and len(hidden) % 2 == 0 and all(
        isinstance(m, nn.Linear if k % 2 == 0 else nn.ReLU) for k, m in enumerate(hidden))
    return (relu_mlp and isinstance(critic, TwinCritic) and isinstance(critic.activation, nn.ReLU)
            and not actor.use_sde and all(type(m.features_extractor) is FlattenExtractor for m in (actor, critic)))


# ----- the gradient step written out: forward and backward of ReLU MLPs, no autograd graph ----------
class _Pass(NamedTuple):
    """What :func:`_relu_mlp` keeps for :func:`_relu_mlp_backward`."""

    acts: list[torch.Tensor]  # every layer's input (float32), then the output
    low: dict[int, tuple[torch.Tensor, torch.Tensor]]  # layer k -> its input and weight in the low dtype

    def rows(self, index: slice) -> _Pass:
        """The pass of the rows ``index`` of the input alone (views)."""
        return _Pass([a[index] for a in self.acts], {k: (x[index], w) for k, (x, w) in self.low.items()})

    def network(self, i: int) -> _Pass:
        """Network ``i``'s pass of a :func:`_stacked_relu_mlp` run (views), for :func:`_relu_mlp_backward`."""
        low = {k: (x[i], w[i]) for k, (x, w) in self.low.items()}
        return _Pass([self.acts[0], *(a[i] for a in self.acts[1:])], low)

    def masks(self, rows: torch.Tensor) -> _Pass:
        """The pass of the input rows ``rows`` (indices), with what an input gradient needs alone: the
        hidden activations (the ReLU masks) and the low-dtype weights; inputs and output are left empty."""
        hidden = [a.index_select(0, rows) for a in self.acts[1:-1]]
        return _Pass([self.acts[0][:0], *hidden, self.acts[-1][:0]], {k: (x[:0], w) for k, (x, w) in self.low.items()})


def _relu_mlp(x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]], *, last_relu: bool = False,
              low: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None) -> _Pass:
    """``x`` through ``layers`` (``(weight (in, out), bias)``), ReLU between them (and after the last
    if ``last_relu``). ``low`` (from :func:`_low_layers`) holds the layers whose products run in a low
    dtype (float32 accumulation, the output rounded to it), their weight and bias cast to it; the
    other layers, every activation and every gradient stay float32."""
    acts, kept = [x], {}
    for k, (w, b) in enumerate(layers):
        if low and k in low:
            w_low, b_low = low[k]
            kept[k] = x.to(w_low.dtype), w_low
            x = torch.addmm(b_low, *kept[k]).float()
        else:
            x = torch.addmm(b, x, w)
        if last_relu or k < len(layers) - 1:
            x = x.relu_()
        acts.append(x)
    return _Pass(acts, kept)


def _low_layers(layers: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype | None,
                last_relu: bool = False) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``low`` for :func:`_relu_mlp` and :func:`_stacked_relu_mlp`: the layers from one hidden
    activation to the next (the 256x256 ones, nearly all the FLOPs), weight and bias cast to ``dtype``
    (stacked layers cast once for all their networks); empty if ``dtype`` is None."""
    if dtype is None:
        return {}
    return {k: (w.to(dtype), b.to(dtype)) for k, (w, b) in enumerate(layers)
            if k > 0 and (last_relu or k < len(layers) - 1)}


def _stacked_relu_mlp(x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]],
                      low: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> _Pass:
    """:func:`_relu_mlp` of ``n`` networks on the same input ``x`` ``(B, in)``, their layers stacked
    (``(weight (n, in, out), bias (n, out))``, a :class:`TwinCritic`'s): one batched
    product and one element-wise pass per layer for all. The activations are stacked ``(n, B, out)``
    (``acts[0]`` is ``x``). The last layer (one output) is one product per network: a batched product
    with one output column rounds differently from ``addmm``; the others give ``addmm``'s bits."""
    n, last = len(layers[0][0]), len(layers) - 1
    acts, kept, h = [x], {}, x.expand(n, *x.shape)
    for k, (w, b) in enumerate(layers):
        if k == last:
            out = h.new_empty(n, h.shape[1], w.shape[-1])
            for i in range(n):
                torch.addmm(b[i], h[i], w[i], out=out[i])
            h = out
        elif k in low:
            w_low, b_low = low[k]
            kept[k] = h.to(w_low.dtype), w_low
            h = torch.baddbmm(b_low.unsqueeze(1), *kept[k]).float().relu_()
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, w).relu_()
        acts.append(h)
    return _Pass(acts, kept)


def _stacked_backward(run: _Pass, layers: list[tuple[torch.Tensor, torch.Tensor]],
                      grads: list[tuple[torch.Tensor, torch.Tensor]], d_out: torch.Tensor) -> None:
    """:func:`_relu_mlp_backward` of a :func:`_stacked_relu_mlp` run: ``d_out`` ``(n, B, 1)``, the
    parameter gradients written into ``grads`` (``(weight (n, in, out), bias (n, out))`` per layer)."""
    n, d = len(layers[0][0]), d_out
    for k in reversed(range(len(layers))):
        x, w = run.low.get(k, (run.acts[k], layers[k][0]))
        if k == 0:
            x = x.expand(n, *x.shape)
        d_low = d.to(x.dtype)
        if k == len(layers) - 1:  # one output column: a product per network, as in the forward
            for i in range(n):
                torch.mm(x[i].T, d[i], out=grads[k][0][i])
        elif x.dtype == d.dtype:
            torch.bmm(x.transpose(1, 2), d, out=grads[k][0])
        else:
            grads[k][0].copy_(torch.bmm(x.transpose(1, 2), d_low))
        torch.sum(d, dim=1, out=grads[k][1])
        if k == 0:
            return
        d = _input_grad(d_low, w.transpose(1, 2))
        d = torch.ops.aten.threshold_backward(d, run.acts[k], 0)


def _input_grad(d: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
    """``(d @ w_t).float()``: a layer's input gradient from its output gradient ``d`` and transposed
    weight ``w_t`` (batched or not). For a one-output layer (a Q head) it is an outer product, done as a
    broadcast multiply: the same bits (one product per element, no sum), without the matrix product's
    cost (~150 us for the twin critics' heads, 10x the multiply)."""
    if d.shape[-1] == 1:
        return (d * w_t).float()
    return torch.matmul(d, w_t).float()


def _relu_mlp_backward(run: _Pass, layers: list[tuple[torch.Tensor, torch.Tensor]],
                       grads: list[tuple[torch.Tensor, torch.Tensor]] | None, d_out: torch.Tensor,
                       *, input_grad: bool = False) -> torch.Tensor | None:
    """Backpropagate ``d_out`` (gradient of the output of the :func:`_relu_mlp` ``run``) through ``layers``.

    With ``grads`` (``(weight, bias)`` gradient tensors, same layout as ``layers``) the parameter
    gradients are written there; returns the gradient of the input if ``input_grad``.
    ``acts[k]`` (``k > 0``) is the output of ReLU ``k``, so ``acts[k] > 0`` is its derivative's mask.
    """
    d = d_out
    for k in reversed(range(len(layers))):
        x, w = run.low.get(k, (run.acts[k], layers[k][0]))
        d_low = d.to(x.dtype)
        if grads is not None:
            if x.dtype == d.dtype:
                torch.mm(x.T, d, out=grads[k][0])
            elif grads[k][0].T.is_contiguous():  # nn.Linear's layout (the actor's): product and copy in it
                grads[k][0].T.copy_(d_low.T @ x)  # a copy into a transposed view costs ~6x a straight one
            else:
                grads[k][0].copy_(x.T @ d_low)
            torch.sum(d, dim=0, out=grads[k][1])
        if k == 0 and not input_grad:
            return None
        d = _input_grad(d_low, w.T)
        if k > 0:
            d = torch.ops.aten.threshold_backward(d, run.acts[k], 0)
    return d


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``fma``; float32), inside Numba kernels."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(cache=True, nogil=True, error_model="numpy")
def adam_kernel(params, grads, exp_avgs, exp_avg_sqs, beta1, beta2, step_size, bias_correction2_sqrt, eps):
    """One Adam step over tuples of flat float32 arrays, in place: torch 2.13's fused CPU Adam
    (``_fused_adam_``; no weight decay, amsgrad or maximize) as it computes with the CPU's
    flush-to-zero on, without touching the thread's float mode: bit for bit torch's where nothing falls
    below the smallest normal float32 (its vectorised body; its scalar tail, ``size % 16`` elements,
    rounds a little differently), and 0 where a moment or a product would (a moment is stored as 0, a
    parameter update under ``1e-30`` is skipped).

    Without the flush, the moments of parameters whose gradient has stopped (dead ReLU units) decay
    geometrically into subnormal floats (``exp_avg_sq`` by 0.999 a step, so for thousands of steps),
    and every operation that reads or makes a subnormal takes a slow microcode path: on Hopper after a
    few hundred steps ~6% of the critics' and ~13% of the actor's moments were subnormal, and torch's
    kernel ran 6x slower. Inputs that would make a subnormal product are zeroed before the product.
    ``step_size`` is ``lr / (1 - beta1^step)``, ``bias_correction2_sqrt`` is ``sqrt(1 - beta2^step)``.
    """
    weight, b2, c2 = np.float32(1.0 - beta1), np.float32(beta2), np.float32(1.0 - beta2)
    size, denom_scale, e = np.float32(step_size), np.float32(bias_correction2_sqrt), np.float32(eps)
    tiny, zero = np.float32(np.finfo(np.float32).tiny), np.float32(0.0)
    # below these, g * c2, v * b2 and size * m would be subnormal (size >= tiny: lr is not that small)
    g_min, v_min, m_min = tiny / c2, tiny / b2, tiny / max(size, tiny)
    for t in range(len(params)):
        param, grad, exp_avg, exp_avg_sq = params[t], grads[t], exp_avgs[t], exp_avg_sqs[t]
        for i in range(param.size):
            g, m, v = grad[i], exp_avg[i], exp_avg_sq[i]
            # exp_avg.lerp(grad, 1 - beta1) as torch's vectorised lerp rounds it
            m = _fma(weight, g - m, m) if weight < 0.5 else _fma(weight - np.float32(1.0), g - m, g)
            v = _fma((g if abs(g) >= g_min else zero) * c2, g, (v if v >= v_min else zero) * b2)
            m = m if abs(m) >= tiny else zero
            v = v if v >= tiny else zero
            exp_avg[i], exp_avg_sq[i] = m, v
            param[i] = param[i] - size * (m if abs(m) >= m_min else zero) / (np.sqrt(v) / denom_scale + e)


class _AdamArrays(NamedTuple):
    """What :func:`_adam_step` hands :func:`adam_kernel` for one optimiser: flat NumPy views of its
    params, grads, exp_avgs and exp_avg_sqs, and its step-count tensors."""

    key: tuple[Any, ...]  # (optimizer.state, its parameter list, the grads list): rebuilt when any is another object
    arrays: tuple[tuple[np.ndarray, ...], ...]
    steps: list[torch.Tensor]


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
    if not all(t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu" for g in groups for t in g):
        return None
    arrays = tuple(tuple(t.detach().numpy().reshape(-1) for t in g) for g in groups)
    cached = _ADAM_ARRAYS[optimizer] = _AdamArrays(key, arrays, [s["step"] for s in states])
    return cached


def _adam_step(optimizer: torch.optim.Optimizer, grads: list[torch.Tensor]) -> None:
    """``optimizer.step()`` of a one-group fused ``Adam`` with ``grads`` (one per parameter, in the
    group's order; pass the same list every step), minus its Python layers: the same step count, and
    :func:`adam_kernel` (torch's fused kernel, subnormal moments flushed) on the same state tensors.
    The first step (no state yet) and other optimisers go through ``step()``."""
    prepared = _adam_arrays(optimizer, grads)
    if prepared is None:
        for p, g in zip(optimizer.param_groups[0]["params"], grads, strict=True):
            p.grad = g
        optimizer.step()
        return
    group = optimizer.param_groups[0]
    torch._foreach_add_(prepared.steps, 1)
    step = int(prepared.steps[0].item())
    beta1, beta2 = group["betas"]
    adam_kernel(*prepared.arrays, float(beta1), float(beta2), float(group["lr"]) / (1 - beta1**step),
                math.sqrt(1 - beta2**step), float(group["eps"]))


class _Views(NamedTuple):
    """What the graph-free step reads and writes, as views built once per policy: layers as
    ``(weight (in, out), bias)``, gradient buffers in the same layout, and the buffers again in
    each optimiser's parameter order."""

    policy: SACPolicy
    hidden: list[tuple[torch.Tensor, torch.Tensor]]  # the actor's hidden layers
    heads: list[tuple[torch.Tensor, torch.Tensor]]  # its mean and log-std heads
    actor_grads: list[tuple[torch.Tensor, torch.Tensor]]  # hidden, then heads
    actor_grad_list: list[torch.Tensor]
    critic_stack: list[tuple[torch.Tensor, torch.Tensor]]  # the Q-networks' layers stacked: (n, in, out), (n, out)
    critics: list[list[tuple[torch.Tensor, torch.Tensor]]]  # per Q-network
    critic_grads: list[tuple[torch.Tensor, torch.Tensor]]  # stacked
    critic_grad_list: list[torch.Tensor]
    targets: list[tuple[torch.Tensor, torch.Tensor]]  # stacked
    polyak: tuple[list[torch.Tensor], list[torch.Tensor]]  # target parameters, online parameters

    @classmethod
    def build(cls, policy: SACPolicy) -> _Views:
        actor, critic = policy.actor, policy.critic
        linears = [m for m in actor.latent_pi if isinstance(m, nn.Linear)] + [actor.mu, actor.log_std]
        grad = {p: torch.zeros_like(p) for p in (*actor.parameters(), *critic.parameters())}
        for p, g in grad.items():
            p.grad = g  # SB3 leaves the last gradients there too
        actor_layers = [(m.weight.T, m.bias) for m in linears]
        actor_grads = [(grad[m.weight].T, grad[m.bias]) for m in linears]
        target = policy.critic_target
        return cls(policy, actor_layers[:-2], actor_layers[-2:], actor_grads,
                   [grad[p] for p in actor.optimizer.param_groups[0]["params"]],
                   list(zip(critic.weights, critic.biases, strict=True)), critic.layers(),
                   [(grad[w], grad[b]) for w, b in zip(critic.weights, critic.biases, strict=True)],
                   [grad[p] for p in critic.optimizer.param_groups[0]["params"]],
                   list(zip(target.weights, target.biases, strict=True)),
                   (list(target.parameters()), list(critic.parameters())))


class FastSAC(SAC):
    """SB3's SAC with the gradient step of the module docstring (``"MlpPolicy"`` only, no gSDE)."""

    policy_aliases: ClassVar[dict[str, type]] = {"MlpPolicy": FastSACPolicy}
    policy: FastSACPolicy
    critic: TwinCritic
    critic_target: TwinCritic

    def __init__(self, *args: Any, matmul_dtype: str = "float32", **kwargs: Any):
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {sorted(MATMUL_DTYPES)}, got {matmul_dtype!r}")
        self.matmul_dtype = matmul_dtype
        if matmul_dtype == "bfloat16" and cpu_info().get("cpu_bf16") == []:
            warnings.warn("this CPU has no native bfloat16 products (neither AVX512-BF16 nor AMX): "
                          "matmul_dtype='bfloat16' is emulated and likely slower than 'float32'", stacklevel=2)
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        if self.use_sde:
            raise ValueError("FastSAC does not implement gSDE; use stable_baselines3.SAC")
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
            latent = _relu_mlp(x, v.hidden, last_relu=True).acts[-1]
            (w_mean, b_mean), (w_log_std, b_log_std) = v.heads
            mean = torch.addmm(b_mean, latent, w_mean)
            std = torch.addmm(b_log_std, latent, w_log_std).clamp_(LOG_STD_MIN, LOG_STD_MAX).exp_()
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
        arithmetic as autograd's, in SB3's order, without building a graph. Runs under ``no_grad``."""
        v, low, n = self._policy_views(), self._low_dtype, self.critic.n_critics
        features = self.actor.features_extractor  # parameter-free, so the critics' features are the same
        obs = self.actor.extract_features(data.observations, features)
        batch, n_actions = obs.shape[0], data.actions.shape[1]
        # the actor on obs and next_obs in one pass (same weights); the obs half is kept for its backward
        next_obs = self.actor.extract_features(data.next_observations, features)
        both = _relu_mlp(torch.cat([obs, next_obs]), v.hidden, last_relu=True, low=_low_layers(v.hidden, low, True))
        run = both.rows(slice(0, batch))
        latent = run.acts[-1]
        mean_both, log_std_both = (torch.addmm(b, both.acts[-1], w) for w, b in v.heads)
        mean, log_std_raw = mean_both[:batch], log_std_both[:batch]
        eps = torch.empty_like(mean).normal_()
        action_pi, log_prob, std = _squash(mean, log_std_raw.clamp(LOG_STD_MIN, LOG_STD_MAX), eps)
        ent_coef, ent_coef_loss = self._graph_free_ent_coef(log_prob)
        # the critics' target
        next_mean, next_log_std = mean_both[batch:], log_std_both[batch:]
        next_action, next_log_prob, _ = _squash(next_mean, next_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX),
                                                torch.empty_like(next_mean).normal_())
        next_x = torch.cat([next_obs, next_action], 1)
        next_q = _stacked_relu_mlp(next_x, v.targets, _low_layers(v.targets, low)).acts[-1]
        next_q = next_q.amin(dim=0)
        discounts = data.discounts if data.discounts is not None else self.gamma
        target_q = data.rewards + (1 - data.dones) * discounts * (next_q - ent_coef * next_log_prob)
        # critic step: 0.5 * sum over critics of the MSE to the target
        x = torch.cat([obs, data.actions], 1)
        runs = _stacked_relu_mlp(x, v.critic_stack, _low_layers(v.critic_stack, low))
        errors = runs.acts[-1] - target_q  # (n, B, 1)
        critic_loss = 0.5 * errors.square().mean(dim=(1, 2)).sum()
        _stacked_backward(runs, v.critic_stack, v.critic_grads, errors / batch)
        _adam_step(self.critic.optimizer, v.critic_grad_list)
        # actor step: mean of ent_coef * log_prob - min_i Q_i(obs, action_pi), with the updated critics
        x_pi = torch.cat([obs, action_pi], 1)
        runs = _stacked_relu_mlp(x_pi, v.critic_stack, _low_layers(v.critic_stack, low))  # the updated critics
        min_q_pi, argmin = runs.acts[-1].min(dim=0)  # SB3's th.min: ties to the first
        actor_loss = (ent_coef * log_prob - min_q_pi).mean()
        # each row's gradient flows through the critic that attains its minimum alone: backpropagate
        # each critic on its own rows (the other rows' gradients are exact zeros)
        d_action = torch.empty_like(action_pi)
        for i in range(n):
            rows = (argmin.view(-1) == i).nonzero().view(-1)
            if len(rows):
                d_q_i = torch.full((len(rows), 1), -1 / batch, dtype=min_q_pi.dtype)
                d_x = _relu_mlp_backward(runs.network(i).masks(rows), v.critics[i], None, d_q_i, input_grad=True)
                d_action.index_copy_(0, rows, d_x[:, -n_actions:])
        # through tanh and the log-probability (eps, the sampled noise, is a constant)
        c = ent_coef / batch  # d loss / d log_prob
        one_minus_a2 = 1 - action_pi.square()
        d_action += c * 2 * action_pi / (one_minus_a2 + 1e-6)
        d_u = d_action * one_minus_a2  # d loss / d mean
        d_log_std = (d_u * eps * std - c) * ((log_std_raw >= LOG_STD_MIN) & (log_std_raw <= LOG_STD_MAX))
        (w_mean, _), (w_log_std, _) = v.heads
        for (gw, gb), d in zip(v.actor_grads[-2:], (d_u, d_log_std)):
            torch.mm(latent.T, d, out=gw)
            torch.sum(d, dim=0, out=gb)
        d_latent = torch.addmm(d_u @ w_mean.T, d_log_std, w_log_std.T)
        d_latent = torch.ops.aten.threshold_backward(d_latent, latent, 0)
        _relu_mlp_backward(run, v.hidden, v.actor_grads[:-2], d_latent)
        _adam_step(self.actor.optimizer, v.actor_grad_list)
        if polyak:
            self._polyak(*v.polyak)
        return torch.stack([ent_coef.reshape(()), actor_loss, critic_loss, ent_coef_loss])

    def _polyak(self, target: list[torch.Tensor] | None = None, online: list[torch.Tensor] | None = None) -> None:
        """SB3's ``polyak_update`` of the target critics, in two foreach calls."""
        with torch.no_grad():
            target = target if target is not None else list(self.critic_target.parameters())
            online = online if online is not None else list(self.critic.parameters())
            torch._foreach_mul_(target, 1 - self.tau)
            torch._foreach_add_(target, online, alpha=self.tau)

    def _graph_free_ent_coef(self, log_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_update_ent_coef` with the gradient of its loss written out."""
        if self.ent_coef_optimizer is None:
            return self.ent_coef_tensor, torch.tensor(math.nan)
        ent_coef = self.log_ent_coef.exp()
        shifted = log_prob + self.target_entropy
        loss = -(self.log_ent_coef * shifted).mean()
        torch.neg(shifted.mean().reshape(1), out=self._ent_coef_grad[0])
        _adam_step(self.ent_coef_optimizer, self._ent_coef_grad)
        return ent_coef, loss

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
