"""The `imitation` library's AIRL on HalfCheetah, as a reference for gailkit's AIRL row.

Runs imitation 1.0.1's AIRL with the settings it publishes as its best for HalfCheetah
(`benchmarking/airl_seals_half_cheetah_best_hp_eval.json` in its repository: PPO with a 32x32
policy on normalised observations, gamma 0.95, clip 0.1, 8 envs x 1024 steps a round; the
shaped reward net with normalised inputs and outputs; 16 discriminator updates a round on 2,048
expert and generator samples), on the same 10 demonstrations gailkit's benchmark imitates, and
evaluates its deterministic policy as gailkit does: 10 episodes (reset with seeds 10,000-10,009;
gailkit's evaluation seeds start at 10,000,000, the same distribution of starts), normalised
against the zoo expert's and the random policy's returns from the demonstrations' card.

imitation needs gymnasium 0.29, so it runs in a venv of its own, outside gailkit's, on
HalfCheetah-v4 (gymnasium 1.x's v5 has the same observation, actions and reward)::

    python3 -m venv /tmp/imitation-venv
    /tmp/imitation-venv/bin/pip install torch==2.13.0
    /tmp/imitation-venv/bin/pip install imitation==1.0.1 "gymnasium[mujoco]~=0.29"
    /tmp/imitation-venv/bin/python scripts/reference_airl_imitation.py --seed 0

The demonstrations are the file `bench_imitation.py` writes (run it for HalfCheetah-v5 first).
Writes ``scripts/results/reference_airl_imitation_HalfCheetah_seed<N>.json`` (``..._steps<S>.json``
with ``--steps S`` other than 3M, gailkit's budget).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from gailkit.configs import CommandParser

# imitation's published best settings for AIRL on HalfCheetah
PPO_KWARGS = dict(batch_size=64, clip_range=0.1, ent_coef=0.0005544771755195421, gae_lambda=0.95, gamma=0.95,
                  learning_rate=0.00047248619386801587, max_grad_norm=0.8, n_epochs=5, vf_coef=0.11483689492120866)
N_ENVS, ROLLOUT = 8, 8192
AIRL_KWARGS = dict(demo_batch_size=2048, gen_replay_buffer_capacity=512, n_disc_updates_per_round=16)


def trajectories(path: Path):
    """gailkit's demonstration file as imitation's ``Trajectory`` list, and the expert's card."""
    from imitation.data.types import Trajectory

    with np.load(path, allow_pickle=False) as d:
        meta = json.loads(str(d["meta_json"]))
        obs, acts, lengths, terminal = d["obs"], d["acts"], d["lengths"], d["terminal"]
    out, o, a = [], 0, 0
    for n, term in zip(lengths, terminal, strict=True):
        out.append(Trajectory(obs=obs[o:o + n + 1].astype(np.float32), acts=acts[a:a + n], infos=None,
                              terminal=bool(term)))
        o, a = o + n + 1, a + n
    return out, meta["expert_card"]


def evaluate(policy, env_id: str, episodes: int) -> list[float]:
    env = gym.make(env_id)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000 + ep)
        done, ret = False, 0.0
        while not done:
            act, _ = policy.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(act)
            ret, done = ret + float(r), term or trunc
        returns.append(ret)
    env.close()
    return returns


def write_json(path: Path, data: dict) -> None:
    """Atomic, as ``gailkit.files.write_json`` (gailkit itself cannot be imported beside gymnasium 0.29)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3_000_000)
    parser.add_argument("--env", default="HalfCheetah-v4", help="gymnasium 0.29's id")
    parser.add_argument("--demos", type=Path,
                        default=Path.home() / ".cache/gailkit/bench/imitation/demos/HalfCheetah-v5.npz")
    parser.add_argument("--eval-every", type=int, default=30, help="rounds (of 8,192 steps) between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if not args.demos.exists():
        print(f"error: no demonstrations at {args.demos}; run `python scripts/bench_imitation.py --envs "
              "HalfCheetah-v5 --algos bc` in gailkit's venv first, or pass --demos", file=sys.stderr)
        return 2
    try:
        import imitation
        from imitation.algorithms.adversarial.airl import AIRL
        from imitation.data.wrappers import RolloutInfoWrapper
        from imitation.policies.base import FeedForward32Policy, NormalizeFeaturesExtractor
        from imitation.rewards.reward_nets import BasicShapedRewardNet, NormalizedRewardNet
        from imitation.util.networks import RunningNorm
        from imitation.util.util import make_vec_env
        from stable_baselines3 import PPO
    except ImportError as e:
        print(f"error: {e}; this script runs in a venv with imitation==1.0.1 (see its docstring)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    demos, card = trajectories(args.demos)
    expert, random = card["return_mean"], card["random_return_mean"]
    venv = make_vec_env(args.env, n_envs=N_ENVS, rng=np.random.default_rng(args.seed),
                        post_wrappers=[lambda env, _: RolloutInfoWrapper(env)])
    learner = PPO(FeedForward32Policy, venv, n_steps=ROLLOUT // N_ENVS, seed=args.seed, **PPO_KWARGS,
                  policy_kwargs=dict(features_extractor_class=NormalizeFeaturesExtractor,
                                     features_extractor_kwargs=dict(normalize_class=RunningNorm)))
    reward_net = NormalizedRewardNet(BasicShapedRewardNet(venv.observation_space, venv.action_space,
                                                          normalize_input_layer=RunningNorm),
                                     normalize_output_layer=RunningNorm)
    trainer = AIRL(demonstrations=demos, venv=venv, gen_algo=learner, reward_net=reward_net,
                   allow_variable_horizon=True, **AIRL_KWARGS)
    budget = "" if args.steps == 3_000_000 else f"_steps{args.steps}"
    out = args.out / f"reference_airl_imitation_HalfCheetah_seed{args.seed}{budget}.json"
    history, start = [], time.time()

    def record(steps: int) -> None:
        returns = evaluate(learner, args.env, args.eval_episodes)
        std = float(learner.policy.log_std.detach().exp().mean())
        history.append({"steps": steps, "return_mean": float(np.mean(returns)),
                        "normalised": float((np.mean(returns) - random) / (expert - random)),
                        "policy_std": std, "wall_s": round(time.time() - start, 1)})
        print(json.dumps(history[-1]), flush=True)
        finals = [h["normalised"] for h in history]
        write_json(out, {"env": args.env, "seed": args.seed, "steps": args.steps, "demos": str(args.demos),
                         "expert_return": expert, "random_return": random, "imitation": imitation.__version__,
                         "ppo": PPO_KWARGS, "n_envs": N_ENVS, "rollout": ROLLOUT, "airl": AIRL_KWARGS,
                         "final_normalised": finals[-1], "mean_last5_normalised": float(np.mean(finals[-5:])),
                         "best_normalised": max(finals),
                         "steps_to_0_9": next((h["steps"] for h in history if h["normalised"] >= 0.9), None),
                         "history": history})

    rounds = args.steps // ROLLOUT
    record(0)
    trainer.train(rounds * ROLLOUT, callback=lambda r: record((r + 1) * ROLLOUT)
                  if (r + 1) % args.eval_every == 0 and r + 1 < rounds else None)
    record(rounds * ROLLOUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
