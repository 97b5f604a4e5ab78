"""Paper-style comparison tables computed from run directories alone (pure: result files in, a Table out).

Rows: ``base`` (the base model, from ``eval_base/`` of the first run) and one row per distinct ``label`` of
``run.json`` (its seeds combined). Columns: per benchmark (math500, minerva_math, olympiadbench, then others in
first-seen order) avg@n and pass@n from each ``summary.json`` (the metrics are selectable), plus a "3-bench avg" group
when all three paper benchmarks are present (mean of the three, like PRL's ``eval/calc.py``). Cells are percentages:
the mean over seeds, with the sample std over seeds when a row has several. Best value per column in bold.

FRPO's bootstrap pass@k (``bootstrap_pass@n`` / ``bootstrap_pass@K`` with K = n; arXiv 2601.10201 v2, Table 1) is
read from the summary's ``bootstrap_pass@n`` entry: a cell is the mean over seeds of the bootstrap means, with the
mean over seeds of the bootstrap stds beside it (rendered "mean (std)" like the paper's Table 1).

Significance (``harness.stats``): every non-baseline row is compared with the baseline row per benchmark and metric
by a paired bootstrap over problems on per-problem scores read from ``samples.jsonl`` (avg: c_i/n; pass@k: unbiased
pass@k_i; bootstrap_pass@k: its expectation 1 - (1 - c_i/n)^k; each problem averaged over seeds first);
Holm-Bonferroni over all comparisons of the table; a dagger marks the cells significant at alpha = 0.05 after Holm.
The 3-bench average is not tested. See ``results/README.md``.

Rows whose evaluations are byte-identical although their swept settings differ are named in the notes (a
coefficient that changed nothing the evaluation could see). Loading lives in :mod:`harness.report.runs`, rendering
(markdown, LaTeX, CSV) in :mod:`harness.report.render`.

Example::

    python -m harness table results/my-sweep --baseline grpo --out results/my-sweep/report
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from benchmarks import ALL as PAPER_BENCHES
from common.errors import HarnessError
from harness.report.runs import (  # noqa: F401 (re-exported)
    BASE,
    Eval,
    Run,
    expand_dirs,
    load_run,
    load_runs,
    sort_key,
)
from harness.report.scores import (
    BOOT_PREFIX,
    bootstrap_entry,
    bootstrap_tolerance,
    combine_seeds,
    mean_std,
    paired_arrays,
    per_problem_scores,
)
from harness.stats import holm, paired_bootstrap

AVG3 = "3-bench avg"


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
    metric: str  # spec: avg@n, pass@n, pass@K, bootstrap_pass@n, bootstrap_pass@K
    header: str  # e.g. avg@8, bootstrap_pass@16


@dataclass
class Cell:
    mean: float
    std: float | None
    n_seeds: int
    comparison: Comparison | None = None
    boot_std: float | None = None  # bootstrap_pass cells: mean over seeds of the bootstrap stds


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
    n_boot: list[int] = field(default_factory=list)  # bootstrap replicates of the bootstrap_pass cells' summaries


def parse_metrics(specs: list[str]) -> list[str]:
    """Validate metric specs: 'avg@n', 'pass@n', 'pass@K', 'bootstrap_pass@n' or 'bootstrap_pass@K' (K > 0)."""
    out = []
    for s in specs:
        head, _, k = s.partition("@")
        if s != "avg@n" and not (head in ("pass", "bootstrap_pass") and (k == "n" or (k.isdigit() and int(k) > 0))):
            raise HarnessError("--metric must be avg@n, pass@n, pass@K, bootstrap_pass@n or bootstrap_pass@K with K a "
                               f"positive integer (got {s!r})")
        if s not in out:
            out.append(s)
    return out


def metric_value(ev: Eval, metric: str) -> tuple[str, float, str]:
    """(column header, summary value, per_problem_scores metric) of one metric spec on one evaluation."""
    if metric == "avg@n":
        return f"avg@{ev.n}", float(ev.summary["avg@n"]), "avg"
    if metric.startswith(BOOT_PREFIX):
        entry = bootstrap_entry(ev.summary, ev.n, metric, ev.path)
        return f"{BOOT_PREFIX}{entry['k']}", float(entry["mean"]), f"{BOOT_PREFIX}{entry['k']}"
    k = ev.n if metric == "pass@n" else int(metric[5:])
    table = ev.summary["pass@k"]
    if str(k) not in table:
        raise HarnessError(f"{ev.path / 'summary.json'}: no pass@{k} (has pass@k for k in {list(table)})")
    return f"pass@{k}", float(table[str(k)]), f"pass@{k}"


def _scores(ev: Eval, metric: str) -> dict[str, float]:
    """Per-problem scores, checked against the summary value (so a stale or garbled summary is caught).

    A bootstrap_pass mean is random: it is checked within the bootstrap's noise (:func:`bootstrap_tolerance`).
    """
    _, value, spec = metric_value(ev, metric)
    scores = per_problem_scores(ev.samples, spec, ev.n)
    recomputed = sum(scores.values()) / len(scores)
    tolerance = 1e-6
    if spec.startswith(BOOT_PREFIX):
        tolerance = bootstrap_tolerance(bootstrap_entry(ev.summary, ev.n, metric, ev.path), scores, ev.path)
    if abs(recomputed - value) > tolerance:
        raise HarnessError(f"{ev.path}: summary {metric}={value:.6f} but samples.jsonl gives {recomputed:.6f}"
                           + (f" (allowed bootstrap noise {tolerance:.6f})" if tolerance > 1e-6 else ""))
    return scores


def _boot_std(evs: list[Eval], metric: str) -> float | None:
    """Mean over seeds of the bootstrap stds (None for the other metrics)."""
    if not metric.startswith(BOOT_PREFIX):
        return None
    return sum(float(bootstrap_entry(ev.summary, ev.n, metric, ev.path)["std"]) for ev in evs) / len(evs)


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
                    cells[(row, len(columns) - 1)] = Cell(*mean_std(per_seed[(row, b, m)]), len(evals[row][b]),
                                                          boot_std=_boot_std(evals[row][b], m))
    if all(b in benches for b in PAPER_BENCHES):
        _add_avg3(metrics, rows, columns, cells, per_seed)
    comparisons = _compare(rows, columns, cells, evals, baseline, n_resamples, seed)
    adjusted, reject = holm([c.p for c in comparisons], alpha)
    for c, p_adj, rej in zip(comparisons, adjusted, reject):
        c.p_holm, c.significant = p_adj, rej
    notes = [f"dropped {b} (not evaluated by every run)" for b in dropped] + identical_rows(groups, benches)
    seeds = {row: len(next(iter(evals[row].values()))) for row in rows}
    return Table(rows, columns, cells, baseline, comparisons, n_resamples, alpha, seeds, notes,
                 _n_boot(evals, benches, metrics))


def _n_boot(evals: dict[str, dict[str, list[Eval]]], benches: list[str], metrics: list[str]) -> list[int]:
    """The distinct replicate counts behind the table's bootstrap_pass cells."""
    return sorted({int(bootstrap_entry(ev.summary, ev.n, m, ev.path)["n_boot"]) for m in metrics
                   if m.startswith(BOOT_PREFIX) for row in evals.values() for b in benches for ev in row.get(b, [])})


def _add_avg3(metrics, rows, columns: list[Column], cells: dict, per_seed: dict) -> None:
    """The "3-bench avg" columns: per row and seed the mean over the paper's three benchmarks."""
    for m in metrics:
        heads = {c.header for c in columns if c.metric == m and c.bench in PAPER_BENCHES}
        columns.append(Column(AVG3, m, heads.pop() if len(heads) == 1 else m.split("@")[0]))
        for row in rows:
            if all((row, b, m) in per_seed for b in PAPER_BENCHES):  # same seeds for every bench of a row
                avg = [sum(v) / 3 for v in zip(*(per_seed[(row, b, m)] for b in PAPER_BENCHES))]
                cells[(row, len(columns) - 1)] = Cell(*mean_std(avg), len(avg))


def _compare(rows, columns: list[Column], cells: dict, evals: dict, baseline: str, n_resamples: int,
             seed: int) -> list[Comparison]:
    """Paired bootstrap of every row against the baseline per (benchmark, metric) cell; set on the cells."""
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
    return comparisons


def identical_rows(groups: dict[str, list[Run]], benches: list[str]) -> list[str]:
    """Notes naming pairs of rows whose evaluation samples are byte-identical on every benchmark and seed.

    Such rows differ only in settings that changed nothing the evaluation could see (e.g. a PRL ``eta`` so
    large that the process term never flips a sampled token); the note names the settings that differ.
    """
    def digests(g: list[Run]) -> list[tuple[str, ...]]:
        return [tuple(r.evals[b].samples_sha256 for b in benches) for r in g]

    notes = []
    for (la, ga), (lb, gb) in itertools.combinations(groups.items(), 2):
        if digests(ga) != digests(gb):
            continue
        sa, sb = ({"algo": g[0].info.get("algo"), **(g[0].info.get("settings") or {})} for g in (ga, gb))
        swept = [f"{k} ({sa.get(k)!r} vs {sb.get(k)!r})" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
        what = ", ".join(swept) if swept else "their labels"
        notes.append(f"rows `{la}` and `{lb}` have byte-identical evaluation samples: {what} changed nothing "
                     "the evaluation saw")
    return notes
