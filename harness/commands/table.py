"""``python -m harness table``: paper-style comparison table (+ plots) from run or sweep directories.

Builds everything from result files alone (``run.json``, ``eval*/<bench>/summary.json`` and ``samples.jsonl``,
``train/metrics.jsonl``); see :mod:`harness.report` (loading, tables and significance, rendering, plots) and
``results/README.md`` (layout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import HarnessError
from harness.results import atomic_write_text

FORMATS = ("csv", "latex", "md")   # harness.report.render.RENDERERS' keys (imported in run: scipy is slow to import)

EPILOG = """examples:
  python -m harness table results/grpo_s0 results/prl_s0              # Markdown to stdout
  python -m harness table results/my-sweep --baseline grpo --format latex
  python -m harness table results/my-sweep --baseline grpo --out results/my-sweep/report
      # writes table.md, table.tex, table.csv, pass_at_k.png, training.png (and sweep.png for a sweep)
  python -m harness table results/my-sweep --metric avg@n --metric pass@1,pass@n
  python -m harness table results/frpo-sweep --metric bootstrap_pass@16   # FRPO Table 1: mean (std), n = 16

A directory is a run if it holds run.json, else a sweep: its sub-directories (or runs/*) with run.json are used
and unfinished ones skipped with a warning. Rows: base (eval_base/ of the first run), then one per run.json label
(seeds combined). The dagger marks differences to --baseline that are significant after Holm at --alpha."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("table", help="comparison table with significance tests, and plots",
                              description=__doc__.splitlines()[0], epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="run directories and/or sweep directories")
    p.add_argument("--baseline", default=None,
                   help="row label to test the others against (default: base if present, else the first row)")
    p.add_argument("--format", choices=FORMATS, default="md", help="format printed to stdout (default md)")
    p.add_argument("--out", default=None, help="also write table.md/.tex/.csv and the PNG plots into this directory")
    p.add_argument("--metric", action="append", default=None,
                   help="column metrics, comma-separated or repeated: avg@n, pass@n, pass@K (unbiased pass@k), "
                        "bootstrap_pass@n or bootstrap_pass@K with K = n (FRPO's bootstrap pass@k, printed as "
                        "'mean (std)'; from summary.json's bootstrap_pass@n) (default avg@n,pass@n)")
    p.add_argument("--n-resamples", type=int, default=10_000, help="bootstrap resamples per comparison")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate for Holm (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-plots", action="store_true", help="with --out, do not write the PNG plots")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load runs, build the table, print it in ``--format`` and, with ``--out``, write all formats and plots."""
    from harness.report.render import RENDERERS
    from harness.report.tables import build_table, load_runs, parse_metrics

    metrics = parse_metrics([m.strip() for spec in (args.metric or ["avg@n,pass@n"]) for m in spec.split(",")])
    if args.n_resamples < 1:
        raise HarnessError(f"--n-resamples must be >= 1 (got {args.n_resamples})")
    if not 0 < args.alpha < 1:
        raise HarnessError(f"--alpha must be in (0, 1) (got {args.alpha})")
    runs, warnings = load_runs(args.dirs)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    table = build_table(runs, baseline=args.baseline, metrics=metrics, n_resamples=args.n_resamples,
                        alpha=args.alpha, seed=args.seed)
    print(RENDERERS[args.format][0](table), end="")
    if args.out:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise HarnessError(f"--out {out} exists and is not a directory")
        written = []
        for render, name in RENDERERS.values():
            atomic_write_text(out / name, render(table))
            written.append(out / name)
        if not args.no_plots:
            from harness.report.plots import (
                write_plots,  # matplotlib is imported only when plots are wanted
            )

            written += write_plots(runs, out, metrics[0])
        print("wrote " + ", ".join(map(str, written)), file=sys.stderr)
    return 0
