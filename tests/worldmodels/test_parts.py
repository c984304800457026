"""World-model parts: V's shapes and ELBO, the mixture NLL against a direct computation, M's
dream steps, and the pixel test bed."""

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from gailkit.nn.mdn import MDNHead, mixture_mean, mixture_nll, sample_mixture
from gailkit.worldmodels import MDNRNN, ConvVAE, MDNRNNConfig, elbo_loss


def test_vae_shapes_and_errors():
    vae = ConvVAE(latent_dim=8)
    recon, mean, logvar = vae(torch.rand(3, 3, 64, 64), generator=torch.Generator().manual_seed(0))
    assert recon.shape == (3, 3, 64, 64) and mean.shape == logvar.shape == (3, 8)
    assert 0.0 <= recon.min() and recon.max() <= 1.0
    with pytest.raises(ValueError, match=r"frames of shape \(B, 3, 64, 64\), got \(2, 3, 32, 32\)"):
        vae.encode(torch.rand(2, 3, 32, 32))


def test_elbo_by_hand():
    frames = torch.full((2, 3, 64, 64), 0.5)
    recon = torch.full((2, 3, 64, 64), 0.25)
    mean = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    loss, stats = elbo_loss(recon, frames, mean, logvar, kl_tolerance=0.0)
    rec = 3 * 64 * 64 * 0.25**2
    kl = np.mean([0.5 * (1 + (4 - math.log(4) - 1)), 0.5 * 4])  # 0.5 * sum(mu^2 + var - log var - 1)
    assert stats["reconstruction"] == pytest.approx(rec) and stats["kl"] == pytest.approx(kl, rel=1e-6)
    assert loss.item() == pytest.approx(rec + kl, rel=1e-6)
    floored, _ = elbo_loss(recon, frames, mean, logvar, kl_tolerance=5.0)  # free bits: KL floored at 5 * 2
    assert floored.item() == pytest.approx(rec + 10.0, rel=1e-6)


def test_vae_reconstructs_better_than_the_mean_frame():
    torch.manual_seed(0)
    vae = ConvVAE(latent_dim=4)
    frames = torch.rand(8, 3, 1, 1).expand(8, 3, 64, 64).contiguous()  # flat colours
    mean_frame = ((frames.mean(0, keepdim=True) - frames) ** 2).sum((1, 2, 3)).mean().item()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for _ in range(50):
        recon, mean, logvar = vae(frames)
        loss, _ = elbo_loss(recon, frames, mean, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mu, _ = vae.encode(frames)
        sse = ((vae.decode(mu) - frames) ** 2).sum((1, 2, 3)).mean().item()
    # z tells the colours apart. Measured with torch seeds 0 / 1 / 2: 0.61 / 0.77 / 0.57 of the mean frame's error
    assert sse < 0.9 * mean_frame, f"V's squared error per frame {sse:.0f} vs {mean_frame:.0f} for the mean frame"


def direct_nll(target, logit_pi, mu, log_sigma):
    """p(z) = prod_d sum_k pi_k N(z_d; mu_k, sigma_k), computed directly in float64."""
    t, lp, m, ls = (x.double() for x in (target, logit_pi, mu, log_sigma))
    pi = torch.softmax(lp, -1)
    sigma = torch.exp(ls)
    dens = torch.exp(-0.5 * ((t.unsqueeze(-1) - m) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return -torch.log((pi * dens).sum(-1)).sum(-1)


def test_mixture_nll_matches_direct_computation():
    g = torch.Generator().manual_seed(0)
    shape = (4, 7, 5, 3)  # (B, T, D, K)
    logit_pi, mu, log_sigma = torch.randn(shape, generator=g), torch.randn(shape, generator=g), \
        0.3 * torch.randn(shape, generator=g)
    target = torch.randn(4, 7, 5, generator=g)
    torch.testing.assert_close(mixture_nll(target, logit_pi, mu, log_sigma).double(),
                               direct_nll(target, logit_pi, mu, log_sigma), rtol=1e-5, atol=1e-5)
    # far in the tail the direct density underflows to 0 (nll = inf); log-sum-exp stays finite
    far = target + 60.0
    assert torch.isinf(direct_nll(far, logit_pi, mu, log_sigma)).any()
    assert torch.isfinite(mixture_nll(far, logit_pi, mu, log_sigma)).all()


def test_mixture_weights_are_per_dimension():
    head = MDNHead(in_dim=6, out_dim=4, n_mixtures=3)
    logit_pi, mu, log_sigma = head(torch.randn(2, 6))
    assert logit_pi.shape == mu.shape == log_sigma.shape == (2, 4, 3)
    assert not torch.allclose(logit_pi[:, 0], logit_pi[:, 1])  # each dimension has its own weights


def test_sampling_temperature_and_seed():
    logit_pi = torch.tensor([[[0.0, 3.0]]]).expand(20_000, 1, 2)
    mu = torch.tensor([[[-5.0, 2.0]]]).expand(20_000, 1, 2)
    log_sigma = torch.full((20_000, 1, 2), math.log(0.5))
    s1 = sample_mixture(logit_pi, mu, log_sigma, generator=torch.Generator().manual_seed(1))
    s2 = sample_mixture(logit_pi, mu, log_sigma, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(s1, s2)
    p_second = 1 / (1 + math.exp(-3.0))
    assert (s1 > -1.5).float().mean().item() == pytest.approx(p_second, abs=0.01)
    hot = sample_mixture(logit_pi, mu, log_sigma, tau=4.0, generator=torch.Generator().manual_seed(1))
    assert (hot < -1.5).float().mean() > (s1 < -1.5).float().mean()  # flatter weights
    assert torch.equal(sample_mixture(logit_pi, mu, log_sigma, tau=0.0), torch.full((20_000, 1), 2.0))


def test_m_training_windows_cut_episodes_or_hold_them_whole():
    """``mdn_windows``: ``seq_len`` steps per window, padded and masked at an episode's end; a window
    at least as long as the episodes holds each one whole (a preset's ``mdn_seq_len=1000``)."""
    from gailkit.worldmodels.train import mdn_windows

    episodes = [(torch.arange(n + 1.0)[:, None].repeat(1, 2), torch.arange(n), torch.ones(n), torch.zeros(n))
                for n in (5, 3)]
    cut = mdn_windows(episodes, 4)
    assert [w[4].tolist() for w in cut] == [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0]]
    assert cut[1][0][:, 0].tolist() == [4, 5, 5, 5, 5]  # z from step 4 on, its last frame repeated as padding
    whole = mdn_windows(episodes, 1000)
    assert [int(w[4].sum()) for w in whole] == [5, 3] and all(len(w[1]) == 1000 for w in whole)
    assert whole[0][0][:6, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_mixture_mean_is_what_the_draws_average():
    """``mixture_mean`` at each temperature against its reference: the mean of 200,000 draws of
    ``sample_mixture`` at that temperature (standard error ~0.01 here), and the closed form."""
    n = 200_000
    logit_pi = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]]).expand(n, 2, 3)
    mu = torch.tensor([[-3.0, 1.0, 4.0], [0.5, -2.0, 6.0]]).expand(n, 2, 3)
    log_sigma = torch.full((n, 2, 3), math.log(0.7))
    for tau in (1.0, 2.0):
        draws = sample_mixture(logit_pi, mu, log_sigma, tau=tau, generator=torch.Generator().manual_seed(0))
        mean = mixture_mean(logit_pi[:1], mu[:1], tau=tau)[0]
        torch.testing.assert_close(draws.mean(0), mean, atol=0.05, rtol=0)
        w = np.exp(np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]]) / tau)
        closed = (w / w.sum(1, keepdims=True) * np.array([[-3.0, 1.0, 4.0], [0.5, -2.0, 6.0]])).sum(1)
        np.testing.assert_allclose(mean.numpy(), closed, rtol=1e-6)
    torch.testing.assert_close(mixture_mean(logit_pi[:1], mu[:1], tau=0.0)[0], torch.tensor([1.0, 0.5]))


def test_mdnrnn_loss_mask_and_seeded_dream():
    cfg = MDNRNNConfig(latent_dim=4, action_dim=2, discrete_actions=True, hidden=16, n_mixtures=3)
    torch.manual_seed(0)
    m = MDNRNN(cfg)
    z, a = torch.randn(2, 6, 4), torch.randint(0, 2, (2, 5))
    r, d = torch.randn(2, 5), torch.zeros(2, 5)
    mask = torch.ones(2, 5)
    mask[1, 3:] = 0
    full, _ = m.loss(z, a, r, d)
    masked, _ = m.loss(z, a, r, d, mask)
    z2 = z.clone()
    z2[1, 4:] += 100.0  # padding after the end changes nothing under the mask
    assert m.loss(z2, a, r, d, mask)[0].item() == pytest.approx(masked.item(), rel=1e-6)
    assert full.item() != pytest.approx(masked.item())

    def dream(seed, n=500, steps=10):
        g = torch.Generator().manual_seed(seed)
        zt, state, total = torch.zeros(n, 4), None, torch.zeros(n)
        for _ in range(steps):
            zt, rew, done, state, h = m.step(zt, torch.zeros(n, dtype=torch.long), state, tau=1.15, generator=g)
            total += rew
        return zt, total

    za, ra = dream(3)
    zb, rb = dream(3)
    assert torch.equal(za, zb) and torch.equal(ra, rb)  # same seed, same dream
    assert not torch.equal(za, dream(4)[0])

    # latent_noise: 1 is the draw, 0 the mixture's mean (no draw: any seed), 0.5 half way between them
    z0, a0 = torch.randn(6, 4), torch.zeros(6, dtype=torch.long)
    out = m(z0[:, None], a0[:, None])
    expected = mixture_mean(out.logit_pi[:, 0], out.mu[:, 0], tau=1.15)

    def next_z(noise, seed=5):
        return m.step(z0, a0, tau=1.15, generator=torch.Generator().manual_seed(seed), latent_noise=noise)[0]

    torch.testing.assert_close(next_z(0.0), expected)
    assert torch.equal(next_z(0.0, seed=6), next_z(0.0))
    assert torch.equal(next_z(1.0), m.step(z0, a0, tau=1.15, generator=torch.Generator().manual_seed(5))[0])
    torch.testing.assert_close(next_z(0.5), (next_z(1.0) + expected) / 2)
    assert not torch.allclose(next_z(1.0), expected)


def test_pixel_test_bed():
    env = gym.make("gailkit/CartPolePixels-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and obs.std() > 0
    frame = ConvVAE(latent_dim=8).encode(torch.as_tensor(obs).permute(2, 0, 1)[None].float() / 255)
    assert frame[0].shape == (1, 8)
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        from gailkit.envs import PixelObservation

        PixelObservation(gym.make("CartPole-v1"))


def tiny_world_model(tmp_path, action_space=None):
    from gailkit.worldmodels import WorldModel

    torch.manual_seed(0)
    wm = WorldModel(action_space or gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    return wm, wm.save(tmp_path / "wm")


def test_dream_env_passes_check_env_and_renders(tmp_path):
    from gymnasium.utils.env_checker import check_env

    _, path = tiny_world_model(tmp_path)
    env = gym.make("gailkit/Dream-v0", world_model=str(path), render_mode="rgb_array", max_steps=50)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4 + 8,)
    assert env.render().shape == (64, 64, 3)
    a = [env.step(1)[0] for _ in range(3)]
    env.reset(seed=1)
    b = [env.step(1)[0] for _ in range(3)]
    np.testing.assert_array_equal(a, b)  # seeded dream

    # latent_noise=0: the same start, then M's mixture mean where the default draws
    mean_env = gym.make("gailkit/Dream-v0", world_model=str(path), max_steps=50, latent_noise=0.0)
    start, _ = mean_env.reset(seed=1)
    np.testing.assert_array_equal(start, env.reset(seed=1)[0])
    m = mean_env.unwrapped.model.mdn
    with torch.no_grad():
        out = m(torch.as_tensor(start[None, None, :4]), torch.ones(1, 1, dtype=torch.long))
    expected = mixture_mean(out.logit_pi[0], out.mu[0], tau=1.15)[0].numpy()
    np.testing.assert_allclose(mean_env.step(1)[0][:4], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(env.step(1)[0][:4], expected)


def test_world_model_for_another_action_space(tmp_path):
    from gailkit.nn.checkpoint import CheckpointError
    from gailkit.worldmodels import WorldModel

    _, path = tiny_world_model(tmp_path)
    loaded = WorldModel.load(path, action_space=gym.spaces.Discrete(2))
    assert loaded.latent_dim == 4
    with pytest.raises(CheckpointError, match=r"trained for actions Discrete\(2\), not Box\(3,\)"):
        WorldModel.load(path, action_space=gym.spaces.Box(-1, 1, (3,)))


def test_chunked_collection_resumes_and_rejects_truncated_chunks(tmp_path):
    from gailkit.worldmodels.data import DataChunkError, collect_chunks, load_chunk

    paths = collect_chunks("gailkit/CartPolePixels-v1", tmp_path, episodes=3, episodes_per_chunk=2, progress=False)
    assert [p.name for p in paths] == ["chunk_00000.npz", "chunk_00001.npz"]
    first = load_chunk(paths[0])
    assert len(first["lengths"]) == 2 and first["frames"].shape[1:] == (64, 64, 3)
    assert len(first["frames"]) == first["lengths"].sum() + 2
    blob = paths[1].read_bytes()
    paths[1].write_bytes(blob[: len(blob) // 3])  # an interrupted write
    with pytest.raises(DataChunkError, match="truncated.*run the collection again"):
        load_chunk(paths[1])
    before = paths[0].stat().st_mtime_ns
    again = collect_chunks("gailkit/CartPolePixels-v1", tmp_path, episodes=3, episodes_per_chunk=2, progress=False)
    assert again[0].stat().st_mtime_ns == before  # kept
    fresh = collect_chunks("gailkit/CartPolePixels-v1", tmp_path / "fresh", episodes=3, episodes_per_chunk=2,
                           progress=False)
    for key in ("frames", "actions", "rewards", "lengths"):  # the rewritten chunk is what a clean run writes
        np.testing.assert_array_equal(load_chunk(again[1])[key], load_chunk(fresh[1])[key])


def test_quick_pipeline_mechanics(tmp_path):
    """collect -> V -> M -> controller in the dream -> real evaluation, on a few episodes."""
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.controller import DreamTrainingConfig, train_controller_in_dream
    from gailkit.worldmodels.data import collect_chunks
    from gailkit.worldmodels.real import evaluate_controller
    from gailkit.worldmodels.train import start_latents, train_mdn, train_vae

    collect_chunks("gailkit/CartPolePixels-v1", tmp_path / "data", episodes=4, progress=False)
    train_vae(tmp_path / "data", tmp_path / "wm", latent_dim=4, epochs=1, reconstruction="bce", progress=False)
    before = WorldModel.load(tmp_path / "wm").mdn.state_dict()
    model = train_mdn(tmp_path / "data", tmp_path / "wm", epochs=2, seq_len=16, progress=False)
    assert any(not torch.equal(before[k], v) for k, v in model.mdn.state_dict().items())  # M trained
    from gailkit.worldmodels.data import chunk_paths, load_chunk

    steps = sum(int(load_chunk(p)["lengths"].sum()) for p in chunk_paths(tmp_path / "data"))
    assert model.data_steps == steps == WorldModel.load(tmp_path / "wm").data_steps  # what the data cost
    assert WorldModel.load(tmp_path / "wm").reconstruction == "bce"  # V's loss, for training it further
    z0 = start_latents(model, tmp_path / "data")
    assert z0.shape == (4, 4)
    best, history = train_controller_in_dream(model, DreamTrainingConfig(generations=2, popsize=6, rollouts=2,
                                                                         max_steps=20), tmp_path / "c",
                                              start_z=z0, progress=False)
    assert len(history) == 2 and best.shape == (2 * (4 + 256 + 1),)
    returns = evaluate_controller(model, best, "gailkit/CartPolePixels-v1", 2)
    assert returns.shape == (2,) and np.array_equal(returns, np.round(returns))  # CartPole pays 1 per step
    again = evaluate_controller(WorldModel.load(tmp_path / "wm"), best, "gailkit/CartPolePixels-v1", 2)
    np.testing.assert_array_equal(again, returns)  # the saved V and M, seeded evaluation: the same episodes


def test_pictures(tmp_path):
    from PIL import Image

    from gailkit.worldmodels.pictures import dream_strip, reconstruction_grid

    model, _ = tiny_world_model(tmp_path)
    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    grid = Image.open(reconstruction_grid(model, frames, tmp_path / "recon.png"))
    assert grid.size == (5 * 66, 130)
    strip = dream_strip(model, "gailkit/CartPolePixels-v1", tmp_path / "dream.png", steps=6, every=2)
    assert Image.open(strip).size[1] == 130 and (tmp_path / "dream.gif").exists()


def test_dream_strip_draws_a_row_per_member(tmp_path):
    """An ensemble's strip: one dream row per M, all from the same draws; the first row is the single M's."""
    import copy

    from PIL import Image

    from gailkit.worldmodels.pictures import dream_strip

    model, _ = tiny_world_model(tmp_path)
    single = np.array(Image.open(dream_strip(model, "gailkit/CartPolePixels-v1", tmp_path / "one.png", steps=6)))
    twin, other = copy.deepcopy(model.mdn), copy.deepcopy(model.mdn)
    with torch.no_grad():
        for weight in other.parameters():
            weight.add_(0.5 * torch.randn_like(weight))
    model.members = [twin, other]
    strip = np.array(Image.open(dream_strip(model, "gailkit/CartPolePixels-v1", tmp_path / "three.png", steps=6)))
    rows = [strip[66 * k:66 * k + 64] for k in range(4)]  # real, then one dream per M, 2-pixel gaps between
    assert strip.shape[0] == 4 * 64 + 3 * 2 and strip.shape[1] == single.shape[1]
    np.testing.assert_array_equal(strip[:130], single)  # real and the first M's dream, as with M alone
    np.testing.assert_array_equal(rows[2], rows[1])  # the same M from the same draws dreams the same
    assert np.array_equal(rows[3][:, :64], rows[1][:, :64])  # every dream starts from V's latent of the first frame
    assert not np.array_equal(rows[3], rows[1])  # and another M dreams on otherwise
    assert Image.open(tmp_path / "three.gif").size == (4 * 64, 64)  # real beside each M's dream


def test_cli_pipeline(tmp_path, capsys):
    from gailkit.cli import main

    common = ["--dir", str(tmp_path), "--episodes", "2", "--generations", "1", "--popsize", "4", "--rollouts", "2",
              "--eval-episodes", "1"]
    for action, more in (("collect", []), ("train-vae", ["--epochs", "2"]), ("train-mdn", ["--epochs", "3"]),
                         ("train-controller", []), ("eval", []), ("dream-video", [])):
        assert main(["worldmodel", action, *common, *more]) == 0, action
    assert main(["worldmodel", "train-controller", "--where", "real", "--workers", "1", *common]) == 0
    assert main(["worldmodel", "eval", "--solution", "mean", *common]) == 0  # the CMA-ES mean, not the best candidate
    out = capsys.readouterr().out
    assert "reconstructions.png" in out and "(dream return)" in out and "(real return)" in out
    assert "controller" in out and "random" in out
    for name in ("reconstructions.png", "dream.png", "dream.gif", "model/world_model.json",
                 "controller_dream/cmaes.json", "controller_real/history.json"):
        assert (tmp_path / name).exists(), name


def test_dream_vec_env_auto_resets_each_dream(tmp_path):
    from gailkit.worldmodels.vec_dream import DreamVecEnv

    model, _ = tiny_world_model(tmp_path)
    env, twin = DreamVecEnv(model, 64, max_steps=5, seed=3), DreamVecEnv(model, 64, max_steps=5, seed=3)
    np.testing.assert_array_equal(env.reset(), twin.reset())
    assert env.observation_space.shape == (4 + 8,)
    clock, actions = np.zeros(64), np.random.default_rng(0).integers(0, 2, (12, 64))
    for t in range(12):
        obs, rewards, dones, infos = env.step(actions[t])
        np.testing.assert_array_equal(obs, twin.step(actions[t])[0])  # same seed, same dreams
        clock += 1
        truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos])
        assert (clock[truncated] == 5).all() and (clock[dones] <= 5).all()  # each dream keeps its own clock
        assert all("terminal_observation" in infos[i] for i in np.flatnonzero(dones))
        clock[dones] = 0
        np.testing.assert_array_equal(env._t, clock)
    assert truncated.any() or dones.any()


def test_sb3_ppo_learns_in_a_dream_vec_env(tmp_path):
    from stable_baselines3 import PPO

    from gailkit.worldmodels.vec_dream import DreamVecEnv

    model, _ = tiny_world_model(tmp_path)
    with torch.no_grad():  # a dream in which pushing 1 pays: M's reward reads out the action it was fed
        model.mdn.lstm.weight_ih_l0[:, 4:].mul_(10.0)
        h0, h1 = (model.mdn.step(torch.zeros(1, 4), torch.tensor([a]))[4][0] for a in (0, 1))
        model.mdn.reward_head.weight.copy_((h1 - h0) / (h1 - h0).square().sum())
        model.mdn.reward_head.bias.fill_(-float(model.mdn.reward_head.weight[0] @ (h0 + h1) / 2))
        model.mdn.done_head.bias.fill_(-20.0)  # dreams end at max_steps only
    env = DreamVecEnv(model, 64, max_steps=5, seed=3)
    ppo = PPO("MlpPolicy", env, n_steps=8, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=0, device="cpu")
    probe = torch.as_tensor(env.reset())

    def p_push_1() -> float:
        with torch.no_grad():
            return ppo.policy.get_distribution(probe).distribution.probs[:, 1].mean().item()

    before = p_push_1()
    ppo.learn(1024)
    # measured with world-model and PPO seeds 0 / 1 / 2: P(1) 0.50 -> 0.725 / 0.714 / 0.699
    assert before == pytest.approx(0.5, abs=0.05) and p_push_1() > 0.6, f"P(push 1) {before:.3f} -> {p_push_1():.3f}"


def test_a_v_only_controller_widened_with_memory_acts_the_same_and_narrows_back(tmp_path):
    from gailkit.errors import UsageError
    from gailkit.worldmodels.linear_controller import controller_for, memory_index, with_memory, without_memory

    model, _ = tiny_world_model(tmp_path, gym.spaces.Box(-1.0, 1.0, (3,)))
    small, full = controller_for(model, memory=False), controller_for(model)
    rng = np.random.default_rng(0)
    v_only = rng.normal(size=small.n_params)
    wide = with_memory(model, v_only)
    assert wide.shape == (full.n_params,)
    index = memory_index(model)  # z's weights and the biases: zero them and only h moves the output
    np.testing.assert_array_equal(wide[index], v_only)
    h_only = rng.normal(size=full.n_params)
    h_only[index] = 0.0
    z_moved = rng.normal(size=(2, full.in_dim))
    z_moved[1, small.in_dim:] = z_moved[0, small.in_dim:]
    acts = full.act(np.repeat(h_only[None], 2, 0), z_moved)
    np.testing.assert_array_equal(acts[0], acts[1])
    z_moved[1] = -z_moved[0]  # h moved as well
    acts = full.act(np.repeat(h_only[None], 2, 0), z_moved)
    assert not np.allclose(acts[0], acts[1])
    obs = rng.normal(size=(16, full.in_dim))  # [z, h]
    np.testing.assert_array_equal(full.act(np.repeat(wide[None], 16, 0), obs),
                                  small.act(np.repeat(v_only[None], 16, 0), obs[:, :small.in_dim]))
    moved = wide.copy()
    moved[small.in_dim] = 5.0  # a weight on h (row 0, first h input) is live
    assert not np.allclose(full.act(moved[None], obs[:1]), full.act(wide[None], obs[:1]))
    with pytest.raises(UsageError, match=f"has {small.n_params} parameters"):
        with_memory(model, wide)
    np.testing.assert_array_equal(without_memory(model, wide), v_only)  # the inverse
    narrowed = without_memory(model, moved)  # h's weights dropped, z's and the biases kept
    np.testing.assert_array_equal(narrowed, v_only)
    moved[0] = 7.0  # a weight on z (row 0, first z input) is kept
    assert without_memory(model, moved)[0] == 7.0
    with pytest.raises(UsageError, match=f"has {full.n_params} parameters"):
        without_memory(model, v_only)
    h = rng.normal(size=full.in_dim - small.in_dim)  # h held at a constant: folded into the bias
    with_h = np.concatenate([obs[:, :small.in_dim], np.repeat(h[None], 16, 0)], 1)
    folded = np.repeat(without_memory(model, moved, h)[None], 16, 0)
    np.testing.assert_allclose(small.act(folded, obs[:, :small.in_dim]),
                               full.act(np.repeat(moved[None], 16, 0), with_h), rtol=1e-5, atol=1e-6)
    assert not np.allclose(without_memory(model, moved, h), without_memory(model, moved))


def test_all_but_z_weights_leave_the_map_from_z_alone(tmp_path):
    from gailkit.worldmodels.linear_controller import all_but_z_weights, controller_for

    model, _ = tiny_world_model(tmp_path, gym.spaces.Box(-1.0, 1.0, (3,)))
    small, full = controller_for(model, memory=False), controller_for(model)
    index = all_but_z_weights(model)
    assert len(index) == full.n_params - small.out_dim * small.in_dim  # h's weights and the biases
    rng = np.random.default_rng(0)
    z_only, rest = rng.normal(size=full.n_params), rng.normal(size=full.n_params)
    z_only[index] = 0.0  # only the weights on z left
    rest[np.setdiff1d(np.arange(full.n_params), index)] = 0.0  # everything but them
    obs = rng.normal(size=(2, full.in_dim))
    same_h, same_z = obs.copy(), obs.copy()
    same_h[1, small.in_dim:] = obs[0, small.in_dim:]  # row 1: another z, the same h
    same_z[1, :small.in_dim] = obs[0, :small.in_dim]  # row 1: the same z, another h
    acts = full.act(np.repeat(z_only[None], 2, 0), same_z)
    np.testing.assert_array_equal(acts[0], acts[1])  # the weights on z read no h
    acts = full.act(np.repeat(rest[None], 2, 0), same_h)
    np.testing.assert_array_equal(acts[0], acts[1])  # and the others no z
    assert not np.allclose(*full.act(np.repeat(z_only[None], 2, 0), same_h))


def test_mean_memory_is_the_average_h_of_m_stepped_frame_by_frame(tmp_path):
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
    from gailkit.worldmodels.train import mean_memory

    collect_chunks("gailkit/CartPolePixels-v1", tmp_path / "data", episodes=3, episodes_per_chunk=2, progress=False)
    torch.manual_seed(0)
    model = WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8, n_mixtures=2)
    hs = []  # as the real-env evaluation steps M: one frame at a time, its state carried, reset per episode
    with torch.no_grad():
        for path in chunk_paths(tmp_path / "data"):
            chunk = load_chunk(path)
            z = model.encode_frames(chunk["frames"], mean=True)
            f0 = a0 = 0
            for length in chunk["lengths"]:
                state = None
                for t in range(length):
                    h, state = model.mdn.memory(z[None, f0 + t : f0 + t + 1],
                                                torch.as_tensor(chunk["actions"][a0 + t : a0 + t + 1])[None], state)
                    hs.append(h[0, 0].double())
                f0, a0 = f0 + length + 1, a0 + length
    expected = torch.stack(hs).mean(0).numpy()
    got = mean_memory(model, tmp_path / "data")
    assert got.shape == (8,) and np.abs(got).max() > 1e-3, got
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # its principal components: scikit-learn's PCA of the same h's (directions up to sign)
    from sklearn.decomposition import PCA

    from gailkit.errors import UsageError
    from gailkit.worldmodels.train import memory_components

    mean, components = memory_components(model, tmp_path / "data", 3)
    reference = PCA(3).fit(torch.stack(hs).numpy())
    np.testing.assert_allclose(mean, reference.mean_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(components @ components.T, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(np.abs(components @ reference.components_.T), np.eye(3), atol=1e-3)
    with pytest.raises(UsageError, match="from 1 to its 8 units"):
        memory_components(model, tmp_path / "data", 9)


def test_an_m_that_does_not_see_the_actions(tmp_path):
    """action_input=False: M's memory is the same whatever the actions, survives a save and load, and
    train_mdn fits one; the default M's memory does depend on them. train_mdn for 0 epochs saves M as initialised."""
    from gailkit.worldmodels import WorldModel
    from gailkit.worldmodels.data import collect_chunks
    from gailkit.worldmodels.train import train_mdn, train_vae

    z = torch.randn(2, 6, 4)
    a, other = torch.rand(2, 6, 3), torch.rand(2, 6, 3)
    torch.manual_seed(0)
    seeing = MDNRNN(MDNRNNConfig(latent_dim=4, action_dim=3, hidden=8))
    assert not torch.allclose(seeing.memory(z, a)[0], seeing.memory(z, other)[0])
    blind = MDNRNN(MDNRNNConfig(latent_dim=4, action_dim=3, hidden=8, action_input=False))
    torch.testing.assert_close(blind.memory(z, a)[0], blind.memory(z, other)[0], rtol=0, atol=0)

    collect_chunks("gailkit/CartPolePixels-v1", tmp_path / "data", episodes=3, progress=False)
    train_vae(tmp_path / "data", tmp_path / "wm", latent_dim=4, epochs=1, progress=False)
    model = train_mdn(tmp_path / "data", tmp_path / "wm", epochs=1, seq_len=8, hidden=8, action_input=False,
                      progress=False)
    loaded = WorldModel.load(tmp_path / "wm")
    assert model.mdn_config.action_input is False and loaded.mdn_config.action_input is False
    a_cart = torch.randint(0, 2, (2, 6))
    torch.testing.assert_close(loaded.mdn.memory(z, a_cart)[0], loaded.mdn.memory(z, 1 - a_cart)[0], rtol=0, atol=0)
    torch.testing.assert_close(loaded.mdn.memory(z, a_cart)[0], model.mdn.memory(z, a_cart)[0])
    from gailkit.worldmodels.presets import WM_PRESETS

    assert WM_PRESETS["fast-2h-m32-noindicators-blind"].mdn_options()["action_input"] is False
    assert WM_PRESETS["fast-2h-m32-noindicators"].mdn_options()["action_input"] is True
    dagger = WM_PRESETS["fast-2h-m32-noindicators-blind-dagger"]  # the blind preset, its controllers started by DAgger
    assert dagger.dagger_iterations == 6 and dagger.warm_start_generations == 0
    assert dagger == dataclasses.replace(WM_PRESETS["fast-2h-m32-noindicators-blind"], dagger_iterations=6,
                                         warm_start_generations=0, generations=30, controller_sigma0=0.01)

    # 0 epochs: M as initialised (the -untrained preset's reservoir), the same weights as a fresh MDNRNN of its seed
    untrained = train_mdn(tmp_path / "data", tmp_path / "wm", epochs=0, seq_len=8, hidden=8, seed=3, progress=False)
    torch.manual_seed(3)
    fresh, saved = MDNRNN(untrained.mdn_config).state_dict(), WorldModel.load(tmp_path / "wm").mdn.state_dict()
    for name, value in fresh.items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)
    assert WM_PRESETS["fast-2h-m32-noindicators-untrained"] == dataclasses.replace(
        WM_PRESETS["fast-2h-m32-noindicators"], mdn_epochs=0)


def test_next_latent_errors_against_a_step_by_step_computation(tmp_path):
    """M's forecast and copying's, scored against V's posterior mean of the next frame: M fed the means
    (the default) or one seeded draw per frame (``sampled``), computed here frame by frame with V and M."""
    from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
    from gailkit.worldmodels.train import next_latent_errors, train_mdn, train_vae

    collect_chunks("gailkit/CartPolePixels-v1", tmp_path / "data", episodes=3, progress=False)
    train_vae(tmp_path / "data", tmp_path / "wm", latent_dim=4, epochs=1, progress=False)
    model = train_mdn(tmp_path / "data", tmp_path / "wm", epochs=1, seq_len=8, hidden=8, progress=False)
    chunk = load_chunk(chunk_paths(tmp_path / "data")[0])

    def by_hand(sampled: bool, seed: int) -> tuple[float, float]:
        mu, logvar = model.posterior(chunk["frames"])
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
        z = mu + torch.exp(0.5 * logvar) * eps if sampled else mu
        m_err, copy_err, f0, a0 = [], [], 0, 0
        for length in chunk["lengths"]:
            state = None
            for t in range(length):  # M stepped one frame at a time
                with torch.no_grad():
                    out = model.mdn(z[None, None, f0 + t], torch.as_tensor(chunk["actions"][a0 + t])[None, None], state)
                state = out.state
                forecast = (torch.softmax(out.logit_pi[0, 0], -1) * out.mu[0, 0]).sum(-1)
                m_err.append(float(((forecast - mu[f0 + t + 1]) ** 2).sum()))
                copy_err.append(float(((z[f0 + t] - mu[f0 + t + 1]) ** 2).sum()))
            f0, a0 = f0 + length + 1, a0 + length
        return float(np.mean(m_err)), float(np.mean(copy_err))

    for sampled, seed in ((False, 0), (True, 0), (True, 7)):
        got = next_latent_errors(model, tmp_path / "data", sampled=sampled, seed=seed)
        np.testing.assert_allclose(got, by_hand(sampled, seed), rtol=1e-5)
    means, drawn = next_latent_errors(model, tmp_path / "data"), next_latent_errors(model, tmp_path / "data",
                                                                                     sampled=True)
    assert drawn[1] > means[1], (drawn, means)  # copying a draw pays V's noise on top of the change


def test_m_can_draw_its_latents_from_v_again_each_epoch(tmp_path):
    """``fresh_samples``: the first epoch sees the draw the default keeps for every epoch (so one epoch
    gives the same M), later epochs new draws of V's posterior; the default is the former training."""
    from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
    from gailkit.worldmodels.model import WorldModel
    from gailkit.worldmodels.presets import WM_PRESETS
    from gailkit.worldmodels.train import chunk_posteriors, sampled_episodes, train_mdn, train_vae

    collect_chunks("gailkit/CartPolePixels-v1", tmp_path / "data", episodes=3, progress=False)
    train_vae(tmp_path / "data", tmp_path / "wm", latent_dim=4, epochs=1, progress=False)
    model = WorldModel.load(tmp_path / "wm")
    posteriors = chunk_posteriors(model, [tmp_path / "data"])
    draws = torch.Generator().manual_seed(5)
    first, second = sampled_episodes(model, posteriors, draws), sampled_episodes(model, posteriors, draws)
    assert len(first) == 3
    for (z1, *rest1), (z2, *rest2) in zip(first, second):  # new draws of the latents, the same episodes
        assert not torch.equal(z1, z2) and all(torch.equal(x, y) for x, y in zip(rest1, rest2))
    mu, logvar = model.posterior(load_chunk(chunk_paths(tmp_path / "data")[0])["frames"])
    torch.testing.assert_close(mu, posteriors[0][0], rtol=0, atol=0)

    def weights(**kw):
        m = train_mdn(tmp_path / "data", tmp_path / "wm", seq_len=8, hidden=8, seed=1, progress=False, **kw)
        return torch.cat([p.detach().flatten() for p in m.mdn.parameters()])

    assert torch.equal(weights(epochs=1), weights(epochs=1, fresh_samples=True))
    assert not torch.equal(weights(epochs=2), weights(epochs=2, fresh_samples=True))
    epochs = []
    weights(epochs=2, after_epoch=lambda n, m: epochs.append((n, m.mdn_config.hidden)))
    assert epochs == [(1, 8), (2, 8)], epochs
    assert WM_PRESETS["quick"].mdn_options()["fresh_samples"] is False
    assert WM_PRESETS["fast-2h-m32-hold-z-m30"].mdn_options()["fresh_samples"] is True
    assert WM_PRESETS["fast-2h-m32-hold-z-m30"] == dataclasses.replace(WM_PRESETS["fast-2h-m32-hold-z"], mdn_epochs=30,
                                                                       m_fresh_samples=True)
    means = WM_PRESETS["fast-2h-m32-hold-z-m30-means"]
    assert means == dataclasses.replace(WM_PRESETS["fast-2h-m32-hold-z-m30"], controller_latent_noise=0.0)
    assert means.controller_options()["latent_noise"] == 0.0
    assert WM_PRESETS["fast-2h-m32-hold-z-m30"].controller_options()["latent_noise"] == 1.0
    no_gauge = WM_PRESETS["fast-2h-m32-hold-z-m30-means-noindicators"]
    assert no_gauge == dataclasses.replace(means, env="gailkit/FastCarRacing64NoIndicators-v3")
    assert no_gauge.env == WM_PRESETS["fast-2h-m32-noindicators"].env
    whole = WM_PRESETS["fast-2h-m32-hold-z-means-m-whole"]
    assert whole == dataclasses.replace(means, mdn_seq_len=1000, mdn_batch=4, mdn_epochs=100)
    assert (whole.mdn_options()["seq_len"], whole.mdn_options()["batch_size"]) == (1000, 4)
    assert (means.mdn_options()["seq_len"], means.mdn_options()["batch_size"]) == (32, 32)


@pytest.mark.parametrize("action", ["train-mdn", "iterate"])
def test_worldmodel_cli_trains_m_with_the_preset_s_options_and_fresh_samples_on_request(tmp_path, monkeypatch, action):
    """``train-mdn`` and ``iterate``'s refits take every M option of the preset (an M blind to the actions
    stays blind), and ``--m-fresh-samples``, ``--m-seq-len`` and ``--m-ensemble`` over it."""
    import gailkit.worldmodels.iterative as iterative
    import gailkit.worldmodels.train as train
    from gailkit.cli import main

    seen = []

    class Stop(Exception):
        pass

    def record(*args, **kwargs):
        seen.append(kwargs.get("mdn_options", kwargs))
        raise Stop

    monkeypatch.setattr(train, "train_mdn", record)
    monkeypatch.setattr(iterative, "train_iteratively", record)
    for extra in ([], ["--m-fresh-samples"], ["--m-seq-len", "1000"], ["--m-ensemble", "3"]):
        with pytest.raises(Stop):
            main(["worldmodel", action, "--preset", "fast-2h-m32-noindicators-blind", "--dir", str(tmp_path), *extra])
    options = [(s["action_input"], s["fresh_samples"], s.get("hidden"), s["seq_len"], s["batch_size"], s["ensemble"])
               for s in seen]
    assert options == [(False, False, 32, 32, 32, 1), (False, True, 32, 32, 32, 1), (False, False, 32, 1000, 32, 1),
                       (False, False, 32, 32, 32, 3)], options
    with pytest.raises(SystemExit) as stop:
        main(["worldmodel", action, "--preset", "quick", "--dir", str(tmp_path), "--m-ensemble", "0"])
    assert stop.value.code == 2


def test_worldmodel_cli_iterate_records_with_the_exploration_noise_asked_for(tmp_path, monkeypatch):
    import gailkit.worldmodels.iterative as iterative
    from gailkit.cli import main

    seen = []

    class Stop(Exception):
        pass

    def record(model_dir, data, env_id, config, *args, **kwargs):
        seen.append(config.noise)
        raise Stop

    monkeypatch.setattr(iterative, "train_iteratively", record)
    for extra in ([], ["--explore-noise", "0"]):
        with pytest.raises(Stop):
            main(["worldmodel", "iterate", "--preset", "quick", "--dir", str(tmp_path), *extra])
    assert seen == [0.1, 0.0]
    with pytest.raises(SystemExit) as stop:
        main(["worldmodel", "iterate", "--preset", "quick", "--dir", str(tmp_path), "--explore-noise", "-1"])
    assert stop.value.code == 2
