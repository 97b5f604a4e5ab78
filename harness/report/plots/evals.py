"""Evaluation plots: pass@k curves (``pass_at_k.png``) and the metric against each swept key (``sweep.png``).

- pass@k: per benchmark, per row label the mean over seeds of the unbiased pass@k (``summary.json``) on a log2 k
  axis, with a 95% bootstrap CI over problems (per-problem pass@k from ``samples.jsonl``, averaged over seeds, 2,000
  resamples) as the band; the base model dashed. Data in ``pass_at_k.csv``.
- sweep: for runs whose ``run.json`` "settings" vary, the table's first metric against each swept key (evenly
  spaced categorical axis, sorted values), one panel per (key, benchmark), one line per combination of the other
  swept keys; mean over seeds, error bars min-max over seeds. Data in ``sweep.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.errors import HarnessError
from harness.report.plots.common import (BASE_STYLE, bootstrap_ci, legend, panels, save, styles, write_csv,
                                         zero_axis)
from harness.report.scores import combine_seeds, per_problem_scores
from harness.report.tables import BASE, metric_value, sort_key, table_benches


def _groups(runs) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in runs:
        out.setdefault(r.label, []).append(r)
    return out


def _pass_curve(evals: list) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """k values, mean pass@k over seeds (%) and the bootstrap CI (%) for the evaluations of one row."""
    ks = sorted(int(k) for k in evals[0].summary["pass@k"])
    ks = [k for k in ks if all(str(k) in e.summary["pass@k"] for e in evals)]
    mean = 100 * np.array([np.mean([e.summary["pass@k"][str(k)] for e in evals]) for k in ks])
    lo, hi = np.empty(len(ks)), np.empty(len(ks))
    for j, k in enumerate(ks):
        try:
            scores = combine_seeds([per_problem_scores(e.samples, f"pass@{k}", e.n) for e in evals])
            lo[j], hi[j] = (100 * v for v in bootstrap_ci(np.array(list(scores.values())), seed=k))
        except HarnessError:  # no usable samples.jsonl: no band
            lo[j] = hi[j] = mean[j]
    return ks, mean, lo, hi


def plot_pass_at_k(runs, path: Path) -> Path:
    """pass@k curves per benchmark (k on a log2 axis) with 95% CI bands, one line per label plus the base model."""
    benches, _ = table_benches(runs)
    base_run = next((r for r in runs if r.base), None)
    groups = _groups(runs)
    style_of = styles(list(groups))
    fig, axes = panels(len(benches), cols=3, width=4.0, height=3.2)
    rows = []
    for ax, bench in zip(axes, benches):
        series = ([(BASE, [base_run.base[bench]])] if base_run and bench in base_run.base else [])
        series += [(label, [r.evals[bench] for r in g]) for label, g in groups.items()]
        all_ks: set[int] = set()
        plotted: list[float] = []
        for label, evals in series:
            ks, mean, lo, hi = _pass_curve(evals)
            all_ks.update(ks)
            style = BASE_STYLE if label == BASE else style_of[label]
            seeds = f" ({len(evals)} seeds)" if len(evals) > 1 else ""
            ax.plot(ks, mean, marker="o", ms=3, lw=1.5, label=f"{label}{seeds}", **style)
            ax.fill_between(ks, lo, hi, alpha=0.12, color=style["color"], lw=0)
            plotted += [*mean, *lo, *hi]
            rows += [[bench, label, len(evals), k, f"{m:.4f}", f"{a:.4f}", f"{b:.4f}"]
                     for k, m, a, b in zip(ks, mean, lo, hi)]
        ks = sorted(all_ks)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_title(bench, fontsize=10)
        ax.set_xlabel("k (samples per problem, log2 axis)")
        ax.set_ylabel("pass@k (%)")
        zero_axis(ax, plotted)
    legend(fig, axes, "lines: unbiased pass@k, mean over seeds; bands: 95% bootstrap CI over problems",
           ncols=2 * min(len(benches), 3))
    write_csv(path.with_suffix(".csv"), ["bench", "row", "seeds", "k", "pass_at_k_pct", "ci95_lo", "ci95_hi"], rows)
    return save(fig, path)


def swept_keys(runs) -> list[str]:
    """Keys of run.json "settings" with at least two distinct non-null values across runs (first-seen order)."""
    keys: list[str] = []
    for r in runs:
        settings = r.info.get("settings") or {}
        if not isinstance(settings, dict):
            raise HarnessError(f"{r.path / 'run.json'}: 'settings' must be an object (got {settings!r})")
        keys += [k for k in settings if k not in keys]
    values = lambda k: {json.dumps(r.info["settings"][k], sort_keys=True) for r in runs  # noqa: E731
                        if (r.info.get("settings") or {}).get(k) is not None}
    return [k for k in keys if len(values(k)) > 1]


def plot_sweep(runs, path: Path, metric: str = "avg@n") -> Path | None:
    """Metric against each swept coefficient; None when nothing was swept."""
    keys = swept_keys(runs)
    if not keys:
        return None
    benches, _ = table_benches(runs)
    fig, axes = panels(len(keys) * len(benches), cols=len(benches), width=4.0, height=3.2)
    settings = lambda r: r.info.get("settings") or {}  # noqa: E731
    rows, names = [], []
    for idx, (key, bench) in enumerate((k, b) for k in keys for b in benches):
        ax = axes[idx]
        swept = [r for r in runs if settings(r).get(key) is not None]
        xs = sorted({json.dumps(settings(r)[key]) for r in swept}, key=lambda s: sort_key(json.loads(s)))
        series: dict[str, dict[str, list[float]]] = {}
        for r in swept:
            others = ", ".join(f"{k.rsplit('.', 1)[-1]}={settings(r).get(k)}" for k in keys if k != key)
            name = f"{r.info.get('algo', r.label)}" + (f" ({others})" if others else "")
            header, value, _ = metric_value(r.evals[bench], metric)
            series.setdefault(name, {}).setdefault(json.dumps(settings(r).get(key)), []).append(100 * value)
        for name, points in series.items():
            names.append(name)
            pos = [xs.index(x) for x in xs if x in points]
            vals = [points[x] for x in xs if x in points]
            mean = np.array([np.mean(v) for v in vals])
            err = np.array([[m - min(v), max(v) - m] for m, v in zip(mean, vals)]).T
            ax.errorbar(pos, mean, yerr=err, marker="o", ms=4, capsize=3, label=name, **styles(names)[name])
            rows += [[bench, key, name, json.loads(x), len(points[x]), f"{np.mean(points[x]):.4f}",
                      f"{min(points[x]):.4f}", f"{max(points[x]):.4f}"] for x in xs if x in points]
        ax.set_xticks(range(len(xs)), [str(json.loads(x)) for x in xs])
        ax.set_title(f"{bench}: {header} vs {key.rsplit('.', 1)[-1]}", fontsize=10)
        ax.set_xlabel(f"{key} (evenly spaced, sorted)")
        ax.set_ylabel(f"{header} (%)")
        zero_axis(ax, [v for points in series.values() for vs in points.values() for v in vs])
    legend(fig, axes, "points: mean over seeds; error bars: min-max over seeds", ncols=2 * len(benches))
    write_csv(path.with_suffix(".csv"), ["bench", "key", "series", "value", "seeds", "mean_pct", "min_pct",
                                         "max_pct"], rows)
    return save(fig, path)
