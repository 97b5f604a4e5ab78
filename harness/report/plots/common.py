"""Shared plotting helpers: figures of panels, one legend per figure, PNG + PDF written atomically, EMA smoothing
and bands over seeds. matplotlib's object API (``Figure`` + Agg canvas) is used, so no global backend is switched."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from common.atomic import atomic_write_bytes, atomic_write_text

BASE_STYLE = dict(color="0.35", linestyle="--")


def save(fig: Figure, path: Path) -> Path:
    """Write ``path`` (PNG, 150 dpi, for quick looks) and the same figure as a vector PDF beside it."""
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=150, bbox_inches="tight"))
    atomic_write_bytes(path.with_suffix(".pdf"), lambda f: fig.savefig(f, format="pdf", bbox_inches="tight"))
    return path


def zero_axis(ax, values, top: float = 100.0) -> None:
    """An axis whose data are all 0 (no problem solved, no KL term) shows ``[0, top]`` (0-100% for a percentage)
    instead of matplotlib's +-0.05 around 0, which reads as a signal and shows negative values. Only exact zeros:
    a tiny but real value (a float32 rollout/training mismatch of 1e-11) keeps its own scale."""
    values = np.asarray(list(values), dtype=float)
    values = values[np.isfinite(values)]
    if values.size and not values.any():
        ax.set_ylim(0.0, top)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """The plotted data, unsmoothed, next to the figure."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return path


def panels(n: int, cols: int = 3, width: float = 4.0, height: float = 3.0) -> tuple[Figure, list]:
    cols = min(n, cols)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        ax.grid(alpha=0.3)
    return fig, axes[:n]


def legend(fig: Figure, axes: list, note: str = "", ncols: int = 4) -> None:
    """One legend for the whole figure (below the panels), from the labelled lines of every panel; ``note`` (how
    lines and bands were computed) goes under it."""
    handles: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=min(len(handles), ncols), fontsize=8, frameon=False)
    if note:
        fig.suptitle(note, fontsize=8, color="0.3")


LINESTYLES = ("-", "--", "-.", ":")


def styles(labels: list[str]) -> dict[str, dict]:
    """A fixed colour and line style per row label (the same in every figure of a report); the styles cycle so
    that rows with identical curves stay visible on top of each other."""
    return {label: dict(color=f"C{i % 10}", linestyle=LINESTYLES[i % len(LINESTYLES)])
            for i, label in enumerate(dict.fromkeys(labels))}


def ema(y: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, bias-corrected at the start (as TensorBoard's
    smoothing), NaNs skipped; ``span`` 1 returns ``y``."""
    if span <= 1:
        return np.asarray(y, dtype=float)
    alpha, out, acc, weight = 2.0 / (span + 1), np.empty(len(y)), 0.0, 0.0
    for i, v in enumerate(np.asarray(y, dtype=float)):
        if np.isfinite(v):
            acc = (1 - alpha) * acc + alpha * v
            weight = (1 - alpha) * weight + alpha
        out[i] = acc / weight if weight else np.nan
    return out


def ema_span(n_steps: int) -> int:
    """The smoothing window used for training curves: a fifth of the steps, between 1 and 50."""
    return int(min(50, max(1, round(n_steps / 5))))


def band_over_seeds(curves: np.ndarray, kind: str = "minmax") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and band of ``curves`` [seeds, points]: ``minmax`` (min to max over seeds) or ``ci95`` (mean +- t * sem)."""
    from scipy import stats

    mean = np.nanmean(curves, axis=0)
    if len(curves) < 2:
        return mean, mean, mean
    if kind == "minmax":
        return mean, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
    sem = np.nanstd(curves, axis=0, ddof=1) / np.sqrt(len(curves))
    h = stats.t.ppf(0.975, len(curves) - 1) * sem
    return mean, mean - h, mean + h


def bootstrap_ci(values: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% CI of the mean of ``values`` [N] by resampling problems."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float(v.mean())
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)
