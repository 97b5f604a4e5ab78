"""Plots from run directories alone (issues 4 and 16), written next to the table by ``python -m harness table``.

Every figure is written as PNG (quick looks) and PDF (vector, for papers) with the plotted data as CSV beside it;
each has one legend and states how its lines and bands were computed:

- ``pass_at_k``: pass@k against k (log2 axis) per benchmark, 95% bootstrap CI bands (:mod:`.evals`);
- ``training`` (+ ``training_tokens``, ``training_time`` when logged): per metric, mean over seeds of the
  EMA-smoothed values with a min-max band over seeds; raw per-step values in ``training.csv`` (:mod:`.training`);
- ``sweep``: the table's first metric against each swept key, min-max error bars over seeds (:mod:`.evals`).

Example::

    python -m harness table results/my-sweep --out results/my-sweep/report   # writes the plots too
"""

from __future__ import annotations

from pathlib import Path

from harness.report.plots.evals import plot_pass_at_k, plot_sweep, swept_keys
from harness.report.plots.training import TRAIN_KEYS, plot_training, training_figures

__all__ = ["TRAIN_KEYS", "plot_pass_at_k", "plot_sweep", "plot_training", "swept_keys", "write_plots"]


def write_plots(runs, out_dir: str | Path, metric: str = "avg@n") -> list[Path]:
    """Write every applicable plot into ``out_dir``; returns the PNG paths (each has a ``.pdf`` and ``.csv``)."""
    out = Path(out_dir)
    made = [plot_pass_at_k(runs, out / "pass_at_k.png"), *training_figures(runs, out / "training.png"),
            plot_sweep(runs, out / "sweep.png", metric)]
    return [p for p in made if p is not None]
