"""Probe: each dream-trained controller of an ensemble's iterations, in the ensemble's dream and in each M's own.

Run:  python scripts/bench_worldmodel_dream_iterations.py --preset fast-2h-m32-hold-z-m30 --tau 1.15 --dream-start 50 \
          --m-ensemble 3 --iterations 4
      python scripts/probe_worldmodel_ensemble_dream.py --preset fast-2h-m32-hold-z-m30 \
          --iterations-folder dream_iterations_tau1.15_start50_ensemble3

An ensemble dream is meant to pay a controller only for what every M agrees on. This scores each finished
iteration's controller (``best_x`` of ``iterations.json``) at temperature 1, from the iteration's own dream starts
(``warm_starts`` of its newest episodes at the run's dream start), in:

- the ensemble's dream with a member drawn every step (``ensemble_draw="step"``) and once per dream (``"dream"``);
- each member's dream alone, the controller reading that member's ``h`` (a dream from one M, as a single-M run
  would give it);

beside the controller's real return on the iteration's 8 tracks. If the ensemble's dream pays more than every
member's alone, the mixing itself is what the search exploits.

With ``--halt-quantile Q`` it also asks whether the M's disagreement flags the exploit: the Q quantile of their
disagreement (:func:`~gailkit.worldmodels.dream.disagreement`) over the steps of the iteration's newest episodes,
and the dream drawn per dream again, each dream halting (paying -100) at the first step whose disagreement exceeds
that: its return and the share of dreams halted. A controller whose dream return the real tracks do not bear out
should lose more of its dreams than one they do. Writes
scripts/results/probe_worldmodel_ensemble_dream_<preset>_<folder>[_halt<Q>].json.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser, float_above_zero, int_in
from gailkit.files import write_json
from gailkit.nn.checkpoint import read_json
from gailkit.worldmodels.controller import dream_fitness
from gailkit.worldmodels.dream import BatchedDream
from gailkit.worldmodels.linear_controller import LinearController, controller_for
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.train import ensemble_disagreements, warm_starts

RESULTS = Path(__file__).resolve().parent / "results"


def alone(model: WorldModel, j: int) -> WorldModel:
    """The world model with member ``j`` as its only M."""
    single = copy.copy(model)
    single.mdn, single.members = model.mdns[j], []
    return single


def halting_dreams(model: WorldModel, controller: LinearController, x: np.ndarray, z0: torch.Tensor,
                   s0: tuple[torch.Tensor, torch.Tensor], *, dreams: int, steps: int, halt_above: float, seed: int,
                   latent_noise: float) -> tuple[float, float]:
    """The mean return of ``dreams`` dreams drawn per dream, each halting where the M's disagree more than
    ``halt_above``, and the share of them that halted (dream_fitness's starts and stepping)."""
    dream = BatchedDream(model, dreams, tau=1.0, max_steps=steps, seed=seed, latent_noise=latent_noise,
                         ensemble_draw="dream", halt_above=halt_above)
    pick = torch.randint(len(z0), (dreams,), generator=dream.generator)
    obs = dream.reset(z0[pick], (s0[0][:, pick], s0[1][:, pick]))
    params = np.repeat(x, dreams, axis=0)
    returns, alive, halted = np.zeros(dreams), np.ones(dreams, dtype=bool), np.zeros(dreams, dtype=bool)
    for _ in range(steps):
        obs, rewards, terminated, truncated = dream.step(controller.act(params, obs[:, :controller.in_dim]))
        returns += rewards * alive
        halted |= alive & (dream.disagreement > halt_above).numpy()
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return float(returns.mean()), float(halted.mean())


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(WM_PRESETS), default="fast-2h-m32-hold-z-m30")
    parser.add_argument("--dir", type=Path, help="the run folder (default: ~/.cache/gailkit/bench/worldmodel/<preset>)")
    parser.add_argument("--iterations-folder", required=True,
                        help="the iterations' folder inside the run folder, e.g. "
                             "dream_iterations_tau1.15_start50_ensemble3")
    parser.add_argument("--dreams", type=int_in(1), default=64, help="dreams per row")
    parser.add_argument("--halt-quantile", type=float_above_zero(), metavar="Q",
                        help="also score the dream drawn per dream halting where the M's disagree more than at this "
                             "quantile of the newest episodes' steps, e.g. 0.999")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.halt_quantile is not None and args.halt_quantile > 1:
        parser.error(f"--halt-quantile {args.halt_quantile}: a quantile in (0, 1]")
    torch.set_num_threads(2)
    run = args.dir or Path.home() / ".cache" / "gailkit" / "bench" / "worldmodel" / args.preset
    folder = run / args.iterations_folder
    if not (folder / "iterations.json").exists():
        parser.error(f"no iterations in {folder}: run scripts/bench_worldmodel_dream_iterations.py with --m-ensemble "
                     "first, and name its folder")
    state = read_json(folder / "iterations.json", what="iterative run")
    start, noise = state["controller"]["dream_start"], state["controller"]["latent_noise"]
    if not start:
        parser.error(f"{folder}'s dreams start at the first frames; this probe scores dreams started inside episodes "
                     "(a run with --dream-start)")
    driving = run / "probe_dream" / "controller_noisy_50_noise0"
    rows = []
    for record in state["records"]:
        k = record["iteration"]
        model = WorldModel.load(folder / f"iter_{k}" / "model")
        if len(model.mdns) == 1:
            parser.error(f"{folder}/iter_{k}/model has one M: this probe compares an ensemble's members")
        newest = driving if k == 0 else folder / f"iter_{k}" / "data"
        z0, s0 = warm_starts(model, newest, start, latent_noise=noise)
        x = np.asarray(record["best_x"])[None]
        controller = controller_for(model, n_params=x.shape[1])

        def score(m: WorldModel, state: tuple[torch.Tensor, torch.Tensor], draw: str = "step") -> float:
            return float(dream_fitness(m, controller, x, rollouts=args.dreams, max_steps=1000 - start, tau=1.0,
                                       seed=k, start_z=z0, start_state=state, latent_noise=noise,
                                       ensemble_draw=draw)[0])

        row = {"iteration": k, "real_return": record["real_return"], "ensemble_per_step": score(model, s0),
               "ensemble_per_dream": score(model, s0, "dream"),
               "members_alone": [score(alone(model, j), (s0[0][j : j + 1], s0[1][j : j + 1]))
                                 for j in range(len(model.mdns))]}
        halting = ""
        if args.halt_quantile is not None:
            found = ensemble_disagreements(model, newest, seed=k, latent_noise=noise)
            threshold = float(np.quantile(found, args.halt_quantile))
            ret, share = halting_dreams(model, controller, x, z0, s0, dreams=args.dreams, steps=1000 - start,
                                        halt_above=threshold, seed=k, latent_noise=noise)
            row |= {"halt_above": threshold, "data_disagreement_median": float(np.median(found)),
                    "ensemble_per_dream_halting": ret, "halted": share}
            halting = f" | halting above {threshold:.3f}: {ret:.1f}, {share:.0%} of dreams halted"
        rows.append(row)
        print(f"iteration {k}: real {row['real_return']:.1f} | ensemble per step {row['ensemble_per_step']:.1f}, "
              f"per dream {row['ensemble_per_dream']:.1f} | members alone "
              + ", ".join(f"{r:.1f}" for r in row["members_alone"]) + halting, flush=True)
    halt = "" if args.halt_quantile is None else f"_halt{args.halt_quantile}"
    out = args.out or RESULTS / f"probe_worldmodel_ensemble_dream_{args.preset}_{args.iterations_folder}{halt}.json"
    write_json(out, {"preset": args.preset, "folder": args.iterations_folder, "dream_start": start, "tau": 1.0,
                     "dreams": args.dreams, "halt_quantile": args.halt_quantile, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
