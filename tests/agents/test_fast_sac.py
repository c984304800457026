"""FastSAC against SB3's SAC as the reference: same weights, same minibatches, same updates."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import DtypeObservation
from stable_baselines3 import SAC
from stable_baselines3.common.logger import Logger
from torch import nn

from gailkit.agents import fast_sac
from gailkit.agents.fast_sac import FastSAC, TwinCritic, _adam_step
from gailkit.buffers import ExpertMixReplayBuffer, NumbaReplayBuffer

TIGHT = {"rtol": 1e-5, "atol": 1e-6}  # float32 rounding: fused Adam, one MSE over both critics


class WideActions(gym.Env):
    """Spaces alone (5-d observations, 3-d actions), for gradient steps on a filled replay buffer."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)


def pair(activation: type[nn.Module] = nn.ReLU, obs_dtype: type = np.float32, n_critics: int = 2,
         fast_kwargs: dict | None = None, net_arch: tuple[int, ...] = (64, 64), wide: bool = False,
         **kwargs) -> tuple[SAC, FastSAC]:
    """SB3's SAC and FastSAC on Pendulum (``wide``: on :class:`WideActions`) with one seed, their replay
    buffers holding the same 300 transitions."""
    options = dict(learning_starts=0, batch_size=64, seed=0, device="cpu",
                   policy_kwargs={"net_arch": list(net_arch), "activation_fn": activation, "n_critics": n_critics},
                   replay_buffer_class=NumbaReplayBuffer, replay_buffer_kwargs={"seed": 0}, **kwargs)
    env = WideActions() if wide else gym.make("Pendulum-v1")
    models = tuple(cls("MlpPolicy", DtypeObservation(env, obs_dtype), **options, **extra)
                   for cls, extra in ((SAC, {}), (FastSAC, fast_kwargs or {})))
    rng = np.random.default_rng(0)
    n_obs, n_act = env.observation_space.shape[0], env.action_space.shape[0]
    rows = [(rng.normal(size=(1, n_obs)), rng.normal(size=(1, n_obs)), rng.uniform(-1, 1, (1, n_act)),
             rng.normal(size=1), rng.random(1) < 0.05, [{"TimeLimit.truncated": bool(rng.random() < 0.5)}])
            for _ in range(300)]
    for model in models:
        model.set_logger(Logger(folder=None, output_formats=[]))
        for row in rows:
            model.replay_buffer.add(*row)
    return models


def test_same_seed_same_initial_weights_and_sb3_state_dict_keys():
    sb3, fast = pair()
    a, b = sb3.policy.state_dict(), fast.policy.state_dict()
    assert list(a) == list(b), "FastSAC's state dict must use SB3's keys, in SB3's order"
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert isinstance(fast.critic, TwinCritic) and fast.critic.weights[1].shape == (2, 64, 64)


def test_the_twin_critic_gives_the_q_values_of_two_sb3_critics_and_loads_either_way():
    sb3, fast = pair()
    obs, acts = torch.randn(32, 3), torch.rand(32, 1) * 2 - 1
    for mine, ref in zip(fast.critic(obs, acts), sb3.critic(obs, acts), strict=True):
        torch.testing.assert_close(mine, ref, **TIGHT)
    torch.testing.assert_close(fast.critic.q1_forward(obs, acts), sb3.critic.q1_forward(obs, acts), **TIGHT)
    with torch.no_grad():  # other weights in SB3, loaded into ours through SB3's keys
        for p in sb3.critic.parameters():
            p.add_(torch.randn_like(p))
    fast.critic.load_state_dict(sb3.critic.state_dict())
    torch.testing.assert_close(fast.critic.q_values(obs, acts), torch.stack(sb3.critic(obs, acts)), **TIGHT)


def test_predict_is_sb3_s():
    sb3, fast = pair()
    obs = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(fast.predict(obs, deterministic=True)[0], sb3.predict(obs, deterministic=True)[0])
    torch.manual_seed(3)
    stochastic = sb3.predict(obs)[0]
    torch.manual_seed(3)
    np.testing.assert_array_equal(fast.predict(obs)[0], stochastic)


def test_exploration_draws_sb3_s_actions_and_training_mode_sets_sb3_s_flags():
    sb3, fast = pair(obs_dtype=np.float64)
    rng = np.random.default_rng(2)
    for step in range(5):  # FastSAC's own path (past learning_starts) against SB3's, from one RNG state
        fast._last_obs = rng.normal(size=(1, 3))
        state = torch.get_rng_state()
        mine = fast._sample_action(learning_starts=0)
        torch.set_rng_state(state)
        ref = SAC._sample_action(fast, learning_starts=0)
        for a, b in zip(mine, ref, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
    for mode in (True, False, True):
        sb3.policy.set_training_mode(mode)
        fast.policy.set_training_mode(mode)
        flags = [m.training for m in (fast.policy, *fast.actor.modules(), *fast.critic.modules())]
        assert flags == [mode] * len(flags)
        assert fast.policy.critic_target.training is sb3.policy.critic_target.training is False


@pytest.mark.parametrize("options", [
    {}, {"ent_coef": 0.2, "target_update_interval": 2}, {"ent_coef": "auto_0.01"},
    {"activation": nn.Tanh}, {"obs_dtype": np.float64}, {"n_critics": 3},
    {"wide": True, "net_arch": (32, 48, 40)}, {"wide": True, "net_arch": (32,)}],
    ids=["auto", "fixed", "auto-from-0.01", "autograd-step", "float64-obs", "three-critics", "3-d-actions-3-layers",
         "one-layer"])
def test_gradient_steps_match_sb3_s(options):
    """Same minibatches (same buffer seed) and same noise (same torch seed): same losses and weights,
    both for the written-out step (ReLU) and for the autograd one (other activations)."""
    sb3, fast = pair(**options)
    assert fast._graph_free == (options.get("activation", nn.ReLU) is nn.ReLU)
    for model in (sb3, fast):
        torch.manual_seed(7)
        model.train(gradient_steps=3, batch_size=64)
    logged = [m.logger.name_to_value for m in (sb3, fast)]
    assert set(logged[0]) == set(logged[1])
    for key in logged[0]:
        np.testing.assert_allclose(logged[1][key], logged[0][key], **TIGHT, err_msg=key)
    assert fast._n_updates == sb3._n_updates == 3
    a, b = sb3.policy.state_dict(), fast.policy.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], **TIGHT, msg=key)
    assert not torch.equal(a["critic.qf0.0.weight"], pair()[0].policy.state_dict()["critic.qf0.0.weight"])
    if not isinstance(options.get("ent_coef", "auto"), float):  # a learned coefficient
        torch.testing.assert_close(fast.log_ent_coef, sb3.log_ent_coef, **TIGHT)


def test_a_clipped_target_is_the_autograd_step_s_and_a_ceiling_above_every_target_changes_nothing():
    """``reward_max``: the written-out step against the autograd one (``torch.clamp`` on SB3's target,
    itself tested against SB3 above); a ceiling above every target changes nothing, bit for bit."""
    def trained(reward_max, graph_free=True):
        _, fast = pair(fast_kwargs={"reward_max": reward_max}, gamma=0.99)
        fast._graph_free = graph_free
        torch.manual_seed(7)
        fast.train(gradient_steps=3, batch_size=64)
        return fast

    # initial alpha 1, 1-d actions: ceiling (reward_max + log 2) / 0.01; Pendulum's rows have rewards ~ N(0, 1)
    assert trained(-1.0).target_max(1.0) == pytest.approx((-1.0 + math.log(2)) * 100)
    plain, high, low = trained(None), trained(1e6), trained(-0.69)
    for a, b in ((plain, high), (plain, low)):
        assert a.logger.name_to_value.keys() == b.logger.name_to_value.keys()
    for key, value in plain.logger.name_to_value.items():
        assert high.logger.name_to_value[key] == value, key
    critic_loss = [m.logger.name_to_value["train/critic_loss"] for m in (plain, low)]
    assert critic_loss[1] != pytest.approx(critic_loss[0], rel=1e-3), critic_loss
    autograd = trained(-0.69, graph_free=False)
    for key, value in autograd.logger.name_to_value.items():
        np.testing.assert_allclose(low.logger.name_to_value[key], value, **TIGHT, err_msg=key)
    a, b = autograd.policy.state_dict(), low.policy.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], **TIGHT, msg=key)
    with pytest.raises(ValueError, match="needs gamma < 1"):
        pair(fast_kwargs={"reward_max": 1.0}, gamma=1.0)
    with pytest.raises(ValueError, match="finite number"):
        FastSAC("MlpPolicy", "Pendulum-v1", reward_max=math.inf, device="cpu")


def test_fused_optimiser_state_matches_sb3_s_layout_by_layout():
    sb3, fast = pair()
    for model in (sb3, fast):
        torch.manual_seed(7)
        model.train(gradient_steps=2, batch_size=64)
    assert all(g["fused"] for g in fast.critic.optimizer.param_groups + fast.actor.optimizer.param_groups)
    ref = [sb3.critic.optimizer.state[p]["exp_avg_sq"] for p in sb3.critic.parameters()]  # qf0 layers, then qf1
    mine = fast.critic.optimizer.state
    for k, (w, b) in enumerate(zip(fast.critic.weights, fast.critic.biases, strict=True)):
        for i in range(2):
            torch.testing.assert_close(mine[w]["exp_avg_sq"][i].T, ref[6 * i + 2 * k], **TIGHT)
            torch.testing.assert_close(mine[b]["exp_avg_sq"][i], ref[6 * i + 2 * k + 1], **TIGHT)


def test_a_reused_minibatch_is_sampled_like_a_fresh_one_for_both_replay_buffers():
    sb3, _ = pair()
    plain = sb3.replay_buffer
    mixed = ExpertMixReplayBuffer(400, plain.observation_space, plain.action_space, device="cpu", seed=0)
    mixed.set_expert(np.ones((10, 3)), np.zeros((10, 1)), np.ones((10, 3)), np.zeros(10, bool))
    for i in range(300):
        mixed.add(plain.observations[i], plain.next_observations[i], plain.actions[i], plain.rewards[i],
                  plain.dones[i], [{}])
    for buf in (plain, mixed):
        out, state = buf.batch_arrays(64), buf.rng.bit_generator.state
        fresh = buf.sample(64)
        buf.rng.bit_generator.state = state
        reused = buf.sample_into(out)
        for x, y in zip(fresh[:5], reused[:5], strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        assert reused.observations.data_ptr() == out.observations.__array_interface__["data"][0], "not zero-copy"


def test_gsde_is_refused():
    with pytest.raises(ValueError, match="gSDE"):
        FastSAC("MlpPolicy", "Pendulum-v1", use_sde=True, device="cpu")


@pytest.mark.parametrize("reload_at", [None, 3], ids=["straight", "state-reloaded"])
def test_the_optimiser_call_without_python_layers_is_adam_s_step_bit_for_bit(reload_at):
    torch.manual_seed(0)
    params = [torch.randn(64, 8, requires_grad=True), torch.randn(8, requires_grad=True)]
    twin = [p.detach().clone().requires_grad_() for p in params]
    ref, mine = (torch.optim.Adam(ps, lr=3e-3, fused=True) for ps in (params, twin))
    grads = [torch.zeros_like(p) for p in params]  # one list, reused as FastSAC does
    for step in range(6):  # the first step (no state yet) goes through step(), the others through the kernel
        if step == reload_at:  # as a resume does: new state tensors, which the kernel's cached views must follow
            mine.load_state_dict(copy.deepcopy(mine.state_dict()))
        for g in grads:
            g.copy_(torch.randn_like(g))
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        ref.step()
        _adam_step(mine, grads)
    for a, b in zip(params, twin, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(mine.state[b][moment], ref.state[a][moment], rtol=0, atol=0)
        assert mine.state[b]["step"] == ref.state[a]["step"] == 6


def test_the_adam_kernel_flushes_subnormal_moments_to_zero_and_leaves_the_rest_torch_s_bits():
    # 320 elements: torch's vectorised body throughout (its scalar tail, size % 16, rounds a little differently)
    tiny = float(np.finfo(np.float32).tiny)
    params = [torch.randn(320, generator=torch.Generator().manual_seed(1))]
    twin = [params[0].clone()]
    ref, mine = (torch.optim.Adam([p.requires_grad_()], lr=1e-3, fused=True) for p in (params[0], twin[0]))
    for opt, p in ((ref, params[0]), (mine, twin[0])):  # a first step creates the state
        p.grad = torch.ones_like(p)
        opt.step()
        # the first 100 moments just above the smallest normal float, as a stopped gradient leaves them
        opt.state[p]["exp_avg"][:100] = 1.05 * tiny
        opt.state[p]["exp_avg_sq"][:100] = 1.0005 * tiny
    grads = [torch.cat([torch.zeros(100), torch.randn(220, generator=torch.Generator().manual_seed(2))])]
    params[0].grad = grads[0].clone()
    ref.step()
    _adam_step(mine, grads)
    ref_m, m = ref.state[params[0]]["exp_avg"], mine.state[twin[0]]["exp_avg"]
    ref_v, v = ref.state[params[0]]["exp_avg_sq"], mine.state[twin[0]]["exp_avg_sq"]
    assert (0 < ref_m[:100].abs()).all() and (ref_m[:100].abs() < tiny).all(), "torch keeps them, subnormal"
    assert (0 < ref_v[:100]).all() and (ref_v[:100] < tiny).all()
    assert (m[:100] == 0).all() and (v[:100] == 0).all(), "flushed to zero"
    torch.testing.assert_close(m[100:], ref_m[100:], rtol=0, atol=0)
    torch.testing.assert_close(v[100:], ref_v[100:], rtol=0, atol=0)
    torch.testing.assert_close(twin[0].detach(), params[0].detach(), rtol=0, atol=0)  # moved by < 1e-30 there


def test_bfloat16_products_stay_close_to_float32_and_are_refused_where_they_do_not_apply():
    """bfloat16 hidden products change the arithmetic: the losses and weights of three steps stay
    within bfloat16's rounding of the float32 step's, and differ from them."""
    _, fast32 = pair()
    _, fast16 = pair(fast_kwargs={"matmul_dtype": "bfloat16"})
    for model in (fast32, fast16):
        torch.manual_seed(7)
        model.train(gradient_steps=3, batch_size=64)
    a, b = fast32.policy.state_dict(), fast16.policy.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a), "bfloat16 products left every weight unchanged"
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=2e-2, atol=2e-3, msg=key)
    for key, value in fast32.logger.name_to_value.items():
        np.testing.assert_allclose(fast16.logger.name_to_value[key], value, rtol=3e-3, err_msg=key)
    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        FastSAC("MlpPolicy", "Pendulum-v1", matmul_dtype="float16", device="cpu")
    with pytest.raises(ValueError, match="needs ReLU MLPs"):
        FastSAC("MlpPolicy", "Pendulum-v1", matmul_dtype="bfloat16", policy_kwargs={"activation_fn": nn.Tanh},
                device="cpu")


@pytest.mark.parametrize(("info", "warns"), [({"cpu": "old", "cpu_bf16": []}, True),
                                             ({"cpu": "new", "cpu_bf16": ["avx512_bf16"]}, False),
                                             ({}, False)])  # not Linux: nothing known, no warning
def test_bfloat16_products_warn_on_a_cpu_without_native_bfloat16(monkeypatch, recwarn, info, warns):
    monkeypatch.setattr(fast_sac, "cpu_info", lambda: info)
    FastSAC("MlpPolicy", "Pendulum-v1", matmul_dtype="bfloat16", device="cpu")
    FastSAC("MlpPolicy", "Pendulum-v1", device="cpu")  # float32 never warns
    messages = [str(w.message) for w in recwarn if "bfloat16" in str(w.message)]
    assert len(messages) == warns, messages
    assert not warns or "emulated" in messages[0]


def test_cpu_info_reads_the_model_and_native_bfloat16_flags():
    info = fast_sac.cpu_info()
    if not info:
        pytest.skip("no /proc/cpuinfo here")
    assert set(info) == {"cpu", "cpu_bf16"} and set(info["cpu_bf16"]) <= {"avx512_bf16", "amx_bf16"}, info
