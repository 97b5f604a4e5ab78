"""What a finished run found, printed when ``harness run`` ends: a small table and the files written.

    benchmark  base avg@8 -> final   base pass@8 -> final
    arith      0.292 -> 0.410        0.650 -> 0.745
    training reward: 0.301 (first 10 steps) -> 0.512 (last 10 steps)

    python -c "from harness.report.summary import run_report; print(run_report('results/prl-arith-s0'))"
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.results import read_jsonl


def _summary(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _cell(base: dict | None, final: dict | None, key) -> str:
    def value(s):
        if s is None:
            return "-"
        v = key(s)
        return f"{v:.3f}" if isinstance(v, (int, float)) else "-"
    return f"{value(base)} -> {value(final)}"


def run_report(run_dir: str | Path) -> str:
    """The end-of-run table: per benchmark base -> final avg@n and pass@n; reward first vs last 10 steps; files."""
    run_dir = Path(run_dir)
    info = _summary(run_dir / "run.json") or {}
    benches = info.get("benches") or sorted(p.name for p in (run_dir / "eval").glob("*") if p.is_dir())
    rows = [("benchmark", "avg@n base -> final", "pass@n base -> final")]
    for b in benches:
        base = _summary(run_dir / "eval_base" / b / "summary.json")
        final = _summary(run_dir / "eval" / b / "summary.json")
        if base is None and final is None:
            continue
        n = (final or base or {}).get("n", "n")
        rows.append((f"{b} (n={n})", _cell(base, final, lambda s: s.get("avg@n")),
                     _cell(base, final, lambda s: s.get("pass@k", {}).get(str(s.get("n"))))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows] if len(rows) > 1 else \
        ["no evaluations (eval.before and eval.after are off)"]
    rewards = [r["reward_mean"] for r in read_jsonl(run_dir / "train" / "metrics.jsonl") if "reward_mean" in r]
    if rewards:
        k = max(1, min(10, len(rewards) // 2))  # the first and last k steps do not overlap
        lines.append(f"training reward: {sum(rewards[:k]) / k:.3f} (first {k} steps) -> "
                     f"{sum(rewards[-k:]) / k:.3f} (last {k} steps), {len(rewards)} steps")
    lines.append(f"run finished: {run_dir}/")
    for rel in ("config.yaml", "run.json", "train/metrics.jsonl", "eval_base/<bench>/summary.json",
                "eval/<bench>/summary.json", "checkpoint/final/"):
        probe = run_dir / rel.replace("<bench>", benches[0] if benches else "")
        if probe.exists():
            lines.append(f"  {rel}")
    return "\n".join(lines)


def print_report(run_dir: str | Path) -> None:
    print(run_report(run_dir), flush=True)
