"""Training curves from ``train/metrics.jsonl``: per metric, the mean over seeds of each row label as a line and a
shaded band over seeds, EMA-smoothed (the span is stated on the figure), against RL steps and, where the log allows,
against generated tokens and training time. The raw per-step values are written to ``training.csv`` beside them.

- ``training.png/.pdf``: x = RL step;
- ``training_tokens.png/.pdf``: x = cumulative generated response tokens (``tokens_per_s * time_generate_s`` of each
  step, i.e. the tokens rank 0 generated; exact, since that is how the loop computes ``tokens_per_s``);
- ``training_time.png/.pdf``: x = cumulative ``time_generate_s + time_score_s + time_update_s`` in minutes (the
  time inside RL steps; evaluation, checkpointing and start-up are not counted), in seconds below 2 minutes.

For the token and time axes each seed's smoothed curve is interpolated onto a common grid up to the smallest
final x over the seeds before the mean and band are taken.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import EngFormatter, MaxNLocator

from common.errors import HarnessError
from harness.report.plots.common import (band_over_seeds, ema, ema_span, legend, panels, save, styles, write_csv,
                                         zero_axis)
from harness.results import read_jsonl

# metric -> (panel title, y-axis label with units)
TRAIN_KEYS = {
    "reward_mean": ("reward", "mean reward per response"),
    "kl": ("KL to reference", "KL(pi_old || pi_ref) (nats/token)"),
    "entropy": ("policy entropy", "entropy (nats/token)"),
    "response_len": ("response length", "response length (tokens)"),
    "mismatch_kl": ("rollout/training mismatch", "KL(rollout || training), k3 (nats/token)"),
    "mismatch_logp_abs_max": ("largest rollout/training gap", "max |log u| over tokens (nats)"),
    "process_share": ("process share (PRL, FRPO)", "mean |process part| / mean |outcome part|"),
}
X_AXES = {
    "step": ("training.png", "RL step"),
    "tokens": ("training_tokens.png", "generated tokens (cumulative)"),
    "time_min": ("training_time.png", "time in RL steps ({unit})"),
}
BAND_NAMES = {"minmax": "min-max over seeds", "ci95": "95% CI over seeds (t)"}


def _read_log(path: Path) -> list[dict]:
    try:
        return [m for m in read_jsonl(path) if isinstance(m, dict) and "step" in m]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: invalid JSON line ({e})") from None


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def run_series(rows: list[dict]) -> dict[str, np.ndarray]:
    """Arrays over the logged steps: ``step``, ``tokens``/``time_min`` (cumulative; all-NaN when not logged) and
    each of :data:`TRAIN_KEYS`."""
    rows = sorted(rows, key=lambda m: m["step"])
    out = {"step": np.array([_num(m["step"]) for m in rows])}
    tok = np.array([_num(m.get("tokens_per_s")) * _num(m.get("time_generate_s")) for m in rows])
    sec = np.array([sum(_num(m.get(k)) for k in ("time_generate_s", "time_score_s", "time_update_s")) for m in rows])
    out["tokens"] = np.cumsum(np.rint(tok)) if len(tok) and np.isfinite(tok).all() else np.full(len(rows), np.nan)
    out["time_min"] = np.cumsum(sec) / 60 if len(sec) and np.isfinite(sec).all() else np.full(len(rows), np.nan)
    for k in TRAIN_KEYS:
        out[k] = np.array([_num(m.get(k)) for m in rows])
    return out


def _curve(xs: list[np.ndarray], ys: list[np.ndarray], on_steps: bool) -> tuple[np.ndarray, np.ndarray]:
    """Align the seeds' curves: on the union of steps (NaN where a seed has none), or interpolated onto a grid."""
    if on_steps:
        grid = np.unique(np.concatenate(xs))
        return grid, np.array([np.interp(grid, x, y, left=np.nan, right=np.nan) if len(x) else np.full(len(grid),
                               np.nan) for x, y in zip(xs, ys)])
    end = min(x[-1] for x in xs)
    grid = np.linspace(max(x[0] for x in xs), end, 200) if end > 0 else np.array([end])
    return grid, np.array([np.interp(grid, x, y) for x, y in zip(xs, ys)])


def plot_training(runs, path: Path, band: str = "minmax") -> Path | None:
    """``training.png`` (and its PDF, ``training.csv`` and, when logged, the token and time versions) for ``runs``;
    None when no run has ``train/metrics.jsonl`` rows with a known metric."""
    made = training_figures(runs, path, band)
    return made[0] if made else None


def _panel(ax, key: str, groups: dict, series: dict, x: tuple, span: int, band: str, style: dict) -> None:
    """One metric's panel: per label, the mean over seeds of the EMA-smoothed curves, with a band over seeds."""
    xkey, xlabel, scale = x
    plotted = []
    for label, group in groups.items():
        pts = [(series[r.path][xkey] * scale, ema(series[r.path][key], span)) for r in group
               if np.isfinite(series[r.path][key]).any()]
        if not pts:
            continue
        grid, curves = _curve([p[0] for p in pts], [p[1] for p in pts], xkey == "step")
        mean, lo, hi = band_over_seeds(curves, band)
        plotted += [*mean, *lo, *hi]
        ax.plot(grid, mean, lw=1.6, **style[label], label=f"{label} ({len(pts)} seed"
                f"{'s' if len(pts) > 1 else ''})")
        if len(pts) > 1:
            ax.fill_between(grid, lo, hi, color=style[label]["color"], alpha=0.13, lw=0)
    ax.set_title(TRAIN_KEYS[key][0], fontsize=10)
    ax.set_xlabel(xlabel)
    if xkey == "step":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if xkey == "tokens":
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 50k, 1.2M
    ax.set_ylabel(TRAIN_KEYS[key][1], fontsize=9)
    zero_axis(ax, plotted, top=1.0)


def training_figures(runs, path: Path, band: str = "minmax") -> list[Path]:
    """The figures of :func:`plot_training`: ``path`` first, then the token and time versions that were made."""
    series = {r.path: run_series(_read_log(r.path / "train" / "metrics.jsonl")) for r in runs}
    keys = [k for k in TRAIN_KEYS if any(np.isfinite(s[k]).any() for s in series.values())]
    if not keys:
        return []
    groups: dict[str, list] = {}
    for r in runs:
        if len(series[r.path]["step"]):
            groups.setdefault(r.label, []).append(r)
    style = styles(list(groups))
    n_steps = max(len(s["step"]) for s in series.values())
    span = ema_span(n_steps)
    made = []
    for xkey, (name, xlabel) in X_AXES.items():
        if xkey != "step" and not all(np.isfinite(series[r.path][xkey]).all() for g in groups.values() for r in g):
            continue  # not logged by every run
        fig, axes = panels(len(keys), cols=2, width=4.6, height=3.0)
        scale = 1.0
        if xkey == "time_min":  # seconds for short runs
            short = max(series[r.path][xkey][-1] for g in groups.values() for r in g) < 2
            scale, xlabel = (60.0, xlabel.format(unit="s")) if short else (1.0, xlabel.format(unit="min"))
        for ax, key in zip(axes, keys):
            _panel(ax, key, groups, series, (xkey, xlabel, scale), span, band, style)
        seeds = max(len(g) for g in groups.values())
        legend(fig, axes, f"lines: mean over seeds of EMA-smoothed values (span {span} steps)"
                          + (f"; bands: {BAND_NAMES[band]}" if seeds > 1 else "; 1 seed per row: no band")
                          + "; raw values in training.csv")
        path_x = path if xkey == "step" else path.with_name(name)
        made.append(save(fig, path_x))
    _write_raw(runs, series, path.with_name("training.csv"))
    return made


def _write_raw(runs, series: dict, path: Path) -> Path:
    header = ["label", "run", "seed", "step", "generated_tokens", "time_min", *TRAIN_KEYS]
    rows = []
    for r in runs:
        s = series[r.path]
        for i in range(len(s["step"])):
            vals = [s["step"][i], s["tokens"][i], s["time_min"][i], *(s[k][i] for k in TRAIN_KEYS)]
            rows.append([r.label, r.path.name, r.seed, *("" if not np.isfinite(v) else (int(v) if float(v).is_integer()
                                                                                      else f"{v:.6g}") for v in vals)])
    return write_csv(path, header, rows)
