"""Probe: how an AIRL run's policy and discriminator see the expert's transitions and the policy's own.

Run:  python scripts/probe_airl.py RUN_DIR [RUN_DIR ...] --out scripts/results/probe_airl_NAME.json

For each run (its final policy and discriminator, or its last checkpoint's): the policy's action
standard deviation per dimension (against the half-width of the action space), and on the expert's
demonstrations and on one episode of the policy's own sampled actions (as PPO collects them,
unclipped): log pi(a|s), the discriminator's logit = f(s, a, s') - log pi(a|s), and its f.

AIRL's logit holds -log pi: the rewards built on it (`gail`, `log_d`, `logit`) pay the policy for
entropy at temperature 1, and when the policy's spread collapses instead, log pi alone tells the
expert's actions from the policy's, with nothing left for f to learn.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from gailkit.agents.base import saved_run
from gailkit.agents.imitate import load_run
from gailkit.configs import CommandParser
from gailkit.discriminators.discriminator import DiscBatch, Discriminator
from gailkit.errors import GailkitError, UsageError
from gailkit.files import write_json
from gailkit.nn.checkpoint import read_json


def stats(log_pi: np.ndarray, logit: np.ndarray) -> dict[str, float]:
    return {"log_pi_median": float(np.median(log_pi)), "logit_median": float(np.median(logit)),
            "f_median": float(np.median(logit + log_pi)), "judged_expert": float((logit > 0).mean())}


def log_probs(run, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """log pi(a|s) under the run's policy, ``(T,)``."""
    policy = run.model.policy
    with torch.no_grad():
        obs_t, _ = policy.obs_to_tensor(obs)
        return policy.get_distribution(obs_t).log_prob(torch.from_numpy(np.array(acts, dtype=np.float32))).numpy()


def own_episode(run, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One episode of the policy's sampled actions in the run's env: ``(obs, acts, next_obs, dones)``,
    acts unclipped, as PPO collects them."""
    env, policy = run._make_env(), run.model.policy
    torch.manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    done = False
    while not done:
        with torch.no_grad():
            obs_t, _ = policy.obs_to_tensor(obs)
            act = policy.get_distribution(obs_t).sample()[0].numpy()
        nxt, _, terminated, truncated, _ = env.step(np.clip(act, env.action_space.low, env.action_space.high))
        rows.append((obs, act, nxt, float(terminated)))
        obs, done = nxt, terminated or truncated
    env.close()
    return tuple(np.asarray([r[i] for r in rows], dtype=np.float32) for i in range(4))


def probe(directory: Path, seed: int) -> dict:
    if (algo := saved_run(directory)["algo"]) != "airl":
        raise UsageError(f"{directory} is a {algo} run, not an AIRL run: pass the folder of a "
                         "`gailkit imitate airl` run")
    run = load_run(directory)
    disc_dir = directory if (directory / "discriminator.json").exists() else directory / "checkpoint"
    disc = Discriminator.load(disc_dir)
    space = run.model.action_space
    with torch.no_grad():
        obs_t, _ = run.model.policy.obs_to_tensor(np.zeros(run.model.observation_space.shape, np.float32))
        std = run.model.policy.get_distribution(obs_t).distribution.stddev[0].numpy()
    history = read_json(directory / "eval.json", what="run")["history"]
    out = {"run": str(directory), "steps": history[-1]["steps"],
           "normalised": history[-1].get("normalised"),  # None when the demonstrations carry no expert return
           "action_half_width": ((space.high - space.low) / 2).tolist(), "policy_std": std.tolist()}
    d = run.expert_data  # the expert's transitions as the run trains on them (absorbing states included)
    expert = (d.obs, d.acts, d.next_obs, d.dones.astype(np.float32))
    for name, (obs, acts, nxt, dones) in (("expert", expert), ("policy", own_episode(run, seed))):
        log_pi = log_probs(run, obs, acts)
        logit = disc.logits(DiscBatch.from_numpy(obs, acts, nxt, dones, log_pi)).numpy()
        out[name] = {"transitions": len(acts), **stats(log_pi, logit)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="AIRL run directories")
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    parser.add_argument("--seed", type=int, default=0, help="the policy episode's env seed and sampling seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        rows = [probe(d, args.seed) for d in args.runs]
    except GailkitError as exc:  # a missing or damaged run, or not an AIRL one: nothing is written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in rows:
        e, p = r["expert"], r["policy"]
        print(f"{r['run']}: std {np.round(r['policy_std'], 2).tolist()} (half-width "
              f"{r['action_half_width'][0]:g}); log pi expert {e['log_pi_median']:.1f}, own {p['log_pi_median']:.1f}; "
              f"f expert {e['f_median']:.2f}, own {p['f_median']:.2f}; judged expert: expert "
              f"{e['judged_expert']:.2f}, own {p['judged_expert']:.2f}")
    write_json(args.out, {"runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
