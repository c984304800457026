"""Sums up `bench_worldmodel.py --seed N` runs of one preset: V+M+C against V only over the seeds.

Run:  python scripts/bench_worldmodel_seeds.py --preset fast-2h-m32
      python scripts/bench_worldmodel_seeds.py --preset fast-2h-m32-continue --against fast-2h-m32

Reads scripts/results/bench_worldmodel_<preset>.json (seed 0) and ..._seed<N>.json (every seed
found), whose rows share their evaluation tracks, and writes
scripts/results/bench_worldmodel_<preset>_seeds.json: per seed, each row's mean and V+M+C minus
each other row track by track; over the seeds, each row's mean and standard deviation, and V+M+C
minus each other row (V only with the same choice of solution) averaged over the seeds track by track
(its standard error over the tracks) and taken per seed (its standard error over the seeds).
With ``--against OTHER``, also this preset's V+M+C minus OTHER's over the seeds both have (same
tracks), and whether their V only rows are the same (the two presets shared V only's searches).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from gailkit.configs import CommandParser
from gailkit.files import write_json

RESULTS = Path(__file__).parent / "results"
VMC = "V+M+C"


def seed_files(preset: str, results: Path = RESULTS) -> dict[int, Path]:
    """``{seed: result file}`` of a preset's bench_worldmodel runs, seed 0 first."""
    first = results / f"bench_worldmodel_{preset}.json"
    files = {0: first} if first.exists() else {}
    for path in results.glob(f"bench_worldmodel_{preset}_seed*.json"):
        match = re.fullmatch(rf"bench_worldmodel_{re.escape(preset)}_seed(\d+)\.json", path.name)
        if match:
            files[int(match.group(1))] = path
    return dict(sorted(files.items()))


def difference(d: np.ndarray) -> dict[str, float | int]:
    """Mean of per-track differences, its standard error, and the tracks each way."""
    return {"mean": float(d.mean()), "standard_error": float(d.std(ddof=1) / np.sqrt(len(d))),
            "tracks_ahead": int((d > 0).sum()), "tracks_behind": int((d < 0).sum())}


def comparisons(names: list[str]) -> list[tuple[str, str]]:
    """``(a, b)`` pairs for ``a minus b``: V+M+C against V only with the same choice of solution (or start),
    an ablation of such a V+M+C ("V+M+C (DAgger start), h held ...") against it, and V+M+C against every
    other row but its own variants (random, the ablations, a V-only control)."""
    pairs = []
    for n in names:
        variant = n.split("), ")[0] + ")" if "), " in n else n  # "V+M+C (X), ..." -> "V+M+C (X)"
        if n.startswith("V only") and VMC + n[len("V only"):] in names:
            pairs.append((VMC + n[len("V only"):], n))
        elif n.startswith(VMC + " (") and variant != n and variant in names:
            pairs.append((variant, n))
        elif n != VMC and not n.startswith(VMC + " ("):
            pairs.append((VMC, n))
    return pairs


def summarise(runs: dict[int, dict]) -> dict:
    """Per seed and over the seeds; rows are those every run has (older runs may lack the ablations)."""
    names = [n for n in runs[min(runs)]["returns"] if all(n in r["returns"] for r in runs.values())]
    tracks = {s: {n: np.asarray(r["returns"][n]["all"], dtype=float) for n in names} for s, r in runs.items()}
    pairs = comparisons(names)
    per_seed = {s: {"means": {n: float(t[n].mean()) for n in names},
                    "differences": {f"{a} minus {b}": difference(t[a] - t[b]) for a, b in pairs}}
                for s, t in tracks.items()}
    means = {n: np.array([per_seed[s]["means"][n] for s in runs]) for n in names}
    over = {"seeds": list(runs), "means": {n: {"mean": float(m.mean()), "std_over_seeds": float(m.std(ddof=1))}
                                           for n, m in means.items()}, "differences": {}}
    for a, b in pairs:
        per_track = np.mean([tracks[s][a] - tracks[s][b] for s in runs], axis=0)  # averaged over the seeds
        gaps = means[a] - means[b]
        over["differences"][f"{a} minus {b}"] = {
            "over_tracks": difference(per_track), "per_seed": gaps.tolist(),
            "standard_error_over_seeds": float(gaps.std(ddof=1) / np.sqrt(len(gaps)))}
    return {"rows": names, "per_seed": per_seed, "over_seeds": over}


def against(runs: dict[int, dict], others: dict[int, dict], other: str) -> dict:
    """This preset's V+M+C minus another's, over the seeds both ran, as :func:`summarise` compares rows."""
    seeds = [s for s in runs if s in others]
    a, b = (np.array([r[s]["returns"][VMC]["all"] for s in seeds], dtype=float) for r in (runs, others))
    gaps = a.mean(1) - b.mean(1)
    return {"preset": other, "seeds": seeds,
            "V+M+C minus its V+M+C": {"over_tracks": difference((a - b).mean(0)), "per_seed": gaps.tolist(),
                                      "standard_error_over_seeds": float(gaps.std(ddof=1) / np.sqrt(len(gaps)))},
            "same_v_only": all(runs[s]["returns"]["V only"]["all"] == others[s]["returns"]["V only"]["all"]
                               for s in seeds)}


def main() -> None:
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast-2h-m32")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the per-seed results")
    parser.add_argument("--against", metavar="PRESET", help="also compare V+M+C with this preset's, seed by seed")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    files = seed_files(args.preset, args.results)
    if len(files) < 2:
        parser.error(f"found {len(files)} result(s) of --preset {args.preset} in {args.results}; run "
                     f"`python scripts/bench_worldmodel.py --preset {args.preset} --seed N` for two or more seeds")
    runs = {s: json.loads(p.read_text()) for s, p in files.items()}
    n_tracks = len(runs[min(runs)]["returns"][VMC]["all"])
    if {len(r["returns"][VMC]["all"]) for r in runs.values()} != {n_tracks}:
        parser.error("the runs were evaluated on different numbers of tracks; rerun them with the same --eval-episodes")
    summary = {"preset": args.preset, "files": {s: p.name for s, p in files.items()}, **summarise(runs)}
    if args.against:
        other_files = seed_files(args.against, args.results)
        common = [s for s in files if s in other_files]
        if len(common) < 2:
            parser.error(f"--against {args.against}: it shares {len(common)} seed(s) with --preset {args.preset} in "
                         f"{args.results}; two or more are needed")
        others = {s: json.loads(other_files[s].read_text()) for s in common}
        if {len(r["returns"][VMC]["all"]) for r in [*runs.values(), *others.values()]} != {n_tracks}:
            parser.error(f"--against {args.against}: evaluated on another number of tracks")
        summary["against"] = against(runs, others, args.against)
    out = args.out or args.results / f"bench_worldmodel_{args.preset}_seeds.json"
    write_json(out, summary)
    over = summary["over_seeds"]
    print(f"| {args.preset}, seeds {', '.join(map(str, files))} | " + " | ".join(summary["rows"]) + " |")
    print("|---|" + "---:|" * len(summary["rows"]))
    for s, row in summary["per_seed"].items():
        print(f"| seed {s} | " + " | ".join(f"{row['means'][n]:.1f}" for n in summary["rows"]) + " |")
    cells = [f"{over['means'][n]['mean']:.1f} ({over['means'][n]['std_over_seeds']:.1f})" for n in summary["rows"]]
    print("| mean (sd over seeds) | " + " | ".join(cells) + " |\n")
    for name, d in over["differences"].items():
        t = d["over_tracks"]
        print(f"{name}: {t['mean']:+.1f} (standard error {t['standard_error']:.1f} over the tracks, "
              f"ahead on {t['tracks_ahead']}, behind on {t['tracks_behind']}; "
              f"{d['standard_error_over_seeds']:.1f} over the seeds: "
              + ", ".join(f"{g:+.1f}" for g in d["per_seed"]) + ")")
    if args.against:
        d, vs = summary["against"]["V+M+C minus its V+M+C"], summary["against"]
        t = d["over_tracks"]
        print(f"V+M+C minus {args.against}'s, seeds {', '.join(map(str, vs['seeds']))}: {t['mean']:+.1f} (standard "
              f"error {t['standard_error']:.1f} over the tracks, ahead on {t['tracks_ahead']}, behind on "
              f"{t['tracks_behind']}; {d['standard_error_over_seeds']:.1f} over the seeds: "
              + ", ".join(f"{g:+.1f}" for g in d["per_seed"]) + f"); same V only rows: {vs['same_v_only']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
