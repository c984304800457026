"""Behaviour cloning: hand-computed loss numerics, learning, seeding, checkpoints, errors."""

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from gailkit.agents.cloning import BC, BCConfig, bc_loss, pretrain_policy
from gailkit.agents.experts import evaluate_policy, random_returns, rollout_episodes
from gailkit.data.demos import Demonstrations
from gailkit.data.types import Transitions
from gailkit.nn.checkpoint import CheckpointError

CARTPOLE = gym.make("CartPole-v1")
PENDULUM = gym.make("Pendulum-v1")


def cartpole_controller(obs: np.ndarray) -> int:
    """Push towards the side the pole is falling to: balances CartPole for all 500 steps."""
    return int(obs[2] + 0.5 * obs[3] > 0)


def pendulum_expert(obs: np.ndarray) -> np.ndarray:
    """``(N, 3) -> (N, 1)``: a synthetic linear expert (damping plus gravity compensation)."""
    return np.clip(-2.0 * obs[:, 2:3] - 1.0 * obs[:, 1:2], -2.0, 2.0).astype(np.float32)


def pendulum_data(n: int, seed: int) -> Transitions:
    rng = np.random.default_rng(seed)
    theta, theta_dot = rng.uniform(-np.pi, np.pi, n), rng.uniform(-1.0, 1.0, n)
    obs = np.stack([np.cos(theta), np.sin(theta), theta_dot], axis=1).astype(np.float32)
    return Transitions(obs, pendulum_expert(obs), obs, np.zeros(n, dtype=bool))


@pytest.fixture(scope="module")
def cartpole_demos() -> Demonstrations:
    trajectories = rollout_episodes(cartpole_controller, "CartPole-v1", 10, seed=0)
    return Demonstrations(tuple(trajectories), "CartPole-v1",
                          CARTPOLE.observation_space, CARTPOLE.action_space)


def test_controller_is_an_expert(cartpole_demos):
    assert cartpole_demos.returns.mean() >= 490
    assert cartpole_demos.n_steps >= 4900


def actor_latent(bc: BC, obs: torch.Tensor) -> torch.Tensor:
    return bc.policy.mlp_extractor.policy_net(obs)  # tanh MLP, (B, 8)


def test_discrete_loss_matches_hand_computation():
    bc = BC(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3), BCConfig(net_arch=(8,)))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # sharper logits than the 0.01-gain init, so the terms are not ~uniform
        bc.policy.action_net.weight.normal_(generator=g)
    obs = torch.rand(16, 4, generator=g) * 2 - 1
    acts = torch.randint(0, 3, (16,), generator=g)

    loss, stats = bc_loss(bc.policy, obs, acts, ent_weight=0.1, l2_weight=0.01)

    with torch.no_grad():
        logits = bc.policy.action_net(actor_latent(bc, obs))  # (16, 3)
        logp = torch.log_softmax(logits, dim=1)
        neglogp = -logp[torch.arange(16), acts].mean()
        entropy = -(logp.exp() * logp).sum(dim=1).mean()
        actor = [p for n, p in bc.policy.named_parameters() if not n.startswith("value_net")]
        l2 = sum(p.square().sum() for p in actor)
        _, ev_logp, ev_ent = bc.policy.evaluate_actions(obs, acts)
    assert stats["neglogp"] == pytest.approx(neglogp.item(), rel=1e-5)
    assert stats["neglogp"] == pytest.approx(-ev_logp.mean().item(), rel=1e-5)
    assert stats["entropy"] == pytest.approx(entropy.item(), rel=1e-5)
    assert stats["entropy"] == pytest.approx(ev_ent.mean().item(), rel=1e-5)
    assert stats["l2"] == pytest.approx(l2.item(), rel=1e-5)
    assert stats["accuracy"] == pytest.approx((logits.argmax(1) == acts).float().mean().item())
    assert loss.item() == pytest.approx((neglogp - 0.1 * entropy + 0.01 * l2).item(), rel=1e-5)
    assert loss.requires_grad


def test_box_loss_matches_gaussian_nll():
    bc = BC(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (2,)), BCConfig(net_arch=(8,)))
    with torch.no_grad():
        bc.policy.log_std.copy_(torch.tensor([-0.3, 0.4]))
    g = torch.Generator().manual_seed(1)
    obs, acts = torch.rand(16, 3, generator=g), torch.randn(16, 2, generator=g)

    loss, stats = bc_loss(bc.policy, obs, acts, ent_weight=0.0, l2_weight=0.0)

    with torch.no_grad():
        mean = bc.policy.action_net(actor_latent(bc, obs))  # (16, 2)
        log_std = bc.policy.log_std
        z = (acts - mean) / log_std.exp()
        nll = (0.5 * z**2 + log_std + 0.5 * math.log(2 * math.pi)).sum(dim=1)  # (16,)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum()
    assert stats["neglogp"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx(nll.mean().item(), rel=1e-5)
    assert stats["entropy"] == pytest.approx(entropy.item(), rel=1e-5)
    assert stats["mse"] == pytest.approx((mean - acts).square().mean().item(), rel=1e-5)


def test_bc_clones_cartpole_controller(cartpole_demos):
    bc = BC(CARTPOLE.observation_space, CARTPOLE.action_space, BCConfig(steps=500, seed=0))
    assert bc.fit(cartpole_demos) is bc
    assert bc.stats["steps"] == 500
    # measured with seeds 0 / 1 / 2: accuracy 0.929 / 0.907 / 0.930, return 500 / 500 / 500 (random ~20)
    assert bc.stats["accuracy"] > 0.8, f"training accuracy {bc.stats['accuracy']:.3f}"
    returns = evaluate_policy(bc.predict, "CartPole-v1", 10, seed=1000)  # unseen start states
    random = random_returns("CartPole-v1", 10, seed=1000).mean()
    assert returns.mean() >= 450 and random < 50, f"return {returns.mean():.1f}, random {random:.1f}"


def test_bc_clones_continuous_expert():
    train, test = pendulum_data(4096, seed=0), pendulum_data(512, seed=1)
    bc = BC(PENDULUM.observation_space, PENDULUM.action_space, BCConfig(steps=800, ent_weight=0.0))
    before = np.mean((bc.predict(test.obs) - test.acts) ** 2)
    bc.fit(train)
    after = np.mean((bc.predict(test.obs) - test.acts) ** 2)
    assert bc.predict(test.obs).shape == (512, 1)
    # measured with seeds 0 / 1 / 2 (data and BC): test MSE 1.52 -> 0.0031 / 1.62 -> 0.0032 / 1.65 -> 0.0033
    assert after < 0.05 * before and after < 0.02, f"test MSE {before:.4f} -> {after:.4f}"


def test_same_seed_same_weights_and_global_rng_untouched(cartpole_demos):
    config = BCConfig(steps=20, batch_size=64, seed=3)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = BC(CARTPOLE.observation_space, CARTPOLE.action_space, config).fit(cartpole_demos)
    b = BC(CARTPOLE.observation_space, CARTPOLE.action_space, config).fit(cartpole_demos)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    for (name, wa), wb in zip(a.policy.state_dict().items(), b.policy.state_dict().values()):
        assert torch.equal(wa, wb), name
    other = dataclasses.replace(config, seed=4)
    c = BC(CARTPOLE.observation_space, CARTPOLE.action_space, other).fit(cartpole_demos)
    assert not torch.equal(a.policy.action_net.weight, c.policy.action_net.weight)


def test_pretrain_warm_starts_ppo_actor_only(cartpole_demos):
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, seed=0, device="cpu")
    state = model.policy.state_dict()
    critic = {k: v.clone() for k, v in state.items() if k.startswith("value_net")}
    records: list[tuple[str, float]] = []
    dumps: list[int] = []

    class Recorder:
        def record(self, key: str, value: float) -> None:
            records.append((key, value))

        def dump(self, step: int) -> None:
            dumps.append(step)

    stats = pretrain_policy(model.policy, cartpole_demos, BCConfig(steps=150, batch_size=128),
                            progress=True, logger=Recorder())
    # measured with seeds 0 / 1 / 2 (PPO and BC): accuracy 0.784 / 0.770 / 0.771 (0.5 by chance)
    assert stats["accuracy"] > 0.65 and stats["steps"] == 150, stats
    assert dumps == [100, 150] and ("bc/neglogp", stats["neglogp"]) in records
    for k, v in critic.items():
        assert torch.equal(model.policy.state_dict()[k], v), k
    assert not model.policy.optimizer.state  # PPO's own Adam is left alone


def test_save_load_round_trip(tmp_path, cartpole_demos):
    bc = BC(CARTPOLE.observation_space, CARTPOLE.action_space, BCConfig(steps=30, net_arch=(32,)))
    bc.fit(cartpole_demos).save(tmp_path / "bc")
    files = sorted(p.name for p in (tmp_path / "bc").iterdir())
    assert files == ["config.json", "policy.safetensors"]
    meta = json.loads((tmp_path / "bc" / "config.json").read_text())
    assert meta["config"]["net_arch"] == [32]
    assert meta["action_space"] == {"type": "Discrete", "n": 2, "start": 0}

    loaded = BC.load(tmp_path / "bc")
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), bc.predict(obs))
    assert loaded.predict(obs[0]).shape == ()  # single observation, like SB3
    assert loaded.config == bc.config and loaded.stats == bc.stats

    cont = BC(PENDULUM.observation_space, PENDULUM.action_space, BCConfig(steps=5))
    cont.fit(pendulum_data(256, 0)).save(tmp_path / "cont")
    cont_loaded = BC.load(tmp_path / "cont")
    np.testing.assert_array_equal(cont_loaded.predict(obs[:, :3]), cont.predict(obs[:, :3]))


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        BC.load(tmp_path / "nope")
    bc = BC(CARTPOLE.observation_space, CARTPOLE.action_space)
    path = bc.save(tmp_path / "bc")
    weights = (path / "policy.safetensors").read_bytes()
    (path / "policy.safetensors").unlink()
    with pytest.raises(CheckpointError, match="policy.safetensors is missing"):
        BC.load(path)
    (path / "policy.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="corrupt or not safetensors"):
        BC.load(path)
    (path / "policy.safetensors").write_bytes(weights)
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["net_arch"] = [7]
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit the network"):
        BC.load(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        BC.load(path)


def test_too_few_transitions():
    bc = BC(PENDULUM.observation_space, PENDULUM.action_space, BCConfig(batch_size=256))
    message = r"too few transitions \(100\) for batch size 256: lower --batch-size"
    with pytest.raises(ValueError, match=message):
        bc.fit(pendulum_data(100, 0))


def test_mismatched_spaces(cartpole_demos):
    episodes = rollout_episodes(lambda o: pendulum_expert(o[None])[0], "Pendulum-v1", 1, seed=0)
    pendulum_demos = Demonstrations(tuple(episodes), "Pendulum-v1",
                                    PENDULUM.observation_space, PENDULUM.action_space)
    bc = BC(CARTPOLE.observation_space, CARTPOLE.action_space, BCConfig(batch_size=8))
    with pytest.raises(ValueError, match="Pendulum-v1 do not fit the policy: observation space"):
        bc.fit(pendulum_demos)
    with pytest.raises(ValueError, match=r"observations have shape \(3,\)"):
        bc.fit(pendulum_demos.transitions())
    bad = cartpole_demos.transitions()
    bad = Transitions(bad.obs, bad.acts + 1, bad.next_obs, bad.dones)  # 1..2 for Discrete(2)
    with pytest.raises(ValueError, match=r"discrete actions must lie in \[0, 2\)"):
        bc.fit(bad)


def test_config_validation():
    assert BCConfig(net_arch="32,16").net_arch == (32, 16)  # as the command line passes it
    assert BCConfig(net_arch=[8]).net_arch == (8,)
    with pytest.raises(ValueError, match="net_arch"):
        BCConfig(net_arch="64,x")
    with pytest.raises(ValueError, match="batch_size"):
        BCConfig(batch_size=0)
