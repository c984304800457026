"""--perception-train: V and M trained on the expert's and the policy's frames during a run."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from gailkit.agents.gail import GAILConfig
from gailkit.agents.imitate import evaluate_run, imitate
from gailkit.agents.perception import Perception, VecPerception
from gailkit.agents.perception_training import Episode, PerceptionTrainer, PerceptionTrainingOptions
from gailkit.agents.registry import algorithm
from gailkit.nn.checkpoint import load_tensors
from gailkit.nn.vae import elbo_loss
from gailkit.worldmodels.model import WorldModel
from tests.agents.conftest import PIXELS


def gail(pixel_world, out, steps, *, resume=False, **kw):
    options = dict(n_envs=2, n_steps=64, batch_size=128, eval_every=256, checkpoint_every=256, eval_episodes=1,
                   progress=False, absorbing=False, perception_train="vm", perception_every=128, perception_updates=3)
    cfg = GAILConfig(env=PIXELS, demos=pixel_world / "px.npz", perception=pixel_world / "wm", out=out, steps=steps,
                     **{**options, **kw})
    return imitate(cfg, resume=resume)


def changed(trained: dict, original: dict) -> bool:
    return any(not torch.equal(trained[k], original[k]) for k in original)


EVERY = dict(eval_every=128, checkpoint_every=128)  # V and M are trained at 128 and 256 steps too


@pytest.fixture(scope="module")
def vm_run(pixel_world, tmp_path_factory):
    """A run of 256 steps that fine-tunes V and M, evaluated and checkpointed at 128 and 256 steps: made
    once, only read."""
    out = tmp_path_factory.mktemp("vm") / "run"
    gail(pixel_world, out, 256, **EVERY)
    return out


@pytest.mark.parametrize("mode", ["vm", "m"])
def test_the_run_trains_its_world_model_and_evaluates_with_it(pixel_world, tmp_path, mode, request):
    run_dir = request.getfixturevalue("vm_run") if mode == "vm" else tmp_path / "run"
    if mode == "m":
        gail(pixel_world, run_dir, 256, perception_train="m", **EVERY)
    trained = {part: load_tensors(run_dir / "world_model" / f"{part}.safetensors") for part in ("vae", "mdn_rnn")}
    original = {part: load_tensors(pixel_world / "wm" / f"{part}.safetensors") for part in ("vae", "mdn_rnn")}
    assert changed(trained["mdn_rnn"], original["mdn_rnn"])
    assert changed(trained["vae"], original["vae"]) == (mode == "vm")  # V frozen unless fine-tuned
    run = algorithm("gail").load(run_dir)  # a saved run perceives with the trained world model
    for key, value in run.perception.model.vae.state_dict().items():
        torch.testing.assert_close(value, trained["vae"][key], rtol=0, atol=0)
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["perception_training"]["updates"] == 2  # at 128 and 256 steps
    history = json.loads((run_dir / "eval.json").read_text())["history"]
    assert evaluate_run(run_dir, episodes=1)["return_mean"] == history[-1]["return_mean"]


def test_a_resumed_run_equals_an_uninterrupted_one(pixel_world, tmp_path, vm_run):
    """Cut after the first of two V and M updates (at 128 and 256 steps)."""
    gail(pixel_world, tmp_path / "resumed", 128, **EVERY)
    gail(pixel_world, tmp_path / "resumed", 256, resume=True, **EVERY)
    runs = (vm_run, tmp_path / "resumed")
    history = [json.loads((run / "eval.json").read_text())["history"] for run in runs]
    assert [h["steps"] for h in history[0]] == [0, 128, 256]
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["perception_training"]["updates"] == 2  # one before the cut, one after
    assert [(h["steps"], h["return_mean"]) for h in history[0]] == [(h["steps"], h["return_mean"]) for h in history[1]]
    for name in ("policy.safetensors", "world_model/vae.safetensors", "world_model/mdn_rnn.safetensors"):
        a, b = (load_tensors(run / name) for run in runs)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}: {key}")


def test_refresh_re_encodes_each_episode_so_far_like_a_fresh_wrapper(pixel_world, tmp_path):
    """After V and M change, every env's observation is what a wrapper with the new V and M gives
    on the same episode; finished episodes are handed over whole."""
    from stable_baselines3.common.env_util import make_vec_env

    WorldModel.load(pixel_world / "wm").save(tmp_path / "wm")
    perception, episodes = Perception(tmp_path / "wm"), []
    venv = VecPerception(make_vec_env(PIXELS, n_envs=3, seed=5), perception, on_episode=episodes.append)
    venv.reset()
    rng, taken = np.random.default_rng(0), [[] for _ in range(3)]
    for _ in range(40):
        actions = rng.integers(0, 2, size=3)
        _, _, dones, _ = venv.step(actions)
        for i in range(3):
            taken[i] = [] if dones[i] else [*taken[i], actions[i]]
    assert episodes and all(len(e.frames) == len(e.actions) + 1 == len(e.rewards) + 1 for e in episodes)
    assert all(e.terminal for e in episodes)  # CartPole fell; no time limit within 40 steps
    with torch.no_grad():  # "train" V and M
        for p in [*perception.model.vae.parameters(), *perception.model.mdn.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    obs = venv.refresh()
    for i in range(3):  # env i's episode so far, encoded afresh with the new V and M
        frames = venv._episodes[i][0]
        z = perception.encode_frames(np.stack(frames))
        expected = perception.observations(z, np.array(taken[i], dtype=np.int64).reshape(len(taken[i])))[-1]
        np.testing.assert_allclose(obs[i], expected, atol=1e-5)
    # the next step continues from the refreshed memory: the same as stepping the replay's M once more
    actions = np.zeros(3, dtype=np.int64)
    obs, _, dones, _ = venv.step(actions)
    for i in np.flatnonzero(~dones):
        frames = venv._episodes[i][0]
        z = perception.encode_frames(np.stack(frames))
        expected = perception.observations(z, np.array([*taken[i], 0], dtype=np.int64))[-1]
        np.testing.assert_allclose(obs[i], expected, atol=1e-5)


def test_fine_tuning_v_lowers_its_error_on_the_policys_frames(pixel_world):
    """V, fine-tuned on expert and policy frames, reconstructs the policy's frames better (a
    clear effect: the error falls to 0.23-0.24 of its start on 3 seeds; the threshold is 0.5)."""
    model = WorldModel.load(pixel_world / "wm")
    env = gym.make(PIXELS)
    frame, _ = env.reset(seed=3)
    frames, actions = [frame], []
    for t in range(30):
        frame, _, terminated, truncated, _ = env.step(t % 2)
        frames.append(frame), actions.append(t % 2)
        if terminated or truncated:
            break
    policy = Episode(np.stack(frames), np.array(actions), np.ones(len(actions), np.float32), True)
    x = torch.from_numpy(policy.frames).permute(0, 3, 1, 2).float() / 255.0

    def error() -> float:
        with torch.no_grad():
            recon, mean, logvar = model.vae(x, generator=torch.Generator().manual_seed(0))
            return elbo_loss(recon, x, mean, logvar)[1]["reconstruction"]

    before = error()
    options = PerceptionTrainingOptions(perception_train="vm", perception_updates=30, perception_lr=1e-3)
    trainer = PerceptionTrainer(model, options, seed=0)
    trainer.add_episode(policy)
    stats = trainer.update([policy])
    after = error()
    assert after < 0.5 * before, f"reconstruction error on the policy's frames {before:.1f} -> {after:.1f}"
    assert {"v_reconstruction", "v_kl", "m_nll", "m_reward", "m_done"} == stats.keys(), stats


def test_kept_policy_frames_are_bounded_by_whole_episodes():
    options = PerceptionTrainingOptions(perception_train="m", perception_frames=25)
    trainer = PerceptionTrainer(WorldModel(gym.spaces.Discrete(2), latent_dim=4, hidden=8), options, seed=0)

    def episode(n: int) -> Episode:
        return Episode(np.zeros((n + 1, 64, 64, 3), np.uint8), np.zeros(n, np.int64), np.zeros(n, np.float32), True)

    for n in (10, 10, 10):
        trainer.add_episode(episode(n))
    assert [len(e.frames) for e in trainer.recent] == [11, 11]  # 33 frames > 25: the oldest goes
    trainer.add_episode(episode(40))
    assert [len(e.frames) for e in trainer.recent] == [41]  # one episode is always kept


def test_bad_perception_training_input_is_one_line(pixel_world, tmp_path, capsys):
    from tests.test_cli import fails_cleanly

    base = ["imitate", "gail", "--env", PIXELS, "--demos", str(pixel_world / "px.npz"), "--out", str(tmp_path / "r"),
            "--no-absorbing"]
    perception = ["--perception", str(pixel_world / "wm")]
    fails_cleanly([*base, "--perception-train", "vm"], capsys, "pass --perception DIR too")
    fails_cleanly([*base, *perception, "--perception-train", "v"], capsys, "must be one of none, m, vm")
    fails_cleanly([*base[:-1], *perception, "--perception-train", "vm"], capsys, "pass --no-absorbing")
    fails_cleanly([*base, *perception, "--perception-train", "m", "--no-perception-memory"], capsys,
                  "pass --perception-train vm")
    dream = ["imitate", "dream-gail", *base[2:], *perception, "--perception-train", "vm"]
    fails_cleanly(dream, capsys, "drop --perception-train")
    fails_cleanly(["imitate", "dac", *base[2:-1], *perception, "--perception-train", "m"], capsys,
                  "pass --no-absorbing")
    assert not (tmp_path / "r").exists()


def test_dac_encodes_its_replay_again_and_resumes_exactly(pixel_world, tmp_path):
    """DAC keeps the frames behind its replay rows; after each update every row (through a ring
    that wrapped, episode ends and a checkpoint's cut) holds what the trained V and M give."""
    from gailkit.agents.dac import DACConfig

    def dac(out, steps, resume=False):
        cfg = DACConfig(env=PIXELS, demos=pixel_world / "px.npz", perception=pixel_world / "wm", out=out, steps=steps,
                        eval_every=512, checkpoint_every=256, learning_starts=128, buffer_size=300, absorbing=False,
                        progress=False, eval_episodes=1, perception_train="vm", perception_every=256,
                        perception_updates=3)
        return imitate(cfg, resume=resume)

    dac(tmp_path / "straight", 512)
    dac(tmp_path / "resumed", 256)
    dac(tmp_path / "resumed", 512, resume=True)
    for name in ("policy.safetensors", "world_model/vae.safetensors", "world_model/mdn_rnn.safetensors"):
        a, b = (load_tensors(tmp_path / r / name) for r in ("straight", "resumed"))
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}: {key}")
    ckpt = tmp_path / "straight" / "checkpoint"
    tensors = load_tensors(ckpt / "extra.safetensors")
    state = json.loads((ckpt / "state.json").read_text())
    pos = state["replay"]["pos"]
    assert state["replay"]["full"] and state["perception_training"]["updates"] == 2
    order = np.r_[pos:300, 0:pos]  # oldest row first
    frames, starts = tensors["replay_frames.frames"].numpy()[:, 0], tensors["replay_frames.starts"].numpy()[:, 0]
    ends = dict(zip((r for r, _ in state["replay_frames"]["end_rows"]), tensors["replay_frames.end_frames"].numpy()))
    obs, next_obs = tensors["replay.observations"].numpy()[:, 0], tensors["replay.next_observations"].numpy()[:, 0]
    acts = tensors["replay.actions"].numpy()[:, 0, 0].astype(np.int64)
    perception = Perception(tmp_path / "straight" / "world_model")
    firsts = np.flatnonzero(starts[order])
    bounds = [0, *firsts[firsts > 0], len(order)]
    assert len(bounds) >= 4  # several episodes in the ring
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = order[a:b]
        after = ends.get(int(rows[-1]), tensors["replay_frames.last_next"].numpy()[0])
        expected = perception.encode_episode(np.concatenate([frames[rows], after[None]]), acts[rows])
        np.testing.assert_allclose(obs[rows], expected[:-1], atol=1e-5)
        np.testing.assert_allclose(next_obs[rows], expected[1:], atol=1e-5)


def test_replay_frames_with_box_actions_through_a_cut_and_a_wrapped_ring(tmp_path):
    """Continuous actions (CarRacing's), two envs, a mid-episode reset and a ring that wrapped:
    unchanged V and M re-encode the stored rows as they were collected; changed ones as a fresh
    encoding of each stored episode."""
    from stable_baselines3.common.env_util import make_vec_env

    from gailkit.agents.perception_training import ReplayFrames
    from gailkit.buffers import NumbaReplayBuffer

    env_id = "gailkit/FastCarRacing64-v3"
    space = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    torch.manual_seed(0)
    WorldModel(space, latent_dim=4, hidden=8, n_mixtures=2, env_id=env_id).save(tmp_path / "wm")
    perception = Perception(tmp_path / "wm")
    venv = VecPerception(make_vec_env(env_id, n_envs=2, seed=0), perception)
    buf = NumbaReplayBuffer(50, perception.observation_space, space, n_envs=2, seed=0)
    frames = venv.frame_sink = ReplayFrames(buf)
    rng, obs = np.random.default_rng(0), venv.reset()
    for t in range(80):
        if t == 65:
            obs = venv.reset()  # a checkpoint's cut
        actions = rng.uniform(space.low, space.high, (2, 3)).astype(np.float32)
        next_obs, rewards, dones, infos = venv.step(actions)
        buf.add(obs, next_obs, actions, rewards, dones, infos)
        obs = next_obs
    size = buf.buffer_size  # 25 rows of 2 envs: steps 55-79 are kept
    assert buf.full and not dones.any()
    order = np.r_[buf.pos:size, 0:buf.pos]

    def segments(env):
        firsts = np.flatnonzero(frames.starts[order, env])
        bounds = [0, *firsts[firsts > 0], size]
        return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    collected = buf.observations.copy(), buf.next_observations.copy()
    frames.relatent(perception, lambda a: a)
    for env in range(2):
        for rows in segments(env)[1:]:  # the oldest lost its first frames to the ring
            np.testing.assert_allclose(buf.observations[rows, env], collected[0][rows, env], atol=1e-5)
            np.testing.assert_allclose(buf.next_observations[rows, env], collected[1][rows, env], atol=1e-5)
    with torch.no_grad():
        for p in [*perception.model.vae.parameters(), *perception.model.mdn.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    frames.relatent(perception, lambda a: a)
    for env in range(2):
        assert len(segments(env)) == 2  # before and after the cut
        for rows in segments(env):
            after = frames.ends.get((int(rows[-1]), env), frames.last_next[env])
            expected = perception.encode_episode(np.concatenate([frames.frames[rows, env], after[None]]),
                                                 buf.actions[rows, env])
            np.testing.assert_allclose(buf.observations[rows, env], expected[:-1], atol=1e-5)
            np.testing.assert_allclose(buf.next_observations[rows, env], expected[1:], atol=1e-5)
