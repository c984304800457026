"""The Numba kernels of :class:`~gailkit.agents.fast_sac.FastSAC`'s written-out gradient step.

The matrix products of the step stay torch's (MKL / oneDNN); what runs here is the element-wise work
between them, fused so that each pass over a ``(B, H)`` activation does everything that pass needs:
a ReLU's backward (its mask) together with the column sums that are the bias gradient below it,
a Q head's backward (weight and bias gradients, the outer product into its input, that input's ReLU
mask and the bias gradient below) in one pass, and Adam with subnormal moments flushed. Stacked
networks (a :class:`~gailkit.agents.fast_sac.TwinCritic`'s) are ``(n, B, H)``; one network is
``(1, B, H)``. Arrays are C-contiguous float32 and written in place; the sums run over rows in
order (so they round differently from torch's, within float32 rounding of the result).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["adam_kernel", "bias_relu", "critic_errors", "entropy_terms", "head_backward", "linear_rows",
           "min_head_input_grad", "polyak_kernel", "relu_backward_rows", "relu_backward_sum", "relu_rows_input_grad",
           "squash", "squash_backward"]

_KERNEL = {"cache": True, "nogil": True, "error_model": "numpy"}


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``fma``; float32), inside Numba kernels."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(**_KERNEL)
def _require(ok):
    """Refuse arrays whose shapes do not fit together (the kernels index without bounds checks)."""
    if not ok:
        raise ValueError("sac_kernels: the arrays' shapes do not fit together")


# ----- forward ----------------------------------------------------------------------------------------
@njit(**_KERNEL)
def bias_relu(h, b):
    """``h = max(h + b, 0)`` in place over ``(n, B, H)``, ``b`` ``(n, H)``: a layer's bias and ReLU after
    its bias-free product, one pass (a product with the bias copies it into its output first)."""
    _require(h.shape[0] == b.shape[0] and h.shape[2] == b.shape[1])
    zero = np.float32(0.0)
    for i in range(h.shape[0]):
        for r in range(h.shape[1]):
            for j in range(h.shape[2]):
                v = h[i, r, j] + b[i, j]
                h[i, r, j] = v if v > zero else zero


@njit(**_KERNEL, fastmath={"reassoc"})
def linear_rows(x, w, b, out):
    """``out[i, r, o] = x[i, r] . w[i, o] + b[i, o]``: ``n`` linear layers with few outputs (Q heads,
    the actor's mean and log-std heads) on ``(n, B, K)``, weights in ``nn.Linear``'s ``(n, O, K)``
    layout; each a dot product of contiguous rows (summed in an order of the compiler's choosing)."""
    _require(w.shape[0] == x.shape[0] and w.shape[2] == x.shape[2] and b.shape == w.shape[:2]
             and out.shape == (x.shape[0], x.shape[1], w.shape[1]))
    for i in range(x.shape[0]):
        for r in range(x.shape[1]):
            for o in range(w.shape[1]):
                s = np.float32(0.0)
                for k in range(x.shape[2]):
                    s += x[i, r, k] * w[i, o, k]
                out[i, r, o] = s + b[i, o]


@njit(**_KERNEL)
def squash(heads, eps, log_std_min, log_std_max, action, std, log_prob):
    """SAC's squashed Gaussian from the actor's heads ``(R, 2A)`` (mean, then the unclamped log-std)
    and standard-normal noise ``eps`` ``(R, A)``: ``action = tanh(mean + eps * std)`` with ``std`` the
    clamped log-std's ``exp``, and ``log_prob`` ``(R, 1)``, SB3's log-probability of it:
    ``-(sum_a(eps^2 / 2 + log std + log(1 - action^2 + 1e-6)) + A log(2 pi) / 2)``."""
    _require(heads.shape == (eps.shape[0], 2 * eps.shape[1]) and action.shape == eps.shape == std.shape
             and log_prob.shape == (eps.shape[0], 1))
    n_actions = eps.shape[1]
    half, one, tiny = np.float32(0.5), np.float32(1.0), np.float32(1e-6)
    offset = np.float32(n_actions * 0.5 * np.log(2 * np.pi))
    lo, hi = np.float32(log_std_min), np.float32(log_std_max)
    for r in range(eps.shape[0]):
        total = np.float32(0.0)
        for a in range(n_actions):
            log_std = min(max(heads[r, n_actions + a], lo), hi)
            s = np.exp(log_std)
            e = eps[r, a]
            act = np.tanh(heads[r, a] + e * s)
            std[r, a], action[r, a] = s, act
            total += half * (e * e) + log_std + np.log(one - act * act + tiny)
        log_prob[r, 0] = -(total + offset)


# ----- losses -----------------------------------------------------------------------------------------
@njit(**_KERNEL)
def critic_errors(q, next_q, rewards, dones, discounts, gamma, ent_coef, next_log_prob, target_max, errors):
    """The critics' TD errors and loss: the target ``min(rewards + (1 - dones) * discount * (min_i next_q[i]
    - ent_coef * next_log_prob), target_max)`` (``discounts`` ``(B, 1)``, or ``gamma`` where it is empty;
    ``target_max`` inf for SAC's own target), ``errors`` ``(n, B, 1)`` set to ``(q - target) / B``;
    returns ``0.5 * sum_i mean_r (q[i, r] - target[r])^2``."""
    _require(next_q.shape[1:] == q.shape[1:] == (rewards.shape[0], 1) == dones.shape == next_log_prob.shape
             and errors.shape == q.shape and (discounts.size == 0 or discounts.shape == rewards.shape))
    n, batch = q.shape[0], q.shape[1]
    coef, size, ceiling = np.float32(ent_coef), np.float32(batch), np.float32(target_max)
    loss = 0.0
    for r in range(batch):
        low = next_q[0, r, 0]
        for i in range(1, n):
            low = min(low, next_q[i, r, 0])
        discount = discounts[r, 0] if discounts.size else np.float32(gamma)
        target = rewards[r, 0] + ((np.float32(1.0) - dones[r, 0]) * discount) * (low - coef * next_log_prob[r, 0])
        target = min(target, ceiling)
        for i in range(n):
            e = q[i, r, 0] - target
            errors[i, r, 0] = e / size
            loss += e * e
    return 0.5 * loss / batch


@njit(**_KERNEL)
def entropy_terms(log_prob, target_entropy, log_alpha):
    """The means over rows of ``log_prob + target_entropy`` and of ``log_alpha`` times it (SAC's
    entropy-coefficient loss is minus the second; its gradient in ``log_alpha`` minus the first)."""
    shift, scale = np.float32(target_entropy), np.float32(log_alpha)
    total, weighted = 0.0, 0.0
    for r in range(log_prob.shape[0]):
        shifted = log_prob[r, 0] + shift
        total += shifted
        weighted += scale * shifted
    return total / log_prob.shape[0], weighted / log_prob.shape[0]


# ----- backward ---------------------------------------------------------------------------------------
@njit(**_KERNEL)
def head_backward(d_out, w, act, d_in, w_grad, b_grad, below_b_grad):
    """The backward of ``n`` stacks of linear heads ``out[i, r] = w[i] act[i, r] + b[i]`` on ReLU
    outputs (``w`` ``(n, O, H)``, ``nn.Linear``'s layout; a Q head has ``O = 1``).

    From ``d_out`` ``(n, B, O)``, the loss's gradient in the heads' outputs: ``w_grad`` ``(n, O, H)``
    and ``b_grad`` ``(n, O)``, the heads' gradients; ``d_in`` ``(n, B, H)``, the gradient into their
    input through its ReLU, and ``below_b_grad`` ``(n, H)``, its sum over rows (the bias gradient of
    the layer below). One pass over ``act``.
    """
    _require(w.shape[0] == act.shape[0] == d_out.shape[0] and w.shape[1] == d_out.shape[2]
             and w.shape[2] == act.shape[2] and d_out.shape[1] == act.shape[1] and d_in.shape == act.shape
             and w_grad.shape == w.shape and b_grad.shape == w.shape[:2]
             and below_b_grad.shape == (w.shape[0], w.shape[2]))
    zero = np.float32(0.0)
    for i in range(d_out.shape[0]):
        w_grad[i] = zero
        b_grad[i] = zero
        below_b_grad[i] = zero
        for r in range(d_out.shape[1]):
            row = d_in[i, r]
            row[:] = zero
            for o in range(d_out.shape[2]):
                g = d_out[i, r, o]
                b_grad[i, o] += g
                for j in range(row.shape[0]):
                    w_grad[i, o, j] += act[i, r, j] * g
                    row[j] += g * w[i, o, j]
            for j in range(row.shape[0]):
                v = row[j] if act[i, r, j] > zero else zero
                row[j] = v
                below_b_grad[i, j] += v


@njit(**_KERNEL)
def relu_backward_sum(d, act, col_sum):
    """``d *= act > 0`` over ``(n, B, H)`` (a ReLU's backward, ``act`` its output), and ``col_sum``
    ``(n, H)`` set to the masked ``d`` summed over its rows (the bias gradient of the layer whose
    output the ReLU took)."""
    _require(d.shape == act.shape and col_sum.shape == (d.shape[0], d.shape[2]))
    zero = np.float32(0.0)
    for i in range(d.shape[0]):
        col_sum[i, :] = zero
        for r in range(d.shape[1]):
            for j in range(d.shape[2]):
                v = d[i, r, j] if act[i, r, j] > zero else zero
                d[i, r, j] = v
                col_sum[i, j] += v


@njit(**_KERNEL)
def min_head_input_grad(q, g, w, act, order, counts, d_in):
    """The backward of ``g * sum_r min_i q[i, r]`` into the input of ``n`` one-output heads through
    its ReLU: each row flows through the head that attains its minimum alone (the first on ties, as
    ``torch.min``). ``q`` ``(n, B, 1)``, ``w`` ``(n, H)``, ``act`` ``(n, B, H)`` (the heads' input).
    The rows are grouped by that head: ``counts`` ``(n,)`` is set to each head's number of rows and
    ``order`` ``(B,)`` to the rows, head 0's first (each group in row order); ``d_in`` ``(B, H)`` row
    ``p`` is the gradient of row ``order[p]``. Returns ``sum_r min_i q[i, r]``."""
    _require(q.shape[2] == 1 and w.shape == (q.shape[0], act.shape[2]) and act.shape[:2] == q.shape[:2]
             and order.shape == (q.shape[1],) and counts.shape == (q.shape[0],) and d_in.shape == act.shape[1:])
    n, batch = q.shape[0], q.shape[1]
    zero, coef = np.float32(0.0), np.float32(g)
    best = np.empty(batch, np.int64)
    counts[:] = 0
    total = 0.0
    for r in range(batch):
        k, low = 0, q[0, r, 0]
        for i in range(1, n):
            if q[i, r, 0] < low:
                k, low = i, q[i, r, 0]
        best[r] = k
        counts[k] += 1
        total += low
    start = np.zeros(n, np.int64)
    for i in range(1, n):
        start[i] = start[i - 1] + counts[i - 1]
    for r in range(batch):
        i = best[r]
        p = start[i]
        start[i] += 1
        order[p] = r
        for j in range(d_in.shape[1]):
            d_in[p, j] = coef * w[i, j] if act[i, r, j] > zero else zero
    return total


@njit(**_KERNEL)
def relu_backward_rows(d, act, rows):
    """A ReLU's backward on the rows ``rows`` of a batch: ``d`` ``(R, H)`` zeroed where row ``rows[q]``
    of its output ``act`` ``(B, H)`` is not positive."""
    _require(d.shape[0] == rows.shape[0] and d.shape[1] == act.shape[1])
    zero = np.float32(0.0)
    for q in range(d.shape[0]):
        r = rows[q]
        _require(0 <= r < act.shape[0])
        for j in range(d.shape[1]):
            if act[r, j] <= zero:
                d[q, j] = zero


@njit(**_KERNEL, fastmath={"reassoc"})
def relu_rows_input_grad(d, act, rows, w, out):
    """The last step of a backward on the rows ``rows`` of a batch: ``d`` ``(R, H)``, the gradient at
    the first layer's output, through its ReLU (``act`` ``(B, H)``, that ReLU's output), then into
    the inputs whose weights are ``w`` ``(A, H)`` (rows of the first layer's ``(in, H)`` weight):
    ``out[rows[q], a] = (d[q] * (act[rows[q]] > 0)) . w[a]``, scattered into ``out`` ``(B, A)``."""
    _require(d.shape[0] == rows.shape[0] and d.shape[1] == act.shape[1] == w.shape[1]
             and out.shape == (act.shape[0], w.shape[0]))
    zero = np.float32(0.0)
    for q in range(d.shape[0]):
        r = rows[q]
        _require(0 <= r < act.shape[0])
        for a in range(w.shape[0]):
            s = zero
            for j in range(d.shape[1]):
                s += (d[q, j] if act[r, j] > zero else zero) * w[a, j]
            out[r, a] = s


@njit(**_KERNEL)
def squash_backward(d_action, action, eps, std, heads, log_std_min, log_std_max, c, d_heads):
    """The backward of :func:`squash` into the heads, for the loss ``c * sum(log_prob) + f(action)``:
    ``d_action`` ``(B, A)`` is ``f``'s gradient, ``d_heads`` ``(B, 2A)`` is written (mean's gradient,
    then the log-std's, zero where the clamp held it). ``eps`` is a constant (the reparameterisation)."""
    _require(d_action.shape == action.shape == eps.shape == std.shape and heads.shape == d_heads.shape
             == (eps.shape[0], 2 * eps.shape[1]))
    n_actions = eps.shape[1]
    one, two, tiny, zero = np.float32(1.0), np.float32(2.0), np.float32(1e-6), np.float32(0.0)
    lo, hi, c32 = np.float32(log_std_min), np.float32(log_std_max), np.float32(c)
    for r in range(eps.shape[0]):
        for a in range(n_actions):
            act = action[r, a]
            one_minus_a2 = one - act * act
            d_u = (d_action[r, a] + c32 * two * act / (one_minus_a2 + tiny)) * one_minus_a2
            raw = heads[r, n_actions + a]
            d_heads[r, a] = d_u
            d_heads[r, n_actions + a] = d_u * eps[r, a] * std[r, a] - c32 if lo <= raw <= hi else zero


# ----- optimisers -------------------------------------------------------------------------------------
@njit(**_KERNEL)
def adam_kernel(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, targets, tau):
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
    ``steps`` (one-element arrays, the parameters' step counts) are incremented first; the bias
    corrections come from the first one, in float64 as torch's. With ``tau`` > 0 the updated
    parameters are also Polyak-averaged into ``targets`` (the same layout as ``params``) as
    :func:`polyak_kernel` does, in the same call.
    """
    _require(len(params) == len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(steps) == len(targets))
    for count in steps:
        count[0] += 1
    step = np.float64(steps[0][0])
    step_size, bias_correction2_sqrt = lr / (1.0 - beta1**step), np.sqrt(1.0 - beta2**step)
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
        if tau > 0:
            target, keep, t32 = targets[t], np.float32(1.0 - tau), np.float32(tau)
            for i in range(param.size):
                target[i] = _fma(param[i], t32, target[i] * keep)



@njit(**_KERNEL)
def polyak_kernel(targets, onlines, tau):
    """``target = target * (1 - tau) + tau * online`` over tuples of flat float32 arrays, in place (the
    rounding of torch's ``mul_`` then ``add_(alpha=tau)``)."""
    _require(len(targets) == len(onlines))
    keep, t = np.float32(1.0 - tau), np.float32(tau)
    for k in range(len(targets)):
        target, online = targets[k], onlines[k]
        for i in range(target.size):
            target[i] = _fma(online[i], t, target[i] * keep)
