"""Rendering a computed :class:`harness.report.tables.Table` as markdown, LaTeX or CSV.

Cells are percentages with 1 decimal; differences are percentage points. A bootstrap_pass cell prints as
"mean (std)", like FRPO's Table 1 (arXiv 2601.10201 v2): the bootstrap mean and the bootstrap std of the evaluation
(with several seeds, the means over seeds of both). The footnote says how cells were computed, what the dagger means
and the table's notes.

    python -m harness table results/mini-repro --format latex
"""

from __future__ import annotations

import csv
import io
import itertools

from harness.report.runs import BASE
from harness.report.tables import AVG3, Table

DAGGER = "\u2020"


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
    if c.boot_std is not None:
        text += f" ({_pct(c.boot_std)})"
    elif c.std is not None:
        text += f"{pm}{_pct(c.std)}"
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
    return " ".join([text] + _boot_notes(t) + [n[0].upper() + n[1:] + "." for n in t.notes])


def _boot_notes(t: Table) -> list[str]:
    """The footnote's sentence on bootstrap_pass cells (none without such a column)."""
    heads = sorted({c.header for c in t.columns if c.metric.startswith("bootstrap_pass@") and c.bench != AVG3})
    if not heads:
        return []
    reps = "/".join(f"{b:,}" for b in t.n_boot)
    return [f"{', '.join(heads)}: mean (std) of FRPO's bootstrap pass@k over {reps} replicates (each problem draws k "
            "of its n samples with replacement; std over the replicates); with several seeds, the mean over seeds of "
            "the bootstrap means (and of the bootstrap stds; the spread over seeds is the CSV's std); tested on the "
            "per-problem expectation 1 - (1 - c/n)^k."]


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
    """One row per (row, bench, metric): fractions in [0, 1] with 6 decimals; comparison fields empty if none;
    ``std`` is over seeds; a last column ``boot_std`` (only in tables with a bootstrap_pass metric) holds the
    mean bootstrap std of a bootstrap_pass cell (empty for the other cells)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    boot = any(c.boot_std is not None for c in t.cells.values())
    w.writerow(["row", "bench", "metric", "value", "std", "n_seeds", "diff", "ci_low", "ci_high", "p", "p_holm",
                "significant"] + ["boot_std"] * boot)
    f6 = "{:.6f}".format
    for row in t.rows:
        for j, col in enumerate(t.columns):
            c = t.cells.get((row, j))
            if c is None:
                continue
            k = c.comparison
            cmp = [f6(k.diff), f6(k.low), f6(k.high), f6(k.p), f6(k.p_holm), str(k.significant).lower()] if k else [
                ""] * 6
            w.writerow([row, col.bench, col.header, f6(c.mean), "" if c.std is None else f6(c.std), c.n_seeds, *cmp]
                       + ["" if c.boot_std is None else f6(c.boot_std)] * boot)
    return buf.getvalue()


RENDERERS = {"md": (render_md, "table.md"), "latex": (render_latex, "table.tex"), "csv": (render_csv, "table.csv")}
