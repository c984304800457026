"""What a CMA-ES curve of `bench_worldmodel.py` says a larger budget would reach.

Run:  python scripts/project_worldmodel_curves.py
      python scripts/project_worldmodel_curves.py --runs fast-2h fast-2h-m32-scratch --horizons 200 400 1800
      python scripts/project_worldmodel_curves.py --runs DIR/result.json --fit-until 100   # check the projection

For each search in each run (V+M+C's and V only's), fits the candidates' average return per generation
with two curves that level off, ``y(g) = a w(g) + b (1 - w(g))`` (``a`` the plateau, ``b`` the start):
- exponential: ``w = 1 - exp(-(g - g0) / tau)``, closing 63% of the gap every ``tau`` generations;
- logistic: ``w = 1 / (1 + exp(-(g - mid) / width))``, an S-curve, flat at first as such a search is.
Least squares: for each point of a grid of the shape parameters the curve is linear in ``a`` and ``b``;
the best point is refined on a finer grid around it. Two models, because what a curve says past its
last generation depends on the model: where they disagree, the curve does not say. Intervals (5-95%)
come from a moving-block bootstrap of the residuals (blocks of 10 generations: a search's noise is
correlated from one generation to the next). Writes, per search and model: the plateau, the shape, the
curve at each horizon, and V+M+C minus V only at each horizon; ``at_grid_edge`` marks a fit whose best
shape is at its grid's end (for the exponential, a curve still straight at its end: its plateau is not
known). A V+M+C search that started from V only's controller is placed at the generations it continued
from.

With ``--fit-until G`` the fit uses generations <= G only and the later generations measure the
projection: the mean of the candidates' averages over each later block of 50 generations beside the
curve's mean there.

The candidates' average is not the controller's return: the CMA-ES mean, which is the controller the
benchmark evaluates on 100 tracks, scores above its candidates (they are the mean plus noise). So the
projections here rank searches and say whether a curve has flattened; they are not 100-track scores.

Reads scripts/results/bench_worldmodel_<run>.json (or a path, or a running search's
``<run folder>/controller_real/history.json``), writes
scripts/results/worldmodel_projection.json and worldmodel_projection.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from gailkit.configs import CommandParser
from gailkit.files import write_json

RESULTS = Path(__file__).parent / "results"
DEFAULT_RUNS = ["fast-2h", "fast-2h-m32-scratch"]  # the searches that started from nothing
SEARCHES = {"V+M+C": "controller_history", "V only": "vonly_history"}
BLOCK = 10


def exponential_grid(g0: float) -> np.ndarray:
    """``tau`` on a log grid: ``w = 1 - exp(-(g - g0) / tau)``, so the curve ``a w + b (1 - w)`` climbs from
    ``b`` at ``g0`` towards ``a``, closing 63% of the gap every ``tau`` generations."""
    return np.geomspace(1.0, 2000.0, 300)[:, None]


def logistic_grid(g0: float) -> np.ndarray:
    """``(mid, width)``: ``w = 1 / (1 + exp(-(g - mid) / width))``, an S-curve from ``b`` to ``a``, flat first
    as a search from a random controller is."""
    mid, width = np.meshgrid(g0 - 1.0 + np.geomspace(1.0, 1000.0, 120), np.geomspace(1.0, 300.0, 50), indexing="ij")
    return np.stack([mid.ravel(), width.ravel()], axis=1)


def weights(model: str, g: np.ndarray, g0: float, params: np.ndarray) -> np.ndarray:
    """``w`` at generations ``g`` for each row of ``params``: ``(len(params), len(g))``."""
    if model == "exponential":
        return 1.0 - np.exp(-(g[None, :] - g0) / params[:, :1])
    return 1.0 / (1.0 + np.exp(-np.clip((g[None, :] - params[:, :1]) / params[:, 1:], -50.0, 50.0)))


MODELS = {"exponential": (exponential_grid, ("tau",)), "logistic": (logistic_grid, ("mid", "width"))}


def solve(w: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``y ~ a w + b (1 - w)`` for each row of ``w``: two normal equations, all rows at once."""
    u = 1.0 - w
    s11, s12, s22 = (w * w).sum(1), (w * u).sum(1), (u * u).sum(1)
    r1, r2 = w @ y, u @ y
    with np.errstate(divide="ignore", invalid="ignore"):
        det = s11 * s22 - s12 * s12
        a = (s22 * r1 - s12 * r2) / det
        b = (s11 * r2 - s12 * r1) / det
        sse = ((a[:, None] * w + b[:, None] * u - y) ** 2).sum(1)
    return a, b, np.where(np.isfinite(sse), sse, np.inf)


def fit_curve(model: str, g: np.ndarray, y: np.ndarray, g0: float) -> dict[str, float]:
    """The least-squares curve: the best point of the model's grid, then of a finer grid around it (each shape
    parameter from its neighbours' values on the first grid, 15 steps): the plateau ``a``, the start ``b``,
    the shape parameters, the residuals' RMS, and whether the best point is on the first grid's last row (the
    curve still a straight line at its end: its plateau is not known)."""
    grid, names = MODELS[model]
    g = np.asarray(g, float)
    params = grid(g0)
    a, b, sse = solve(weights(model, g, g0, params), y)
    k = int(np.argmin(sse))
    edge = bool(np.any(params[k] >= params.max(0)))
    axes = []
    for j in range(params.shape[1]):
        values = np.unique(params[:, j])
        i = int(np.searchsorted(values, params[k, j]))
        axes.append(np.linspace(values[max(i - 1, 0)], values[min(i + 1, len(values) - 1)], 15))
    fine = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    a, b, sse = solve(weights(model, g, g0, fine), y)
    k = int(np.argmin(sse))
    return {"plateau": float(a[k]), "start": float(b[k]), **dict(zip(names, map(float, fine[k]))),
            "rms": float(np.sqrt(sse[k] / len(y))), "at_grid_edge": edge}


def curve(model: str, fit: dict[str, float], g: np.ndarray | float, g0: float) -> np.ndarray:
    names = MODELS[model][1]
    w = weights(model, np.atleast_1d(np.asarray(g, float)), g0, np.array([[fit[n] for n in names]]))[0]
    w = w if np.ndim(g) else w[0]
    return fit["plateau"] * w + fit["start"] * (1.0 - w)


def bootstrap(model: str, g: np.ndarray, y: np.ndarray, g0: float, fit: dict[str, float], horizons: list[int],
              rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 1 + len(horizons))``: the plateau and the curve at each horizon, refitted on the fitted curve plus
    residuals resampled in blocks of ``BLOCK`` generations."""
    smooth = curve(model, fit, g, g0)
    residuals = y - smooth
    starts = np.arange(max(len(y) - BLOCK + 1, 1))
    out = np.empty((n, 1 + len(horizons)))
    for i in range(n):
        picks = rng.choice(starts, size=-(-len(y) // BLOCK))
        resampled = np.concatenate([residuals[s:s + BLOCK] for s in picks])[:len(y)]
        refit = fit_curve(model, g, smooth + resampled, g0)
        out[i] = [refit["plateau"], *curve(model, refit, np.array(horizons, float), g0)]
    return out


def interval(samples: np.ndarray) -> list[float]:
    return [float(v) for v in np.percentile(samples, [5, 95])]


def load_run(name: str) -> dict:
    """A bench_worldmodel result (a preset's name or a file), or one CMA-ES search's ``history.json`` (as its
    run folder holds it while it runs): V+M+C's or V only's by its config, from generation 1."""
    path = Path(name) if name.endswith(".json") else RESULTS / f"bench_worldmodel_{name}.json"
    if not path.exists():
        print(f"error: no benchmark result at {path}: run scripts/bench_worldmodel.py for it, or pass an existing "
              f"result file (or a search's history.json) to --runs", file=sys.stderr)
        raise SystemExit(2)
    run = json.loads(path.read_text())
    if "history" in run and "config" in run:  # one search, still running or done
        return {SEARCHES["V+M+C" if run["config"].get("memory", True) else "V only"]: run["history"]}
    return run


def project_search(model: str, history: list[dict], offset: int, horizons: list[int], fit_until: int | None,
                   rng: np.random.Generator, n_boot: int) -> tuple[dict, np.ndarray]:
    """One search's fit with one model: the plateau, the curve at each horizon with their intervals, and with
    ``fit_until`` the curve against the generations it did not see."""
    g = offset + np.array([h["generation"] for h in history], float)
    y = np.array([h["mean"] for h in history], float)
    used = g <= fit_until if fit_until else np.ones(len(g), bool)
    if used.sum() < 2 * BLOCK:
        print(f"error: a search has {int(used.sum())} generations to fit, fewer than {2 * BLOCK}: fit more of "
              f"it (a larger --fit-until) or leave that run out", file=sys.stderr)
        raise SystemExit(2)
    g0 = float(g[0])
    fit = fit_curve(model, g[used], y[used], g0)
    samples = bootstrap(model, g[used], y[used], g0, fit, horizons, rng, n_boot)
    out = {**fit, "first_generation": int(g0), "last_generation_fitted": int(g[used][-1]),
           "plateau_interval": interval(samples[:, 0]), "last_20_average": float(y[used][-20:].mean()),
           "at": {str(h): {"curve": float(curve(model, fit, h, g0)), "interval": interval(samples[:, 1 + k])}
                  for k, h in enumerate(horizons)}}
    if fit_until and (~used).any():  # the projection against what the search then did
        out["after_the_fit"] = [
            {"generations": [lo, int(g[block][-1])], "measured": float(y[block].mean()),
             "projected": float(curve(model, fit, g[block], g0).mean())}
            for lo in range(int(fit_until) + 1, int(g[-1]) + 1, 50)
            if (block := (g >= lo) & (g < lo + 50)).any()]
    return out, samples


def difference(a: dict, b: dict, samples: np.ndarray, horizons: list[int]) -> dict:
    """``a - b`` for two searches' fits; intervals from the two bootstraps' draws taken pairwise (independent)."""
    return {"plateau": a["plateau"] - b["plateau"], "plateau_interval": interval(samples[:, 0]),
            "at": {str(h): {"curve": a["at"][str(h)]["curve"] - b["at"][str(h)]["curve"],
                            "interval": interval(samples[:, 1 + k])} for k, h in enumerate(horizons)}}


def main(argv: list[str] | None = None) -> dict:
    parser = CommandParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS,
                        help="bench_worldmodel presets (their result in scripts/results) or result files")
    parser.add_argument("--horizons", nargs="+", type=int, default=[200, 400, 1800],
                        help="generations to project to (1,800: the World Models paper's)")
    parser.add_argument("--fit-until", type=int, help="fit generations up to this one; measure the rest")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples per search and model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "worldmodel_projection.json")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    runs, drawn = {}, {}
    for name in args.runs:
        run = load_run(name)
        offset = int(run.get("preset_values", {}).get("warm_start_generations") or 0)
        result, samples = {}, {}
        for search, key in SEARCHES.items():
            if not run.get(key):
                continue
            start = offset if search == "V+M+C" else 0
            result[search] = {}
            for model in MODELS:
                result[search][model], samples[search, model] = project_search(
                    model, run[key], start, args.horizons, args.fit_until, rng, args.bootstrap)
            drawn[name, search] = (run[key], start, result[search])
        if len(result) == 2:
            result["V+M+C minus V only"] = {
                model: difference(result["V+M+C"][model], result["V only"][model],
                                  samples["V+M+C", model] - samples["V only", model], args.horizons)
                for model in MODELS}
        runs[name] = result
    summary = {"quantity": "the CMA-ES candidates' average return per generation (not the 100-track score)",
               "models": {"exponential": "a w + b (1 - w), w = 1 - exp(-(g - g0) / tau)",
                          "logistic": "a w + b (1 - w), w = 1 / (1 + exp(-(g - mid) / width))"},
               "bootstrap": {"resamples": args.bootstrap, "block_generations": BLOCK, "seed": args.seed},
               "fit_until": args.fit_until, "horizons": args.horizons, "runs": runs}
    write_json(args.out, summary)
    plot(args.out.with_suffix(".png"), drawn, max(args.horizons))
    for name, result in runs.items():
        for search, by_model in result.items():
            for model, r in by_model.items():
                lo, hi = r["plateau_interval"]
                sign = "+" if search not in SEARCHES else ""
                line = (f"{name:>20} {search:>18} {model:>11}: plateau {r['plateau']:{sign}7.1f} "
                        f"[{lo:{sign}.1f}, {hi:{sign}.1f}]; " + ", ".join(
                            f"at {h}: {v['curve']:{sign}.1f}" for h, v in r["at"].items()))
                for block in r.get("after_the_fit", []):
                    line += (f"\n{'':>52}generations {block['generations'][0]}-{block['generations'][1]}: "
                             f"measured {block['measured']:.1f}, projected {block['projected']:.1f}")
                print(line)
    print(f"wrote {args.out}")
    return summary


def plot(path: Path, drawn: dict, horizon: int) -> None:
    """Each search's curve (faint) with its two fits to ``horizon`` (solid: exponential, dashed: logistic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    for k, ((name, search), (history, start, fits)) in enumerate(drawn.items()):
        g = start + np.array([h["generation"] for h in history], float)
        ax.plot(g, [h["mean"] for h in history], color=f"C{k}", alpha=0.3, lw=1)
        for model, style in zip(MODELS, ("-", "--")):
            r = fits[model]
            gg = np.linspace(r["first_generation"], horizon, 500)
            ax.plot(gg, curve(model, r, gg, r["first_generation"]), color=f"C{k}", ls=style,
                    label=f"{name}, {search}, {model}: plateau {r['plateau']:.0f}")
        ax.axvline(fits["exponential"]["last_generation_fitted"], color="grey", ls=":", lw=0.8)
    ax.set(xscale="log", xlabel="CMA-ES generation (log scale)", ylabel="candidates' average return",
           title="CMA-ES curves (faint) and the curves fitted to them")
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
