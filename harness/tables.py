"""Paper-style comparison tables built from run directories alone (issue 4, item 3).

Rows: ``base`` (the base model, from ``eval_base/`` of the first run) and one row per distinct ``label`` of
``run.json`` (its seeds combined). Columns: per benchmark (math500, minerva_math, olympiadbench, then others in
first-seen order) avg@n and pass@n from each ``summary.json`` (the metrics are selectable), plus a "3-bench avg" group
when all three paper benchmarks are present (mean of the three, like PRL's ``eval/calc.py``). Cells are percentages:
the mean over seeds, with the sample std over seeds when a row has several. Best value per column in bold.

Significance (``harness.stats``): every non-baseline row is compared with the baseline row per benchmark and metric
by a paired bootstrap over problems on per-problem scores read from ``samples.jsonl`` (avg: c_i/n; pass@k: unbiased
pass@k_i; each problem averaged over seeds first); Holm-Bonferroni over all comparisons of the table; a dagger marks
the cells significant at alpha = 0.05 after Holm. The 3-bench average is not tested. See ``results/README.md``.

Example::

    python -m harness table results/my-sweep --baseline grpo --out results/my-sweep/report
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import HarnessError
from common.jsonl import read_jsonl_strict
from harness.stats import combine_seeds, holm, mean_std, paired_arrays, paired_bootstrap, per_problem_scores

PAPER_BENCHES = ("math500", "minerva_math", "olympiadbench")
AVG3 = "3-bench avg"
BASE = "base"
DAGGER = "\u2020"


@dataclass
class Eval:
    """One ``eval/<bench>/`` or ``eval_base/<bench>/`` directory: its summary and (problem_id, correct) records."""

    path: Path
    summary: dict
    samples: list[dict]

    @property
    def n(self) -> int:
        return int(self.summary["n"])


@dataclass
class Run:
    """One run directory: ``run.json`` plus its loaded evaluations (``base`` empty without ``eval_base/``)."""

    path: Path
    info: dict
    evals: dict[str, Eval]
    base: dict[str, Eval]
    label: str = ""
    seed: object = None


# --------------------------------------------------------------------------------------------------------------------
# loading


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: missing file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise HarnessError(f"{path}: expected a JSON object (got {type(obj).__name__})")
    return obj


def _read_samples(path: Path) -> list[dict]:
    """Strictly read ``samples.jsonl``, keeping only problem_id and correct (a bad line is an error, not dropped)."""
    if not path.is_file():
        raise HarnessError(f"{path}: missing file (needed for the significance tests)")
    out = []
    for i, rec in read_jsonl_strict(path):
        try:
            out.append({"problem_id": str(rec["problem_id"]), "correct": rec["correct"]})
        except KeyError as e:
            raise HarnessError(f"{path}:{i}: invalid sample record (KeyError: {e})") from None
    return out


def _load_eval(d: Path) -> Eval:
    summary = _read_json(d / "summary.json")
    for key in ("n", "avg@n", "pass@k", "problem_ids_sha256"):
        if key not in summary:
            raise HarnessError(f"{d / 'summary.json'}: missing key '{key}'")
    ev = Eval(d, summary, _read_samples(d / "samples.jsonl"))
    ids = sorted({s["problem_id"] for s in ev.samples})
    if hashlib.sha256("\n".join(ids).encode()).hexdigest() != summary["problem_ids_sha256"]:
        raise HarnessError(f"{d}: problem ids of samples.jsonl do not match problem_ids_sha256 of summary.json")
    return ev


def sort_key(v: object) -> tuple:
    """Numbers first (numerically), then everything else as strings; for ordering swept setting values."""
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def _sweep_order(run_dir: Path) -> tuple:
    info = _read_json(run_dir / "run.json")
    settings = info.get("settings") if isinstance(info.get("settings"), dict) else {}
    return (str(info.get("algo")), tuple((k, sort_key(v)) for k, v in sorted(settings.items())),
            sort_key(info.get("seed")), run_dir.name)


def expand_dirs(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Run dirs (with ``run.json``) as given; sweep dirs expanded to their sub-dirs (or ``runs/`` sub-dirs) with one,
    ordered by (algo, settings, seed).

    Returns:
        (unique run dirs in order, warnings about skipped unfinished runs of sweeps).
    """
    runs: list[Path] = []
    warnings: list[str] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise HarnessError(f"{p}: not a directory (expected a run or sweep directory)")
        if (p / "run.json").is_file():
            found, explicit = [p], True
        else:
            subs = [c for base in (p, p / "runs") if base.is_dir() for c in sorted(base.iterdir())]
            found, explicit = sorted((c for c in subs if (c / "run.json").is_file()), key=_sweep_order), False
            if not found:
                raise HarnessError(f"{p}: no runs (no run.json in it, its sub-directories or runs/)")
        for run_dir in found:
            status = _read_json(run_dir / "run.json").get("status", "finished")
            if status != "finished":
                if explicit:
                    raise HarnessError(f"{run_dir}: run is not finished (status '{status}')")
                warnings.append(f"skipping unfinished run {run_dir} (status '{status}')")
            elif run_dir.resolve() not in {r.resolve() for r in runs}:
                runs.append(run_dir)
    if not runs:
        raise HarnessError(f"no finished runs in {', '.join(map(str, paths))}")
    return runs, warnings


def load_run(run_dir: Path) -> Run:
    """Load ``run.json`` and every ``eval/<bench>/`` (required) and ``eval_base/<bench>/`` (optional) of one run."""
    info = _read_json(run_dir / "run.json")
    benches = info.get("benches")
    if benches is None:
        benches = sorted(d.name for d in (run_dir / "eval").glob("*") if d.is_dir())
    if not isinstance(benches, list) or not benches:
        raise HarnessError(f"{run_dir / 'run.json'}: 'benches' must be a non-empty list (got {benches!r})")
    evals = {b: _load_eval(run_dir / "eval" / b) for b in benches}
    base = {b: _load_eval(run_dir / "eval_base" / b) for b in benches if (run_dir / "eval_base" / b).is_dir()}
    label = str(info.get("label") or info.get("algo") or run_dir.name)
    if label == BASE:
        raise HarnessError(f"{run_dir / 'run.json'}: label '{BASE}' is reserved for the base-model row")
    return Run(run_dir, info, evals, base, label, info.get("seed"))


def load_runs(paths: list[str | Path]) -> tuple[list[Run], list[str]]:
    """Expand and load runs; check that they share benchmarks, problem sets and n (else HarnessError)."""
    dirs, warnings = expand_dirs(paths)
    runs = [load_run(d) for d in dirs]
    seen: dict[tuple[str, str], Path] = {}
    for r in runs:
        key = (r.label, repr(r.seed))
        if key in seen:
            raise HarnessError(f"runs {seen[key]} and {r.path} have the same label '{r.label}' and seed {r.seed}")
        seen[key] = r.path
    return runs, warnings


def table_benches(runs: list[Run]) -> tuple[list[str], list[str]]:
    """Benchmarks evaluated by every run (paper order first) and those dropped because some run lacks them."""
    order: list[str] = []
    for r in runs:
        order += [b for b in r.evals if b not in order]
    order = [b for b in PAPER_BENCHES if b in order] + [b for b in order if b not in PAPER_BENCHES]
    shared = [b for b in order if all(b in r.evals for r in runs)]
    if not shared:
        raise HarnessError("the runs share no benchmark: " + "; ".join(f"{r.path.name}: {list(r.evals)}" for r in runs))
    for b in shared:
        evs = [(r.path, r.evals[b]) for r in runs] + [(r.path / "eval_base", r.base[b]) for r in runs if b in r.base]
        (p0, e0) = evs[0]
        for p, e in evs[1:]:
            if e.summary["problem_ids_sha256"] != e0.summary["problem_ids_sha256"]:
                raise HarnessError(f"{b}: problem sets differ between {p0} and {p} (problem_ids_sha256)")
            if e.n != e0.n:
                raise HarnessError(f"{b}: n differs between {p0} (n={e0.n}) and {p} (n={e.n})")
        models = {r.base[b].summary.get("model") for r in runs if b in r.base}
        if len(models) > 1:
            raise HarnessError(f"{b}: the runs' base evaluations are of different models {sorted(map(str, models))}")
    return shared, [b for b in order if b not in shared]


# --------------------------------------------------------------------------------------------------------------------
# building


@dataclass
class Comparison:
    """Row vs baseline on one (bench, metric): paired bootstrap difference (fractions) and Holm-adjusted p."""

    row: str
    bench: str
    metric: str
    diff: float
    low: float
    high: float
    p: float
    p_holm: float = 1.0
    significant: bool = False


@dataclass(frozen=True)
class Column:
    bench: str  # benchmark name or AVG3
    metric: str  # spec: avg@n, pass@n, pass@K
    header: str  # e.g. avg@8


@dataclass
class Cell:
    mean: float
    std: float | None
    n_seeds: int
    comparison: Comparison | None = None


@dataclass
class Table:
    """Rows x columns of cells (a missing cell: that row lacks that benchmark, e.g. no base evaluation)."""

    rows: list[str]
    columns: list[Column]
    cells: dict[tuple[str, int], Cell]
    baseline: str
    comparisons: list[Comparison]
    n_resamples: int
    alpha: float
    seeds: dict[str, int]
    notes: list[str] = field(default_factory=list)


def parse_metrics(specs: list[str]) -> list[str]:
    """Validate metric specs: 'avg@n', 'pass@n' or 'pass@K' (K a positive integer)."""
    out = []
    for s in specs:
        k = s[len("pass@"):] if s.startswith("pass@") else None
        if s != "avg@n" and not (k == "n" or (k and k.isdigit() and int(k) > 0)):
            raise HarnessError(f"--metric must be avg@n, pass@n or pass@K with K a positive integer (got {s!r})")
        if s not in out:
            out.append(s)
    return out


def metric_value(ev: Eval, metric: str) -> tuple[str, float, str]:
    """(column header, summary value, per_problem_scores metric) of one metric spec on one evaluation."""
    if metric == "avg@n":
        return f"avg@{ev.n}", float(ev.summary["avg@n"]), "avg"
    k = ev.n if metric == "pass@n" else int(metric[5:])
    table = ev.summary["pass@k"]
    if str(k) not in table:
        raise HarnessError(f"{ev.path / 'summary.json'}: no pass@{k} (has pass@k for k in {list(table)})")
    return f"pass@{k}", float(table[str(k)]), f"pass@{k}"


def _scores(ev: Eval, metric: str) -> dict[str, float]:
    """Per-problem scores, checked against the summary value (so a stale or garbled summary is caught)."""
    _, value, spec = metric_value(ev, metric)
    scores = per_problem_scores(ev.samples, spec, ev.n)
    recomputed = sum(scores.values()) / len(scores)
    if abs(recomputed - value) > 1e-6:
        raise HarnessError(f"{ev.path}: summary {metric}={value:.6f} but samples.jsonl gives {recomputed:.6f}")
    return scores


def build_table(runs: list[Run], *, baseline: str | None = None, metrics: list[str] | None = None,
                n_resamples: int = 10_000, alpha: float = 0.05, seed: int = 0) -> Table:
    """Compute cells, paired-bootstrap comparisons vs ``baseline`` and their Holm adjustment.

    Args:
        runs: loaded runs (see :func:`load_runs`).
        baseline: label of the reference row; default ``base`` when the runs have a base evaluation, else the first.
        metrics: metric specs (default ["avg@n", "pass@n"]).
        n_resamples: bootstrap resamples per comparison.
        alpha: family-wise error rate for Holm.
        seed: bootstrap seed (the same for every comparison, so the table is reproducible).
    """
    metrics = parse_metrics(metrics or ["avg@n", "pass@n"])
    benches, dropped = table_benches(runs)
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    for g in groups.values():
        g.sort(key=lambda r: sort_key(r.seed))
    base_run = next((r for r in runs if r.base), None)
    evals: dict[str, dict[str, list[Eval]]] = {BASE: {b: [base_run.base[b]] for b in base_run.base}} if base_run else {}
    evals.update({lab: {b: [r.evals[b] for r in g] for b in benches} for lab, g in groups.items()})
    rows = list(evals)
    baseline = baseline or rows[0]
    if baseline not in rows:
        raise HarnessError(f"--baseline {baseline!r} matches no row (rows: {', '.join(rows)})")

    columns: list[Column] = []
    cells: dict[tuple[str, int], Cell] = {}
    per_seed: dict[tuple[str, str, str], list[float]] = {}  # (row, bench, metric) -> value per seed
    for b in benches:
        for m in metrics:
            columns.append(Column(b, m, metric_value(evals[rows[-1]][b][0], m)[0]))
            for row in rows:
                if b in evals[row]:
                    per_seed[(row, b, m)] = [metric_value(ev, m)[1] for ev in evals[row][b]]
                    cells[(row, len(columns) - 1)] = Cell(*mean_std(per_seed[(row, b, m)]), len(evals[row][b]))
    if all(b in benches for b in PAPER_BENCHES):
        for m in metrics:
            heads = {c.header for c in columns if c.metric == m and c.bench in PAPER_BENCHES}
            columns.append(Column(AVG3, m, heads.pop() if len(heads) == 1 else m.split("@")[0]))
            for row in rows:
                if all((row, b, m) in per_seed for b in PAPER_BENCHES):  # same seeds for every bench of a row
                    avg = [sum(v) / 3 for v in zip(*(per_seed[(row, b, m)] for b in PAPER_BENCHES))]
                    cells[(row, len(columns) - 1)] = Cell(*mean_std(avg), len(avg))

    comparisons: list[Comparison] = []
    for row in rows:
        for j, col in enumerate(columns):
            if row == baseline or col.bench == AVG3 or (row, j) not in cells or (baseline, j) not in cells:
                continue
            x, y = paired_arrays(combine_seeds([_scores(e, col.metric) for e in evals[row][col.bench]]),
                                 combine_seeds([_scores(e, col.metric) for e in evals[baseline][col.bench]]))
            res = paired_bootstrap(x, y, n_resamples=n_resamples, seed=seed)
            cells[(row, j)].comparison = Comparison(row, col.bench, col.header, res.difference, res.low, res.high,
                                                    res.pvalue)
            comparisons.append(cells[(row, j)].comparison)
    adjusted, reject = holm([c.p for c in comparisons], alpha)
    for c, p_adj, rej in zip(comparisons, adjusted, reject):
        c.p_holm, c.significant = p_adj, rej
    notes = [f"dropped {b} (not evaluated by every run)" for b in dropped]
    seeds = {row: len(next(iter(evals[row].values()))) for row in rows}
    return Table(rows, columns, cells, baseline, comparisons, n_resamples, alpha, seeds, notes)


# --------------------------------------------------------------------------------------------------------------------
# rendering (cells are percentages with 1 decimal; differences are percentage points)


def _pct(v: float, signed: bool = False) -> str:
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def _fmt_p(p: float, floor: float) -> str:
    """p with 4 decimals; a bootstrap p of 0 means p < 1/B."""
    return f"<{floor:.2g}" if p < floor else f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _best(t: Table) -> set[tuple[str, int]]:
    """Cells holding the best (largest, after rounding) value of their column; ties are all bold."""
    out = set()
    for j in range(len(t.columns)):
        shown = {row: _pct(t.cells[(row, j)].mean) for row in t.rows if (row, j) in t.cells}
        top = max(shown.values(), key=float, default=None)
        out |= {(row, j) for row, s in shown.items() if s == top}
    return out


def _cell(t: Table, row: str, j: int, best: set, bold: str, pm: str, mark: str, missing: str) -> str:
    c = t.cells.get((row, j))
    if c is None:
        return missing
    text = bold.format(_pct(c.mean)) if (row, j) in best else _pct(c.mean)
    text += f"{pm}{_pct(c.std)}" if c.std is not None else ""
    return text + (mark if c.comparison and c.comparison.significant else "")


def _footnote(t: Table) -> str:
    counts = {k for r, k in t.seeds.items() if r != BASE}
    seeds = (f"{counts.pop()} per row" if len(counts) == 1 else ", ".join(f"{r} {k}" for r, k in t.seeds.items()
                                                                          if r != BASE))
    text = f"Values in %; mean ± sample std over seeds where a row has several (seeds: {seeds}). Bold: best per column."
    if t.comparisons:
        text += (f" {DAGGER}: differs from `{t.baseline}` at alpha = {t.alpha:g} after Holm-Bonferroni over "
                 f"{len(t.comparisons)} comparisons (two-sided paired bootstrap over problems, {t.n_resamples:,} "
                 f"resamples, per-problem scores averaged over seeds; {AVG3} not tested).")
    return " ".join([text] + [n[0].upper() + n[1:] + "." for n in t.notes])


def _comparison_rows(t: Table) -> list[list[str]]:
    floor = 1 / t.n_resamples
    return [[c.row, c.bench, c.metric, _pct(c.diff, True), f"[{_pct(c.low, True)}, {_pct(c.high, True)}]",
             _fmt_p(c.p, floor), _fmt_p(c.p_holm, floor), DAGGER if c.significant else ""] for c in t.comparisons]


def render_md(t: Table) -> str:
    """Markdown: the main table, a footnote, and a table of every comparison with its 95% CI and p-values."""
    best = _best(t)
    lines = ["| Model | " + " | ".join(f"{c.bench} {c.header}" for c in t.columns) + " |",
             "|---|" + "---:|" * len(t.columns)]
    for row in t.rows:
        cells = [_cell(t, row, j, best, "**{}**", " ± ", DAGGER, "–") for j in range(len(t.columns))]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", _footnote(t)]
    if t.comparisons:
        lines += ["", f"| Row | Benchmark | Metric | Δ vs {t.baseline} (pts) | 95% CI | p | p (Holm) | Sig. |",
                  "|---|---|---|---:|---:|---:|---:|:-:|"]
        lines += ["| " + " | ".join(r) + " |" for r in _comparison_rows(t)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\~{}", "^": r"\^{}"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def render_latex(t: Table) -> str:
    """LaTeX (booktabs): main tabular with grouped benchmark headers, footnote, and the comparisons tabular."""
    best = _best(t)
    groups = [(b, len(list(g))) for b, g in itertools.groupby(c.bench for c in t.columns)]
    out = ["% Generated by `python -m harness table`; needs \\usepackage{booktabs}.",
           "\\begin{tabular}{l" + "r" * len(t.columns) + "}", "\\toprule",
           " & " + " & ".join(f"\\multicolumn{{{k}}}{{c}}{{{_tex(b)}}}" for b, k in groups) + " \\\\"]
    start, rules = 2, []
    for _, k in groups:
        rules.append(f"\\cmidrule(lr){{{start}-{start + k - 1}}}")
        start += k
    out += ["".join(rules), "Model & " + " & ".join(_tex(c.header) for c in t.columns) + " \\\\", "\\midrule"]
    for row in t.rows:
        cells = [_cell(t, row, j, best, "\\textbf{{{}}}", " $\\pm$ ", "$^\\dagger$", "--")
                 for j in range(len(t.columns))]
        out.append(_tex(row) + " & " + " & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "",
            _tex(_footnote(t)).replace("±", "$\\pm$").replace(DAGGER, "$^\\dagger$").replace("`", "")]
    if t.comparisons:
        out += ["", "\\begin{tabular}{lllrrrrc}", "\\toprule",
                f"Row & Benchmark & Metric & $\\Delta$ vs {_tex(t.baseline)} (pts) & 95\\% CI & $p$ & "
                "$p$ (Holm) & Sig. \\\\", "\\midrule"]
        for r in _comparison_rows(t):
            r[-1] = "$^\\dagger$" if r[-1] else ""
            r[5], r[6] = (x.replace("<", "$<$") for x in r[5:7])
            out.append(" & ".join(_tex(x) if i < 3 else x for i, x in enumerate(r)) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out) + "\n"


def render_csv(t: Table) -> str:
    """One row per (row, bench, metric): fractions in [0, 1] with 6 decimals; comparison fields empty if none."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "bench", "metric", "value", "std", "n_seeds", "diff", "ci_low", "ci_high", "p", "p_holm",
                "significant"])
    f6 = "{:.6f}".format
    for row in t.rows:
        for j, col in enumerate(t.columns):
            c = t.cells.get((row, j))
            if c is None:
                continue
            k = c.comparison
            cmp = [f6(k.diff), f6(k.low), f6(k.high), f6(k.p), f6(k.p_holm), str(k.significant).lower()] if k else [
                ""] * 6
            w.writerow([row, col.bench, col.header, f6(c.mean), "" if c.std is None else f6(c.std), c.n_seeds, *cmp])
    return buf.getvalue()


RENDERERS = {"md": (render_md, "table.md"), "latex": (render_latex, "table.tex"), "csv": (render_csv, "table.csv")}
