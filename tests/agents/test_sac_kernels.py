"""FastSAC's Numba kernels against torch: autograd for the backward ones, SB3's distribution for the
squashed Gaussian, torch's optimiser and foreach ops for Adam and the Polyak update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN

from gailkit.agents import sac_kernels as k

CLOSE = {"rtol": 1e-5, "atol": 1e-6}  # float32 rounding: the kernels sum in another order than torch


def relu_net(n: int, rows: int, sizes: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """An input ``(rows, sizes[0])`` and ``n`` stacked networks' weights ``(n, in, out)`` and biases."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, sizes[0], generator=g)
    params = []
    for a, b in zip(sizes, sizes[1:]):
        params += [torch.randn(n, a, b, generator=g) / a**0.5, torch.randn(n, b, generator=g) * 0.3]
    return x, params


def forward(x: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Every layer's output of the stacked networks (ReLU after all but the last)."""
    outs, h = [], x.expand(params[0].shape[0], *x.shape)
    for j in range(0, len(params), 2):
        h = torch.baddbmm(params[j + 1].unsqueeze(1), h, params[j])
        if j + 2 < len(params):
            h = h.relu()
        outs.append(h)
    return outs


def test_forward_kernels_match_torch():
    x, params = relu_net(2, 50, (7, 16, 1))
    h = torch.bmm(x.expand(2, *x.shape), params[0])
    k.bias_relu(h.numpy(), params[1].numpy())
    torch.testing.assert_close(h, forward(x, params)[0], rtol=0, atol=0)
    q = torch.empty(2, 50, 1)
    k.linear_rows(h.numpy(), params[2].numpy().reshape(2, 1, -1), params[3].numpy(), q.numpy())
    torch.testing.assert_close(q, forward(x, params)[1], **CLOSE)


def test_squash_is_sb3_s_squashed_gaussian():
    g = torch.Generator().manual_seed(1)
    mean, eps = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g)
    log_std = torch.randn(40, 3, generator=g) * torch.tensor([0.7] * 20 + [15.0] * 20)[:, None]  # 20 clamped
    assert (log_std < LOG_STD_MIN).any() and (log_std > LOG_STD_MAX).any()
    heads = torch.cat([mean, log_std], 1)
    action, std, log_prob = torch.empty(40, 3), torch.empty(40, 3), torch.empty(40, 1)
    k.squash(heads.numpy(), eps.numpy(), LOG_STD_MIN, LOG_STD_MAX, action.numpy(), std.numpy(), log_prob.numpy())
    clamped = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    dist = SquashedDiagGaussianDistribution(3).proba_distribution(mean, clamped)
    gaussian = mean + eps * clamped.exp()
    torch.testing.assert_close(std, clamped.exp(), **CLOSE)
    torch.testing.assert_close(action, torch.tanh(gaussian), **CLOSE)
    closed_form = -(0.5 * eps**2 + clamped + torch.log(1 - torch.tanh(gaussian) ** 2 + 1e-6)).sum(1) \
        - 3 * 0.5 * np.log(2 * np.pi)
    torch.testing.assert_close(log_prob[:, 0], closed_form, **CLOSE)
    # SB3 recovers the noise as (gaussian - mean) / std, exact enough where std is not tiny against mean
    moderate = (log_std.abs() < 2).all(dim=1)
    assert moderate.sum() >= 10
    sb3 = dist.log_prob(torch.tanh(gaussian), gaussian)
    torch.testing.assert_close(log_prob[moderate, 0], sb3[moderate], rtol=1e-4, atol=1e-4)


def test_squash_backward_is_autograd_s():
    g = torch.Generator().manual_seed(2)
    mean, eps = torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g)
    log_std = (torch.randn(30, 2, generator=g) * 6).requires_grad_()
    mean.requires_grad_()
    d_action, c = torch.randn(30, 2, generator=g), 0.37
    clamped = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    action = torch.tanh(mean + eps * clamped.exp())
    log_prob = -(0.5 * eps**2 + clamped + torch.log(1 - action**2 + 1e-6)).sum(1)
    (c * log_prob.sum() + (action * d_action).sum()).backward()
    heads = torch.cat([mean, log_std], 1).detach()
    d_heads = torch.empty(30, 4)
    k.squash_backward(d_action.numpy(), action.detach().numpy(), eps.numpy(), clamped.exp().detach().numpy(),
                      heads.numpy(), LOG_STD_MIN, LOG_STD_MAX, c, d_heads.numpy())
    # near tanh's saturation 1 - a^2 cancels, and the two orders of the chain rule differ there by ~1e-4
    torch.testing.assert_close(d_heads, torch.cat([mean.grad, log_std.grad], 1), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("n, outputs", [(2, 1), (1, 6)], ids=["twin-q-heads", "actor-heads"])
def test_head_and_relu_backward_are_autograd_s(n, outputs):
    x, params = relu_net(n, 64, (5, 24, 32, outputs))
    for p in params:
        p.requires_grad_()
    outs = forward(x, params)
    d_out = torch.randn(n, 64, outputs, generator=torch.Generator().manual_seed(3))
    (outs[-1] * d_out).sum().backward()
    act = outs[1].detach()  # the heads' input: the second ReLU's output
    d_in, w_grad, b_grad, below = torch.empty(n, 64, 32), torch.empty(n, outputs, 32), torch.empty(n, outputs), \
        torch.empty(n, 32)
    w = params[4].detach().transpose(1, 2).contiguous()  # nn.Linear's layout
    k.head_backward(d_out.numpy(), w.numpy(), act.numpy(), d_in.numpy(), w_grad.numpy(), b_grad.numpy(),
                    below.numpy())
    torch.testing.assert_close(w_grad.transpose(1, 2), params[4].grad, **CLOSE)
    torch.testing.assert_close(b_grad, params[5].grad, **CLOSE)
    torch.testing.assert_close(below, params[3].grad, **CLOSE)
    # one layer down: the product into the first ReLU's output, then that ReLU with the bias below
    d = torch.bmm(d_in, params[2].detach().transpose(1, 2))
    first_bias = torch.empty(n, 24)
    k.relu_backward_sum(d.numpy(), outs[0].detach().numpy(), first_bias.numpy())
    torch.testing.assert_close(first_bias, params[1].grad, **CLOSE)
    torch.testing.assert_close(torch.bmm(x.expand(n, *x.shape).transpose(1, 2), d), params[0].grad, **CLOSE)


def test_the_min_critic_input_gradient_is_autograd_s_with_ties_to_the_first():
    x, params = relu_net(2, 40, (6, 16, 24, 1))
    with torch.no_grad():  # critic 1 a copy of critic 0 on the first ten rows' inputs: exact ties there
        for p in params:
            p[1] = p[0]
        params[0][1, 0, :] += 1.0  # ... but not elsewhere: move critic 1's weights from input 0
    x[:10, 0] = 0.0
    x.requires_grad_()
    outs = forward(x, params)
    q = outs[-1].detach()
    assert (q[0, :10] == q[1, :10]).all() and (q[0, 10:] != q[1, 10:]).any()
    g = -1 / 40
    (g * torch.min(outs[-1], dim=0).values.sum()).backward()  # torch's min: the first index on ties
    order, counts, d = np.empty(40, np.int64), np.empty(2, np.int64), torch.empty(40, 24)
    total = k.min_head_input_grad(q.numpy(), g, params[4].detach()[:, :, 0].numpy().copy(), outs[1].detach().numpy(),
                                  order, counts, d.numpy())
    assert total == pytest.approx(float(q.min(dim=0).values.sum()), rel=1e-6)
    assert counts.sum() == 40 and set(order[:counts[0]]) >= set(range(10)), "ties go to critic 0"
    out, start = torch.zeros(40, 2), 0
    for i in range(2):
        rows = order[start:start + counts[i]]
        block = d[start:start + counts[i]] @ params[2].detach()[i].T
        k.relu_rows_input_grad(block.numpy(), outs[0].detach()[i].numpy(), rows, params[0].detach()[i][-2:].numpy(),
                               out.numpy())
        start += counts[i]
    torch.testing.assert_close(out, x.grad[:, -2:], **CLOSE)


def test_critic_errors_with_and_without_a_ceiling_and_entropy_terms_match_torch():
    g = torch.Generator().manual_seed(4)
    q, next_q = torch.randn(2, 32, 1, generator=g), torch.randn(3, 32, 1, generator=g)[:2]
    rewards, next_log_prob = torch.randn(32, 1, generator=g), torch.randn(32, 1, generator=g)
    dones, discounts = (torch.rand(32, 1, generator=g) < 0.3).float(), torch.rand(32, 1, generator=g)
    for disc, gamma, ceiling in ((discounts, 0.0, math.inf), (np.empty((0, 1), np.float32), 0.99, math.inf),
                                 (discounts, 0.0, 0.25)):
        d = discounts if len(disc) else 0.99
        target = (rewards + (1 - dones) * d * (next_q.amin(dim=0) - 0.2 * next_log_prob)).clamp(max=ceiling)
        if ceiling < math.inf:
            assert 0.2 < float((target == ceiling).float().mean()) < 0.8, "the ceiling should clip some targets"
        errors = torch.empty(2, 32, 1)
        loss = k.critic_errors(q.numpy(), next_q.contiguous().numpy(), rewards.numpy(), dones.numpy(),
                               np.asarray(disc), gamma, 0.2, next_log_prob.numpy(), ceiling, errors.numpy())
        torch.testing.assert_close(errors, (q - target) / 32, **CLOSE)
        assert loss == pytest.approx(float(0.5 * ((q - target) ** 2).mean(dim=(1, 2)).sum()), rel=1e-5)
    log_alpha = torch.tensor([-0.3], requires_grad=True)
    (-(log_alpha * (next_log_prob - 3.0)).mean()).backward()
    mean_shifted, weighted = k.entropy_terms(next_log_prob.numpy(), -3.0, -0.3)
    assert -mean_shifted == pytest.approx(float(log_alpha.grad), rel=1e-5)
    assert weighted == pytest.approx(float((log_alpha.detach() * (next_log_prob - 3.0)).mean()), rel=1e-5)


def test_adam_kernel_with_its_polyak_update_is_torch_s_step_and_polyak_update_bit_for_bit():
    g = torch.Generator().manual_seed(5)
    params = [torch.randn(320, generator=g), torch.randn(32, generator=g)]  # torch's vectorised body: 16s
    grads = [[torch.randn_like(p) for p in params] for _ in range(2)]
    targets = [torch.randn_like(p) for p in params]
    ref = [p.clone().requires_grad_() for p in params]
    optimizer = torch.optim.Adam(ref, lr=1e-3, fused=True)
    for step in range(2):  # the first creates the state; the kernel takes the second from there
        if step == 1:
            state = [optimizer.state[p] for p in ref]
            mine = [[t.detach().clone() for t in ts] for ts in
                    (ref, [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state], [s["step"] for s in state])]
        for p, grad in zip(ref, grads[step]):
            p.grad = grad
        optimizer.step()
    ref_targets = [t.clone() for t in targets]
    torch._foreach_mul_(ref_targets, 1 - 0.005)  # SB3's polyak_update
    torch._foreach_add_(ref_targets, [p.detach() for p in ref], alpha=0.005)
    own, exp_avgs, exp_avg_sqs, steps = mine
    flat = [tuple(t.numpy().reshape(-1) for t in ts) for ts in (own, grads[1], exp_avgs, exp_avg_sqs)]
    k.adam_kernel(*flat, tuple(t.numpy().reshape(1) for t in steps), 1e-3, 0.9, 0.999, 1e-8,
                  tuple(t.numpy() for t in targets), 0.005)
    assert all(float(t) == 2 for t in steps)
    for a, b in zip([*own, *targets], [*(p.detach() for p in ref), *ref_targets]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_mismatched_shapes_are_refused_not_written_past():
    h, b = np.zeros((2, 8, 16), np.float32), np.zeros((2, 15), np.float32)
    with pytest.raises(ValueError, match="shapes"):
        k.bias_relu(h, b)
    d, act, w, out = (np.zeros(s, np.float32) for s in ((4, 16), (8, 16), (3, 16), (8, 3)))
    with pytest.raises(ValueError, match="shapes"):
        k.relu_rows_input_grad(d, act, np.array([0, 1, 2, 9]), w, out)  # row 9 of 8
