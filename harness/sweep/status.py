"""``harness sweep --status NAME``: one line per run with its state, the step reached and the last metrics.

    python -m harness sweep --status prl-eta            # results/prl-eta/sweep.json
    python -m harness sweep --status /scratch/results/prl-eta

Read-only: the manifest is not rewritten. The state comes from the run directory and what is running it now
(:func:`harness.sweep.manifest.live_states`), so it is current even when the sweep's own command has exited (SLURM).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from common.errors import HarnessError
from harness.results import read_jsonl, validate_run_name
from harness.sweep.manifest import LOGS, MANIFEST, live_states, read_manifest, run_status, slurm_states

METRICS = (("reward_mean", "reward"), ("kl", "kl"), ("response_len", "len"))


def find_sweep(name: str, results_dir: str | None) -> Path:
    """A sweep directory from ``--status NAME``: a path to one, else ``<results dir>/NAME``."""
    path = Path(name)
    if (path / MANIFEST).is_file():
        return path
    candidate = Path(results_dir or "results") / validate_run_name(path.name if path.name else name)
    if (candidate / MANIFEST).is_file():
        return candidate
    raise HarnessError(f"--status {name!r}: no sweep there ({path / MANIFEST} and {candidate / MANIFEST} do not exist)")


def _steps(run_dir: Path) -> int | None:

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        return int(cfg["train"]["steps"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _fmt(v) -> str:
    if not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g}"


def _evals(run_dir: Path) -> str:
    out = []
    for s in sorted((run_dir / "eval").glob("*/summary.json")):
        try:
            summary = json.loads(s.read_text(encoding="utf-8"))
            out.append(f"{s.parent.name} {100 * summary['avg@n']:.1f}%")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return ", ".join(out) or "-"


def state_of(entry: dict, run_dir: Path, live: dict[str, str]) -> str:
    """``finished``, a live state (``running (pid N)``, ``PENDING``, ...), else what the last attempt left:
    ``failed (exit 1)``, ``interrupted``, ``pending`` (never started) or ``missing`` (started, directory gone)."""
    status = run_status(run_dir)
    if status == "finished":
        return "finished"
    if entry["name"] in live:
        return live[entry["name"]]
    last = entry.get("status", "pending")
    if last in ("failed", "submitted", "running"):
        detail = entry.get("job_state") or (f"exit {entry['exit_code']}" if entry.get("exit_code") is not None
                                            else "")
        return "failed" + (f" ({detail})" if detail else "")
    if last == "interrupted":
        return "interrupted"
    return "missing" if entry.get("attempts") and status == "absent" else "pending"


def status_rows(sweep_dir: Path) -> list[dict]:
    """One row per manifest entry: run, state, job, step, last metrics, eval avg@n, logs."""
    manifest = read_manifest(sweep_dir)
    entries = [e for e in manifest["runs"] if isinstance(e, dict) and "name" in e]
    live = live_states(sweep_dir, [e for e in entries if run_status(sweep_dir / "runs" / e["name"]) != "finished"])
    ended = [e for e in entries if e["name"] not in live and e.get("launcher") == "slurm" and e.get("job_id")
             and e.get("status") in ("submitted", "running")]
    states = slurm_states([e["job_id"] for e in ended])  # how the jobs that are no longer live ended
    for e in ended:
        e["job_state"] = states.get(e["job_id"]) if states.get(e["job_id"]) != "UNKNOWN" else e.get("job_state")
    rows = []
    for e in entries:
        run_dir = sweep_dir / "runs" / e["name"]
        try:
            metrics = [m for m in read_jsonl(run_dir / "train" / "metrics.jsonl", repair=True) if "step" in m]
        except (OSError, ValueError):
            metrics = []
        last = metrics[-1] if metrics else {}
        steps = _steps(run_dir)
        step = "-" if not last else f"{last['step']}" + (f"/{steps}" if steps else "")
        row = {"run": e["name"], "state": state_of(e, run_dir, live),
               "job": f"{e.get('launcher') or '-'} {e.get('job_id') or ''}".strip(), "step": step}
        row.update({short: _fmt(last.get(key)) for key, short in METRICS})
        row["eval avg@n"] = _evals(run_dir) if row["state"] == "finished" else "-"
        row["logs"] = str(run_dir / LOGS) if (run_dir / LOGS).is_dir() else "-"
        rows.append(row)
    return rows


def render_status(sweep_dir: Path) -> str:
    """The status table as aligned text (a Markdown table), plus a count per state."""
    rows = status_rows(sweep_dir)
    if not rows:
        return f"sweep {sweep_dir}: no runs\n"
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    line = lambda vals: "| " + " | ".join(v.ljust(width[c]) for c, v in zip(cols, vals)) + " |"  # noqa: E731
    out = [line(cols), "|" + "|".join("-" * (width[c] + 2) for c in cols) + "|"]
    out += [line([r[c] for c in cols]) for r in rows]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"].split(" (")[0]] = counts.get(r["state"].split(" (")[0], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"sweep {sweep_dir.name}: {len(rows)} runs: {summary}\n" + "\n".join(out) + "\n"
