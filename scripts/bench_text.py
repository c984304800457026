"""Benchmark: a GPT-2-style transformer against a Kneser-Ney character n-gram on held-out text.

Run:  OMP_NUM_THREADS=2 python scripts/bench_text.py               (20 epochs)
      OMP_NUM_THREADS=2 python scripts/bench_text.py --epochs 50   (its own result files)
Smoke run (a minute): python scripts/bench_text.py --quick            (writes to /tmp/bench_text_quick)

Both models train on the training side of the embedded standard-library corpus (docstrings
and pydoc's language-reference topics, no download) and are scored on its held-out
documents: perplexity (per token for the transformer, per character for the n-gram) and bits
per character, which compares them on one scale (total NLL in bits / characters of held-out
text incl. one end-of-text symbol per document). The n-gram's order is chosen on a
validation split carved out of the training side. Then one prompt is continued by every
decoding method (greedy, beam, top-k, top-p, contrastive). Writes one JSON and one samples
file per run, named by the options that make the run (no run overwrites another's):
scripts/results/bench_text_<size>_epochs<E>_seed<S>.json and text_samples_<size>_epochs<E>_seed<S>.md;
the JSON holds the wall time of the whole run (``wall_s``).
Target: the transformer's bits/char at least 20% below the n-gram's.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from gailkit.configs import CommandParser
from gailkit.generators.text import TextData, load_data
from gailkit.generators.text.corpus import split_documents
from gailkit.generators.text.gpt import GPT
from gailkit.generators.text.ngram import EOT, NGram
from gailkit.nn.checkpoint import write_json

RESULTS = Path(__file__).parent / "results"
PROMPT = "Return a list of"
DECODERS: dict[str, dict] = {
    "greedy": {"method": "greedy"},
    "beam": {"method": "beam", "num_beams": 4, "no_repeat_ngram_size": 3},
    "top-k": {"method": "sample", "top_k": 40, "top_p": 1.0},
    "top-p": {"method": "sample", "top_p": 0.9},
    "contrastive": {"method": "contrastive", "top_k": 4, "penalty_alpha": 0.6},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = CommandParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="text spec (default: the stdlib corpus)")
    p.add_argument("--orders", default="4,6,8,10,12,14,16,20", help="n-gram orders to choose from on validation")
    p.add_argument("--size", default="small", help="transformer size preset")
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-new-tokens", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 1 epoch, 300 documents")
    p.add_argument("--out", type=Path, default=None, help="run directory for the transformer (default: none)")
    p.add_argument("--json", type=Path, default=None, help="result JSON (default: named by size, epochs, seed)")
    p.add_argument("--samples", type=Path, default=None, help="samples file (default: named like the JSON)")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.epochs, args.vocab_size, args.context, args.orders = "tiny", 1, 512, 64, "3,5"
    results = Path("/tmp/bench_text_quick") if args.quick else RESULTS  # smoke runs stay out of results/
    run_name = f"{args.size}_epochs{args.epochs}_seed{args.seed}"
    if args.data is not None:  # another corpus: its own files ('/' and ',' would make odd names)
        run_name += "_" + "".join(c if c.isalnum() else "-" for c in args.data)[:40]
    args.json = args.json or results / f"bench_text_{run_name}.json"
    args.samples = args.samples or results / f"text_samples_{run_name}.md"
    return args


def run(args: argparse.Namespace) -> dict:
    """Train both models, score them, decode one prompt every way; returns the result dict."""
    train, test = load_data(args.data, split="train"), load_data(args.data, split="test")
    if args.quick:
        train = TextData(train.documents[:300], train.source, "train")
        test = TextData(test.documents[:60], test.source, "test")
    result: dict = {"data": {"train": train.info(), "test": test.info()},
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count()}

    # n-gram: order chosen on a validation split of the training documents, then refit on all of them
    fit_docs = split_documents(list(train.documents), "train", salt="validation")
    val_docs = split_documents(list(train.documents), "test", salt="validation")
    t0 = time.perf_counter()
    val_bpc = {}
    for order in [int(o) for o in args.orders.split(",")]:
        model = NGram(order=order).fit(TextData(tuple(fit_docs), train.source, "train"))
        val_bpc[order] = model.evaluate(TextData(tuple(val_docs), train.source, "validation"))["bits_per_char"]
        print(f"  n-gram order {order}: validation {val_bpc[order]:.4f} bits/char", flush=True)
    best = min(val_bpc, key=val_bpc.get)
    t1 = time.perf_counter()
    ngram = NGram(order=best).fit(train)
    ngram_fit_s = time.perf_counter() - t1
    ngram_eval = ngram.evaluate(test)
    result["ngram"] = {"order": best, "validation_bits_per_char": val_bpc, **ngram_eval,
                       "fit_s": ngram_fit_s, "order_search_s": t1 - t0,
                       "eval_s": time.perf_counter() - t1 - ngram_fit_s}

    # transformer
    gpt = GPT(size=args.size, vocab_size=args.vocab_size, context=args.context, epochs=args.epochs,
              batch_size=args.batch_size, lr=args.lr, seed=args.seed, grid_every=0)
    t0 = time.perf_counter()
    gpt.fit(train, out=args.out, progress=False)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gpt_eval = gpt.evaluate(test)
    n_params = sum(p.numel() for p in gpt.lm.parameters())
    result["gpt"] = {"size": args.size, "vocab_size": args.vocab_size, "context": args.context,
                     "epochs": args.epochs, "parameters": n_params, **gpt_eval, "fit_s": fit_s,
                     "eval_s": time.perf_counter() - t0, "history": gpt.history}
    result["improvement"] = 1 - gpt_eval["bits_per_char"] / ngram_eval["bits_per_char"]
    result["target_met"] = result["improvement"] >= 0.20

    # one prompt, every decoding method (seeded)
    samples = {}
    for name, options in DECODERS.items():
        t0 = time.perf_counter()
        text = gpt.generate(PROMPT, max_new_tokens=args.max_new_tokens, seed=args.seed, **options)
        samples[name] = {"options": options, "text": PROMPT + text, "wall_s": time.perf_counter() - t0}
    samples["ngram"] = {"options": {"order": best}, "wall_s": 0.0,
                        "text": PROMPT + ngram.lm.sample(250, rng=np.random.default_rng(args.seed),
                                                         history=EOT + PROMPT)}
    result["samples"] = samples
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return result


def print_table(result: dict) -> None:
    ng, g = result["ngram"], result["gpt"]
    print(f"\nheld-out: {result['data']['test']['documents']} documents, {int(ng['characters'])} characters "
          f"({result['threads']} torch threads)")
    print("| model | perplexity | bits/char | fit s | eval s |")
    print("|---|---|---|---|---|")
    print(f"| char {ng['order']}-gram, Kneser-Ney | {ng['perplexity']:.3f} / char | {ng['bits_per_char']:.4f} | "
          f"{ng['fit_s']:.1f} | {ng['eval_s']:.1f} |")
    print(f"| GPT-2 {g['size']} ({g['parameters'] / 1e6:.2f}M params, BPE {g['vocab_size']}, {g['epochs']} epochs) | "
          f"{g['perplexity']:.2f} / token | {g['bits_per_char']:.4f} | {g['fit_s']:.1f} | {g['eval_s']:.1f} |")
    verdict = "met" if result["target_met"] else "NOT met"
    print(f"transformer vs n-gram: {100 * result['improvement']:.1f}% fewer bits/char (target >= 20%: {verdict})\n")
    for name, s in result["samples"].items():
        print(f"[{name}] {s['text']!r}")


def write_samples_md(path: Path, result: dict) -> None:
    lines = ["# Text samples (scripts/bench_text.py)", "",
             (f"Prompt: `{PROMPT}`; transformer: GPT-2 {result['gpt']['size']}, "
              f"{result['gpt']['bits_per_char']:.3f} bits/char held out; n-gram order {result['ngram']['order']}, "
              f"{result['ngram']['bits_per_char']:.3f} bits/char."), ""]
    for name, s in result["samples"].items():
        lines += [f"## {name}", "", f"options: `{json.dumps(s['options'])}`", "", "```text", s["text"], "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    result = run(args)
    result["wall_s"] = time.perf_counter() - start
    print_table(result)
    write_json(args.json, result)
    write_samples_md(args.samples, result)
    print(f"wrote {args.json} and {args.samples}")
    return result


if __name__ == "__main__":
    main()
