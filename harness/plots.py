"""PNG plots from run directories alone (issue 4, item 4), written next to the table by ``python -m harness table``.

- ``pass_at_k.png``: unbiased pass@k (``summary.json`` "pass@k") against k on a log2 axis, one panel per benchmark,
  one line per row label (mean over seeds, band = +- std over seeds), plus the base model.
- ``training.png``: ``train/metrics.jsonl`` curves (reward_mean, kl, entropy, response_len; those present) against
  ``step``, every run overlaid, one colour per label.
- ``sweep.png``: for runs whose ``run.json`` "settings" vary, the table's first metric against each swept key (evenly
  spaced categorical x axis, sorted values), one panel per (key, benchmark), one line per combination of the other
  swept keys; mean over seeds with +- std error bars.

Uses matplotlib's object API (``Figure`` + Agg canvas), so no global backend is switched. Example::

    python -m harness table results/my-sweep --out results/my-sweep/report   # writes the PNGs too
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from common.errors import HarnessError
from harness.results import read_jsonl
from harness.tables import BASE, Run, metric_value, sort_key, table_benches

TRAIN_KEYS = ("reward_mean", "kl", "entropy", "response_len")


def _save(fig: Figure, path: Path) -> Path:
    """Write the PNG atomically (temp file in the same directory + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _panels(n: int, cols: int = 3, width: float = 4.2, height: float = 3.2) -> tuple[Figure, list]:
    cols = min(n, cols)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _groups(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.label, []).append(r)
    return out


def plot_pass_at_k(runs: list[Run], path: Path) -> Path:
    """pass@k curves per benchmark (k on a log2 axis), one line per label plus the base model."""
    benches, _ = table_benches(runs)
    base_run = next((r for r in runs if r.base), None)
    fig, axes = _panels(len(benches))
    for ax, bench in zip(axes, benches):
        series = ([(BASE, [base_run.base[bench].summary])] if base_run and bench in base_run.base else [])
        series += [(label, [r.evals[bench].summary for r in g]) for label, g in _groups(runs).items()]
        colours = {label: f"C{i}" for i, label in enumerate(_groups(runs))}  # same colours as training.png
        for label, summaries in series:
            ks = sorted(int(k) for k in summaries[0]["pass@k"])
            vals = 100 * np.array([[s["pass@k"][str(k)] for k in ks] for s in summaries])  # [seeds, K]
            mean = vals.mean(0)
            style = dict(color="gray", linestyle="--") if label == BASE else dict(color=colours[label])
            ax.plot(ks, mean, marker="o", label=f"{label} ({len(summaries)} seeds)" if len(summaries) > 1 else label,
                    **style)
            if len(summaries) > 1:
                std = vals.std(0, ddof=1)
                ax.fill_between(ks, mean - std, mean + std, alpha=0.2, color=style["color"])
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(bench)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _read_log(path: Path) -> list[dict]:
    try:
        return [m for m in read_jsonl(path) if isinstance(m, dict)]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: invalid JSON line ({e})") from None


def plot_training(runs: list[Run], path: Path) -> Path | None:
    """Training curves of every run overlaid (one colour per label); None when no run has train/metrics.jsonl."""
    logs = {r.path: [m for m in _read_log(r.path / "train" / "metrics.jsonl") if "step" in m] for r in runs}
    keys = [k for k in TRAIN_KEYS if any(k in m for rows in logs.values() for m in rows)]
    if not keys:
        return None
    colours = {label: f"C{i}" for i, label in enumerate(_groups(runs))}
    fig, axes = _panels(len(keys))
    for ax, key in zip(axes, keys):
        seen = set()
        for r in runs:
            pts = [(m["step"], m[key]) for m in logs[r.path] if isinstance(m.get(key), (int, float))]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, color=colours[r.label], alpha=0.8, label=None if r.label in seen else r.label)
                seen.add(r.label)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def swept_keys(runs: list[Run]) -> list[str]:
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


def plot_sweep(runs: list[Run], path: Path, metric: str = "avg@n") -> Path | None:
    """Metric against each swept coefficient; None when nothing was swept."""
    keys = swept_keys(runs)
    if not keys:
        return None
    benches, _ = table_benches(runs)
    fig, axes = _panels(len(keys) * len(benches), cols=len(benches))
    for idx, (key, bench) in enumerate((k, b) for k in keys for b in benches):
        ax = axes[idx]
        settings = lambda r: r.info.get("settings") or {}  # noqa: E731
        swept = [r for r in runs if settings(r).get(key) is not None]
        xs = sorted({json.dumps(settings(r)[key]) for r in swept}, key=lambda s: sort_key(json.loads(s)))
        series: dict[str, dict[str, list[float]]] = {}
        for r in swept:
            others = ", ".join(f"{k}={settings(r).get(k)}" for k in keys if k != key)
            name = f"{r.info.get('algo', r.label)}" + (f" ({others})" if others else "")
            header, value, _ = metric_value(r.evals[bench], metric)
            series.setdefault(name, {}).setdefault(json.dumps(settings(r).get(key)), []).append(100 * value)
        for i, (name, points) in enumerate(series.items()):
            pos = [xs.index(x) for x in xs if x in points]
            vals = [points[x] for x in xs if x in points]
            err = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals]
            ax.errorbar(pos, [np.mean(v) for v in vals], yerr=err, marker="o", capsize=3, color=f"C{i}", label=name)
        ax.set_xticks(range(len(xs)), [str(json.loads(x)) for x in xs])
        ax.set_title(f"{bench}: {header} vs {key}")
        ax.set_xlabel(key)
        ax.set_ylabel(f"{header} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def write_plots(runs: list[Run], out_dir: str | Path, metric: str = "avg@n") -> list[Path]:
    """Write every applicable plot into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    made = [plot_pass_at_k(runs, out / "pass_at_k.png"), plot_training(runs, out / "training.png"),
            plot_sweep(runs, out / "sweep.png", metric)]
    return [p for p in made if p is not None]
