"""Train, evaluate and pack gailkit's expert zoo (``gailkit/zoo/<env>/``).

Run:  python scripts/build_zoo.py [--envs Hopper-v5 ...] [--root DIR]

For each env: train an expert with its preset (`gailkit expert train`'s, seed 0) under ROOT
(default ~/.cache/gailkit/zoo, outside the repository; an expert already there is reused),
evaluate it on 50 episodes (the card), record 25 deterministic episodes (seeds 0-24), and copy
expert + demonstrations + the public reference return into ``gailkit/zoo/<env>/``, sealed
with a manifest of SHA-256 digests. Training logs (tb/) stay under ROOT. Then writes every
shipped card to scripts/results/zoo.json.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from gailkit.agents.experts import PRESETS, CollectConfig, ExpertConfig, collect_demos, train_expert
from gailkit.configs import CommandParser
from gailkit.nn.checkpoint import read_json, write_json, write_verified_dir
from gailkit.zoo import DEMOS, REFERENCE_SOURCE, REFERENCES, ZOO_DIR, zoo_cards

EVAL_EPISODES, DEMO_EPISODES = 50, 25
FILES = ("config.json", "policy.safetensors", "obs_norm.safetensors")

parser = CommandParser(description=__doc__.splitlines()[0])
parser.add_argument("--envs", nargs="+", default=list(REFERENCES), choices=list(REFERENCES))
parser.add_argument("--root", type=Path, default=Path.home() / ".cache" / "gailkit" / "zoo")
args = parser.parse_args()


def build(env_id: str) -> None:
    work = args.root / env_id
    expert_dir = work / "expert"
    if not (expert_dir / "card.json").exists():
        shutil.rmtree(expert_dir, ignore_errors=True)  # an interrupted training: start again
        train_expert(ExpertConfig(env=env_id, out=expert_dir, eval_episodes=EVAL_EPISODES,
                                  progress=sys.stderr.isatty()))
    demos = work / DEMOS
    if not demos.exists():
        collect_demos(CollectConfig(expert=expert_dir, episodes=DEMO_EPISODES, out=demos, seed=0))
    card = read_json(expert_dir / "card.json", what="expert")
    card["reference"] = {**REFERENCES[env_id], "source": REFERENCE_SOURCE}
    card["demos"] = {"file": DEMOS, "episodes": DEMO_EPISODES, "seeds": f"0-{DEMO_EPISODES - 1}", "deterministic": True}

    def write(tmp: Path) -> None:
        for name in FILES:
            if (expert_dir / name).exists():
                shutil.copy2(expert_dir / name, tmp / name)
        shutil.copy2(demos, tmp / DEMOS)
        write_json(tmp / "card.json", card)

    write_verified_dir(ZOO_DIR / env_id, write)
    print(f"{env_id}: {card['return_mean']:.1f} +/- {card['return_std']:.1f} (random {card['random_return_mean']:.1f}, "
          f"reference {card['reference']['return_mean']}), {card['wall_time_s'] / 60:.1f} min", flush=True)


for env in args.envs:
    if env not in PRESETS:
        raise SystemExit(f"no expert preset for {env}")
    build(env)
summary = Path(__file__).resolve().parent / "results" / "zoo.json"
write_json(summary, {"cards": zoo_cards()})
print(f"wrote {summary} (every shipped expert's card)")
