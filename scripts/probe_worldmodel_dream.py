"""Probe: why M's dream fails CarRacing's controllers. Every preset's V+M+C drives 600-900 on real tracks
and scores -90 to +25 in its own dream; this takes a finished scripts/bench_worldmodel.py run apart.

Run:  python scripts/probe_worldmodel_dream.py --preset fast-2h-m32-hold-z-m30-means   (about 2 minutes)
      python scripts/probe_worldmodel_dream.py --preset fast-2h-m32-hold-z-m30-means --refit 50 [--refit-noise 0]
      (about 7 minutes)

It records ``--episodes`` real episodes of the run's V+M+C controller (seed 0's search, fed z as it was
trained) on tracks no run has used, and takes as many of the run's collected episodes. On each set, M (fed
V's latents as C is, and the recorded actions) is measured three ways:

- **Teacher forced**, M fed every real frame: its reward head's sum against the real return, and its
  prediction on the steps that reach a new tile (CarRacing pays 1000/N for each, about 3.3) and on the others
  (-0.1); its done head's expected number of ends per episode (the sum of its probabilities).
- **Open loop**, M's dream from the episode's first latent fed the recorded actions (next z as C is fed:
  M's mixture mean for a controller fed V's mean, a draw otherwise): the distance of the dream's z from V's
  posterior mean of the real frame k steps on, against the distance of the first frame's and of the set's
  average frame's; and the dream's reward over the first 100 steps, against the real one. (The recorded
  actions steer for the real track's curves, which the dream does not know; over many steps they are not
  the dream's own.)
- **Closed loop**, the controller in M's dream from each episode's first latent, as the benchmark's dream row,
  and from step 50 (past CarRacing's opening zoom) with M's memory run over the real steps before: return
  and length. The same for the run's V only controller and for C at zero, beside their real returns on the
  same tracks: does the dream rank controllers as the tracks do?

With ``--refit K``, K more episodes of the controller (Gaussian noise ``--refit-noise`` on its actions, 0.1 by
default as in the iterative step) are recorded, a fresh M is fitted with the preset's options on the run's
data and them (the paper's iterative step; V unchanged), and everything is measured again with that M.
Writes scripts/results/probe_worldmodel_dream_<preset>[_noise<S>].json and a picture per M (V's decoding of
the real frames, the open-loop and the closed-loop dream of the first episode); the recordings and the
refitted M go in the run folder (``probe_dream/``), so a rerun reuses them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gailkit.configs import CommandParser, float_above_zero, int_in
from gailkit.files import write_json
from gailkit.worldmodels.controller import load_solution
from gailkit.worldmodels.data import chunk_paths, collect_chunks, load_chunk
from gailkit.worldmodels.dream import BatchedDream
from gailkit.worldmodels.iterative import refit_memory
from gailkit.worldmodels.linear_controller import controller_for
from gailkit.worldmodels.model import WorldModel
from gailkit.worldmodels.presets import WM_PRESETS
from gailkit.worldmodels.real import ControllerPolicy, evaluate_controllers

RESULTS = Path(__file__).resolve().parent / "results"
HORIZONS = (1, 10, 50, 200)
WARM = 50  # the second closed loop starts here, past CarRacing's opening zoom, M's memory run over the real steps
PICTURED = (0, 10, 25, 50, 100, 200, 400)  # steps shown in the picture of the first episode
TILE = 1.0  # a step paying more than this reached a new tile (CarRacing: 1000/N - 0.1, about 3.2)
PROBE_SEED = 2_000_000  # the controller's recorded tracks: no benchmark, collection or evaluation uses them
REFIT_SEED = 3_000_000


def episodes(data_dir: Path, limit: int) -> list[dict[str, np.ndarray]]:
    """The first ``limit`` episodes of a chunk folder: frames ``(T + 1, ...)``, actions, rewards ``(T,)``."""
    out = []
    for path in chunk_paths(data_dir):
        chunk = load_chunk(path)
        f0 = a0 = 0
        for length in chunk["lengths"]:
            out.append({"frames": chunk["frames"][f0 : f0 + length + 1], "actions": chunk["actions"][a0 : a0 + length],
                        "rewards": chunk["rewards"][a0 : a0 + length]})
            f0, a0 = f0 + length + 1, a0 + length
            if len(out) == limit:
                return out
    return out


@torch.no_grad()
def fed_latents(model: WorldModel, eps: list[dict], *, latent_noise: float,
                seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per episode, the latents C and M are fed (V's noise scaled by ``latent_noise``) and V's posterior means,
    ``(T + 1, Z)`` each."""
    draws = torch.Generator().manual_seed(seed)
    fed, means = [], []
    for ep in eps:
        mu, logvar = model.posterior(ep["frames"])
        fed.append(model.vae.sample_latent(mu, logvar, draws, noise=latent_noise))
        means.append(mu)
    return fed, means


@torch.no_grad()
def measure(model: WorldModel, params: np.ndarray, eps: list[dict], *, latent_noise: float, seed: int = 0) -> dict:
    """Teacher-forced, open-loop and closed-loop measures of M on ``eps`` (see the module's docstring)."""
    fed, means = fed_latents(model, eps, latent_noise=latent_noise, seed=seed)
    rows = []
    for ep, z in zip(eps, fed):
        a, r = torch.as_tensor(ep["actions"]), ep["rewards"]
        out = model.mdn(z[None, :-1], a[None])
        pred = out.reward[0].numpy()
        tile = r > TILE
        rows.append({"real": float(r.sum()), "teacher_forced": float(pred.sum()), "steps": len(r),
                     "tile_share": float(tile.mean()),
                     "pred_on_tile_steps": float(pred[tile].mean()) if tile.any() else float("nan"),
                     "real_on_tile_steps": float(r[tile].mean()) if tile.any() else float("nan"),
                     "pred_on_other_steps": float(pred[~tile].mean()),
                     "expected_ends": float(torch.sigmoid(out.done_logit[0]).sum())})

    # open loop: every episode's dream in one batch, fed the recorded actions (cut at the shortest episode)
    T = min(len(ep["rewards"]) for ep in eps)
    dream = BatchedDream(model, len(eps), tau=1.0, max_steps=T, seed=seed, latent_noise=latent_noise)
    dream.reset(torch.stack([z[0] for z in fed]))
    first = torch.stack([m[0] for m in means])
    average = torch.cat(means).mean(0)  # the latent of no frame in particular: where a dream that forgets goes
    dream_err = {k: [] for k in HORIZONS if k <= T}
    dream_r = np.zeros((len(eps), min(100, T)))
    pictured = {"real": [means[0][k] for k in PICTURED if k <= T], "open loop": [fed[0][0]], "closed loop": [fed[0][0]]}
    for t in range(T):
        _, rewards, _, _ = dream.step(np.stack([ep["actions"][t] for ep in eps]))
        if t < dream_r.shape[1]:
            dream_r[:, t] = rewards
        if t + 1 in PICTURED:
            pictured["open loop"].append(dream.z[0].clone())
        if t + 1 in dream_err:
            real = torch.stack([m[t + 1] for m in means])
            dream_err[t + 1] = [float(((guess - real) ** 2).sum(-1).mean()) for guess in (dream.z, first, average)]

    closed = {start: closed_loop(model, params, fed, eps, start=start, latent_noise=latent_noise, seed=seed + 1,
                                 pictured=pictured["closed loop"] if start == 0 else None) for start in (0, WARM)}

    def mean(key: str) -> float:
        return float(np.nanmean([row[key] for row in rows]))

    return {
        "episodes": len(eps),
        "real_return": mean("real"), "teacher_forced_return": mean("teacher_forced"),
        "tile_share": mean("tile_share"), "real_on_tile_steps": mean("real_on_tile_steps"),
        "pred_on_tile_steps": mean("pred_on_tile_steps"), "pred_on_other_steps": mean("pred_on_other_steps"),
        "expected_ends_per_episode": mean("expected_ends"),
        "open_loop_first_100_steps": {"dream": float(dream_r.sum(1).mean()),
                                      "real": float(np.mean([ep["rewards"][:dream_r.shape[1]].sum() for ep in eps]))},
        "open_loop_latent_error": {str(k): {"dream": v[0], "first_frame": v[1], "average_frame": v[2]}
                               for k, v in dream_err.items()},
        "closed_loop": closed[0],
        f"closed_loop_from_step_{WARM}": closed[WARM],
        "per_episode": rows,
    }, pictured


@torch.no_grad()
def closed_loop(model: WorldModel, params: np.ndarray, fed: list[torch.Tensor], eps: list[dict], *, start: int,
                latent_noise: float, seed: int, pictured: list[torch.Tensor] | None = None) -> dict:
    """The controller in M's dream from each episode's latent at step ``start``, to step 1000. For ``start`` > 0,
    M's memory is first run over the real latents and actions before it, as the controller's was."""
    controller = controller_for(model, n_params=len(params))
    n, steps = len(eps), 1000 - start
    dream = BatchedDream(model, n, tau=1.0, max_steps=steps, seed=seed, latent_noise=latent_noise)
    state = model.mdn(torch.stack([z[:start] for z in fed]),
                      torch.as_tensor(np.stack([ep["actions"][:start] for ep in eps]))).state if start else None
    obs = dream.reset(torch.stack([z[start] for z in fed]), state)
    ret, length, alive = np.zeros(n), np.zeros(n, np.int64), np.ones(n, bool)
    for t in range(steps):
        obs, rewards, terminated, truncated = dream.step(controller.act(np.repeat(params[None], n, 0),
                                                                        obs[:, :controller.in_dim]))
        if pictured is not None and t + 1 in PICTURED and len(pictured) < len(PICTURED):
            pictured.append(dream.z[0].clone())
        ret += rewards * alive
        length += alive
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return {"return": float(ret.mean()), "steps": float(length.mean()), "ended_early": float((length < steps).mean()),
            "real_return": float(np.mean([ep["rewards"][start:].sum() for ep in eps]))}


@torch.no_grad()
def rank(model: WorldModel, controllers: dict[str, np.ndarray], eps: list[dict], *, latent_noise: float,
         seed: int = 0) -> dict[str, dict[int, float]]:
    """Each controller's dream return from the episodes' first latents and from step ``WARM``: does the dream
    order controllers as the real tracks do?"""
    fed, _ = fed_latents(model, eps, latent_noise=latent_noise, seed=seed)
    return {name: {start: closed_loop(model, c, fed, eps, start=start, latent_noise=latent_noise,
                                      seed=seed + 1)["return"] for start in (0, WARM)}
            for name, c in controllers.items()}


def picture(model: WorldModel, pictured: dict[str, list[torch.Tensor]], path: Path) -> None:
    """Rows of V's decoded frames at the steps in ``PICTURED``: the real frames' posterior means, the open-loop
    dream and the closed-loop dream of the first episode (white where a dream ended first)."""
    width = len(pictured["real"])
    rows = []
    for zs in pictured.values():
        frames = model.decode_frames(torch.stack(zs))
        frames = np.concatenate([frames, np.full((width - len(frames), 64, 64, 3), 255, np.uint8)])
        rows.append(np.concatenate([np.pad(f, ((2, 2), (2, 2), (0, 0)), constant_values=255) for f in frames], 1))
    Image.fromarray(np.concatenate(rows)).resize((rows[0].shape[1] * 2, 2 * 68 * len(rows)), Image.NEAREST).save(path)


def show(name: str, m: dict) -> None:
    ol = m["open_loop_first_100_steps"]
    err = "; ".join(f"{k}: {v['dream']:.1f} (first frame {v['first_frame']:.1f}, average {v['average_frame']:.1f})"
                    for k, v in m["open_loop_latent_error"].items())
    print(f"{name} ({m['episodes']} episodes)\n"
          f"  real return {m['real_return']:.1f}; M teacher forced {m['teacher_forced_return']:.1f}\n"
          f"  tile steps {100 * m['tile_share']:.1f}%: real {m['real_on_tile_steps']:.2f}, "
          f"M {m['pred_on_tile_steps']:.2f}; other steps: real -0.10, M {m['pred_on_other_steps']:.2f}; "
          f"M's expected ends {m['expected_ends_per_episode']:.2f}\n"
          f"  open loop, first 100 steps: dream {ol['dream']:.1f}, real {ol['real']:.1f}\n"
          f"  open loop, z's squared distance from the real frame's at step {err}\n"
          + "".join(f"  closed loop from step {k}: dream return {cl['return']:.1f} over {cl['steps']:.0f} steps "
                    f"({100 * cl['ended_early']:.0f}% ended early), real {cl['real_return']:.1f}\n"
                    for k, cl in ((0, m["closed_loop"]), (WARM, m[f"closed_loop_from_step_{WARM}"]))),
          end="", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(WM_PRESETS), default="fast-2h-m32-hold-z-m30-means")
    parser.add_argument("--dir", type=Path, help="the run folder (default: ~/.cache/gailkit/bench/worldmodel/<preset>)")
    parser.add_argument("--episodes", type=int_in(1), default=16, help="controller episodes recorded (and data "
                                                                       "episodes taken) for the measures")
    parser.add_argument("--refit", type=int_in(0), default=0, metavar="K",
                        help="also refit M on the run's data and K episodes of the controller, and measure it")
    parser.add_argument("--refit-noise", type=float_above_zero(or_equal=True), default=0.1,
                        help="std of the Gaussian on the controller's actions in the K episodes (the iterative "
                             "step's 0.1)")
    parser.add_argument("--out", type=Path, help="default: scripts/results/probe_worldmodel_dream_<preset>.json "
                                                 "(..._noise<S>.json for another --refit-noise)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    p = WM_PRESETS[args.preset]
    run = args.dir or Path.home() / ".cache" / "gailkit" / "bench" / "worldmodel" / args.preset
    folder = run / f"controller_{p.controller_where}{'_from_vonly' if p.warm_start_generations else ''}"
    if not (folder / "history.json").exists():
        parser.error(f"no trained V+M+C controller in {folder}: run python scripts/bench_worldmodel.py "
                     f"--preset {args.preset} first, or name its folder with --dir")
    model = WorldModel.load(run / "model")
    params = load_solution(folder, p.controller_solution)
    noise = p.controller_latent_noise
    work = run / "probe_dream"
    recorded = work / f"controller_{args.episodes}"
    collect_chunks(p.env, recorded, args.episodes, episodes_per_chunk=args.episodes, seed=PROBE_SEED,
                   policy=ControllerPolicy(model, params, latent_noise=noise), progress=False)
    sets = {"the controller's real episodes": episodes(recorded, args.episodes),
            "the collected data's episodes": episodes(run / "data", args.episodes)}
    tag = "" if args.refit_noise == 0.1 else f"_noise{args.refit_noise:g}"
    out = args.out or RESULTS / f"probe_worldmodel_dream_{args.preset}{tag}.json"
    refit_returns = []
    results, pictures = {}, []
    models = {"M": model}
    if args.refit:
        more = work / f"controller_noisy_{args.refit}{tag}"
        collect_chunks(p.env, more, args.refit, seed=REFIT_SEED, progress=False,
                       policy=ControllerPolicy(model, params, noise=args.refit_noise, latent_noise=noise))
        refit_dir = work / f"model_refit_{args.refit}{tag}"
        if not (refit_dir / "done").exists():
            refit_memory(run / "model", [run / "data", more], refit_dir, **p.mdn_options())
            (refit_dir / "done").touch()
        refit_returns = [float(ep["rewards"].sum()) for ep in episodes(more, args.refit)]
        print(f"the controller's {args.refit} episodes with noise {args.refit_noise:g} on its actions: mean return "
              f"{np.mean(refit_returns):.1f}", flush=True)
        models[f"M refitted on the data and {args.refit} episodes of the controller (action noise "
               f"{args.refit_noise:g})"] = WorldModel.load(refit_dir)
    vonly_folder = run / (f"controller_vonly_{p.warm_start_generations + p.generations}" if p.warm_start_generations
                          else "controller_vonly")
    vonly = load_solution(vonly_folder, p.controller_solution)
    controllers = {"V+M+C": params, "V only": vonly,  # V only and C at zero read no h: their real returns are M's
                   "C at zero (no steering, half gas, half brake)": np.zeros_like(vonly)}
    ranking, real = {}, {}
    for m_name, m in models.items():
        # real returns on the same tracks, a controller over [z, h] fed this M's h, as in its dream
        real[m_name] = {name: float(evaluate_controllers(m, c[None], p.env, args.episodes, seed=PROBE_SEED,
                                                         frame_skip=p.frame_skip, latent_noise=noise)[0].mean())
                        if m_name == "M" or len(c) > len(vonly) else real["M"][name]
                        for name, c in controllers.items()}
        ranking[m_name] = rank(m, controllers, sets["the controller's real episodes"], latent_noise=noise)
        print(f"{m_name}: dream return from step 0 / from step {WARM} (real, the same {args.episodes} tracks): "
              + "; ".join(f"{c} {d[0]:.1f} / {d[WARM]:.1f} ({real[m_name][c]:.1f})"
                          for c, d in ranking[m_name].items()), flush=True)
        for s_name, eps in sets.items():
            name = f"{m_name}, {s_name}"
            results[name], pictured = measure(m, params, eps, latent_noise=noise)
            show(name, results[name])
            if s_name == "the controller's real episodes":
                pictures.append(out.with_name(f"{out.stem}_{len(pictures)}.png"))
                picture(m, pictured, pictures[-1])
    write_json(out, {"preset": args.preset, "env": p.env, "controller": folder.name, "latent_noise": noise,
                     "episodes": args.episodes, "refit": args.refit, "refit_noise": args.refit_noise,
                     "refit_episode_returns": refit_returns, "tile_threshold": TILE,
                     "horizons": list(HORIZONS), "pictured_steps": list(PICTURED),
                     "pictures": [q.name for q in pictures], "results": results,
                     "ranking": {"real": real, "dream_from_step_0": {m: {c: d[0] for c, d in r.items()}
                                                                     for m, r in ranking.items()},
                                 f"dream_from_step_{WARM}": {m: {c: d[WARM] for c, d in r.items()}
                                                             for m, r in ranking.items()}}})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
