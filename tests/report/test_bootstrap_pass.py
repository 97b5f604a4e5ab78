"""FRPO's bootstrap pass@k (arXiv 2601.10201 v2, Table 1; the FRPO notes §4.7 and test T9), end to end:
harness.metrics.bootstrap_pass_at_k / expected_bootstrap_pass, the summaries' ``bootstrap_pass@n`` entry, and
``harness table --metric bootstrap_pass@n|K`` (cells "mean (std)", significance on the per-problem expectation).

    .venv/bin/python -m pytest tests/report/test_bootstrap_pass.py -q
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

import harness.metrics as metrics
from benchmarks.grading import Grader
from common.errors import HarnessError
from harness.commands import table as table_cmd
from harness.eval.evaluate import evaluate
from harness.metrics import bootstrap_pass_at_k, bootstrap_summary, expected_bootstrap_pass, summarize
from harness.report.render import RENDERERS
from harness.report.scores import bootstrap_noise_bound, per_problem_scores
from harness.report.tables import AVG3, build_table, load_runs, parse_metrics

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tables" / "sweep"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fx = _load("make_fixtures", FIXTURE.parent / "make_fixtures.py")
te = _load("test_evaluate_helpers", ROOT / "tests" / "eval" / "test_evaluate.py")

AIME24 = [4, 3, 1, 1, 1] + [0] * 25   # FRPO notes T9: Qwen3-1.7B-Base on AIME24 (10 of 480 correct)
AIME25 = [2, 1, 1] + [0] * 27         # and on AIME25 (4 of 480)


def matrix(counts: list[int], n: int = 16) -> list[list[bool]]:
    """Problem i: samples 0..c_i-1 correct."""
    return [[j < c for j in range(n)] for c in counts]


# ------------------------------------------------------------------------------------------- (a) the T9 numbers


@pytest.mark.parametrize("c,expected", [(0, 0.0), (1, 0.643926), (2, 0.881933), (3, 0.963928), (4, 0.989977),
                                        (5, 0.997509), (6, 0.999458), (7, 0.999900), (10, 1.0)])
def test_expectation_matches_t9_table(c, expected):
    assert expected_bootstrap_pass(16, c, 16) == pytest.approx(expected, abs=5e-7)


@pytest.mark.parametrize("counts,mean,std", [(AIME24, 0.1295, 0.0285), (AIME25, 0.0723, 0.0250)])
def test_bootstrap_reproduces_frpo_table1(counts, mean, std):
    p = [expected_bootstrap_pass(16, c, 16) for c in counts]
    analytic_mean, analytic_std = sum(p) / 30, math.sqrt(sum(q * (1 - q) for q in p)) / 30
    assert (analytic_mean, analytic_std) == (pytest.approx(mean, abs=5e-5), pytest.approx(std, abs=5e-5))
    got_mean, got_std = bootstrap_pass_at_k(matrix(counts), 16)
    assert abs(got_mean - analytic_mean) < 3 * analytic_std / math.sqrt(1000)   # within 3 standard errors
    assert abs(got_std - analytic_std) < 0.003                                   # 2.5-3.2 / 2.2-2.8 points
    assert got_mean < sum(c > 0 for c in counts) / 30                            # below 16.67 / 10.00


# ------------------------------------------------------------------------------------- (b) all-or-nothing, k = n


@pytest.mark.parametrize("k", [1, 4, 16])
def test_all_or_nothing_problems_are_deterministic(k):
    mean, std = bootstrap_pass_at_k(matrix([16, 0, 16, 0, 0]), k, n_boot=200, seed=3)
    assert (mean, std) == (pytest.approx(0.4, abs=1e-12), pytest.approx(0.0, abs=1e-12))
    assert bootstrap_pass_at_k(np.ones((3, 4), dtype=bool), k) == (1.0, 0.0)
    assert bootstrap_pass_at_k(np.zeros((3, 4), dtype=bool), k) == (0.0, 0.0)


def test_one_correct_sample_at_k_equals_n():
    """1 of n correct: a problem passes with probability 1 - (1 - 1/n)^n, over many replicates."""
    mean, std = bootstrap_pass_at_k(matrix([1], 8), 8, n_boot=20_000, seed=1)
    p = expected_bootstrap_pass(8, 1, 8)
    assert abs(mean - p) < 4 * math.sqrt(p * (1 - p) / 20_000) and std == pytest.approx(math.sqrt(p * (1 - p)), 0.01)


# -------------------------------------------------------------------------------------------- (c) reproducibility


def test_seed_reproducibility_and_invariances(monkeypatch):
    rng = np.random.default_rng(7)
    correct = rng.random((50, 16)) < 0.2                                             # [P, n]
    ref = bootstrap_pass_at_k(correct, 16, seed=5)
    assert bootstrap_pass_at_k(correct, 16, seed=5) == ref
    assert bootstrap_pass_at_k(correct.tolist(), 16, seed=5) == ref                  # lists or an array
    assert bootstrap_pass_at_k(np.sort(correct, axis=1), 16, seed=5) == ref          # only the counts matter
    assert bootstrap_pass_at_k(correct, 16, seed=6) != ref
    monkeypatch.setattr(metrics, "_BOOT_CHUNK", 100)                                  # many small chunks
    assert bootstrap_pass_at_k(correct, 16, seed=5) == ref


def test_summarize_entry_is_order_independent():
    samples = {f"p{i}": [{"correct": j < c, "extracted": None} for j in range(4)] for i, c in enumerate([1, 0, 3, 2])}
    entry = summarize(samples, 4)["bootstrap_pass@n"]
    assert set(entry) == {"k", "mean", "std", "expected", "n_boot", "seed"}
    assert (entry["k"], entry["n_boot"], entry["seed"]) == (4, 1000, 0)
    assert entry["expected"] == pytest.approx(sum(expected_bootstrap_pass(4, c, 4) for c in [1, 0, 3, 2]) / 4)
    shuffled = {pid: list(reversed(samples[pid])) for pid in ["p3", "p1", "p0", "p2"]}
    assert summarize(shuffled, 4)["bootstrap_pass@n"] == entry


@pytest.mark.parametrize("correct,k,n_boot,match", [
    ([], 4, 10, "problems x n"), ([[True, False], [True]], 2, 10, "problems x n"), ([[]], 1, 10, "problems x n"),
    ([[1, 0]], 2, 10, "booleans"), ([[True]], 0, 10, "k must be"), ([[True]], 1, 0, "n_boot must be"),
])
def test_rejects_invalid(correct, k, n_boot, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_pass_at_k(correct, k, n_boot)
    with pytest.raises(ValueError):
        expected_bootstrap_pass(4, 5, 4)


def test_noise_bound_covers_the_bootstrap():
    p = [expected_bootstrap_pass(16, c, 16) for c in AIME24]
    bound = bootstrap_noise_bound(p, 1000)
    se = math.sqrt(sum(q * (1 - q) for q in p)) / 30 / math.sqrt(1000)
    assert 6 * se < bound < 8 * se
    assert bootstrap_noise_bound([0.0, 1.0], 1000) == 0.0
    worst = max(abs(bootstrap_pass_at_k(matrix(AIME24), 16, seed=s)[0] - sum(p) / 30) for s in range(30))
    assert worst < bound / 2


# ----------------------------------------------------------------------------------------- (d) the evaluation


def test_evaluation_summary_has_the_entry(tmp_path):
    def answers(prompt, j):   # correct counts per problem: p0 2, p1 1, p2 1, p3 0, p4 1 (of 4)
        i = int(prompt.split()[1].split("+")[0])
        return [i if i % 2 == 0 else 99, i if i < 2 else 98, 99, None][j]
    with Grader() as g:
        s = evaluate(te.ScriptedEngine(answers), te.PlainTok(), {"arith": te.arith_like(5)}, tmp_path,
                     te.eval_cfg(n=4, max_new_tokens=8), grader=g)["arith"]
    entry = s["bootstrap_pass@n"]
    assert json.loads((tmp_path / "arith" / "summary.json").read_text())["bootstrap_pass@n"] == entry
    expected = (1 - 0.5 ** 4 + 3 * (1 - 0.75 ** 4)) / 5
    assert (entry["k"], entry["n_boot"], entry["seed"]) == (4, 1000, 0)
    assert entry["expected"] == pytest.approx(expected, abs=1e-12) and entry["expected"] < s["pass@k"]["4"]
    assert abs(entry["mean"] - expected) < bootstrap_noise_bound([0.9375, 0.68359375, 0.68359375, 0, 0.68359375],
                                                                 1000)
    assert entry == bootstrap_summary(matrix([2, 1, 1, 0, 1], 4), 4)


# ---------------------------------------------------------------------------------------------- (e) the table


def _args(dirs, **kw):
    import argparse
    base = dict(dirs=[str(d) for d in dirs], baseline=None, format="md", out=None, metric=None, n_resamples=2_000,
                alpha=0.05, seed=0, no_plots=True)
    return argparse.Namespace(**{**base, **kw})


def _summary(run: str, bench: str, base: bool = False) -> dict:
    return json.loads((FIXTURE / "runs" / run / ("eval_base" if base else "eval") / bench / "summary.json").read_text())


def test_table_cells_print_mean_and_bootstrap_std():
    runs, _ = load_runs([FIXTURE])
    t = build_table(runs, baseline="grpo", metrics=["bootstrap_pass@n"], n_resamples=2_000)
    assert [(c.bench, c.header) for c in t.columns] == [("math500", "bootstrap_pass@4"),
                                                        ("minerva_math", "bootstrap_pass@4")]
    entries = [_summary(f"prl_s{s}", "minerva_math")["bootstrap_pass@n"] for s in (0, 1)]
    cell = t.cells[("prl", 1)]
    assert cell.mean == pytest.approx(statistics.mean(e["mean"] for e in entries), abs=1e-15)
    assert cell.boot_std == pytest.approx(statistics.mean(e["std"] for e in entries), abs=1e-15)
    assert cell.std == pytest.approx(statistics.stdev(e["mean"] for e in entries), abs=1e-15)   # kept for the CSV
    md = RENDERERS["md"][0](t)
    assert f"| {100 * cell.mean:.1f} ({100 * cell.boot_std:.1f}) |" in md.replace("**", "")
    assert "±" not in md.split("\n\n")[0]                             # no seed std in a bootstrap cell
    assert "mean (std) of FRPO's bootstrap pass@k over 1,000 replicates" in md
    base = _summary("grpo_s0", "math500", base=True)["bootstrap_pass@n"]
    assert f"| base | {100 * base['mean']:.1f} ({100 * base['std']:.1f})" in md
    # significance on the per-problem expectation: the paired difference is the difference of the expectations
    cmp = t.cells[("prl", 0)].comparison
    exp = {r: statistics.mean(_summary(f"{r}_s{s}", "math500")["bootstrap_pass@n"]["expected"] for s in (0, 1))
           for r in ("prl", "grpo")}
    assert cmp.metric == "bootstrap_pass@4" and cmp.diff == pytest.approx(exp["prl"] - exp["grpo"], abs=1e-12)
    csv = RENDERERS["csv"][0](t).splitlines()
    assert csv[0].endswith(",significant,boot_std") and all(len(x.split(",")) == 13 for x in csv)
    assert "(" in RENDERERS["latex"][0](t).split("\\midrule")[1]


def test_table_command_accepts_both_spellings(capsys):
    assert table_cmd.run(_args([FIXTURE], metric=["bootstrap_pass@n,bootstrap_pass@4"], format="csv")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {ln.split(",")[2] for ln in lines[1:]} == {"bootstrap_pass@4"}
    assert len(lines) == 1 + 3 * 2 * 2   # two specs, one meaning (like pass@n and pass@4): a column each
    assert parse_metrics(["bootstrap_pass@16", "pass@n"]) == ["bootstrap_pass@16", "pass@n"]
    with pytest.raises(HarnessError, match="bootstrap_pass@n or bootstrap_pass@K"):
        parse_metrics(["bootstrap_pass@x"])
    with pytest.raises(HarnessError, match=r"no bootstrap_pass@3 \(it stores bootstrap_pass@4: k = n only\)"):
        table_cmd.run(_args([FIXTURE], metric=["bootstrap_pass@3"]))


def _edit_entry(path: Path, **changes) -> None:
    s = json.loads(path.read_text())
    if changes.pop("drop", False):
        del s["bootstrap_pass@n"]
    s.get("bootstrap_pass@n", {}).update(changes)
    path.write_text(json.dumps(s))


def test_old_summaries_load_and_a_bootstrap_table_says_how_to_fix(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep)
    _edit_entry(sweep / "runs" / "prl_s1" / "eval" / "math500" / "summary.json", drop=True)
    assert table_cmd.run(_args([sweep])) == 0 and "| prl |" in capsys.readouterr().out   # avg@n, pass@n still fine
    with pytest.raises(HarnessError, match=r"prl_s1/eval/math500/summary.json: no 'bootstrap_pass@n' .*"
                                           r"`python scripts/regrade.py .*prl_s1/eval`"):
        table_cmd.run(_args([sweep], metric=["bootstrap_pass@n"]))


@pytest.mark.parametrize("changes,ok", [
    ({"mean_shift": 0.001}, True),                 # within the bootstrap's noise: accepted
    ({"mean_shift": 0.2}, False),                  # far off: refused
    ({"expected_shift": 0.01}, False),             # a stale expectation: refused
    ({"std": "wide"}, False),                      # garbled
])
def test_summary_checked_within_bootstrap_noise(tmp_path, changes, ok):
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep)
    path = sweep / "runs" / "prl_s1" / "eval" / "minerva_math" / "summary.json"
    entry = json.loads(path.read_text())["bootstrap_pass@n"]
    _edit_entry(path, **{k.removesuffix("_shift"): entry[k.removesuffix("_shift")] + v if k.endswith("_shift") else v
                         for k, v in changes.items()})
    if ok:
        assert table_cmd.run(_args([sweep], metric=["bootstrap_pass@n"], n_resamples=200)) == 0
    else:
        with pytest.raises(HarnessError, match="samples.jsonl gives|must hold the numbers"):
            table_cmd.run(_args([sweep], metric=["bootstrap_pass@n"], n_resamples=200))


def test_per_problem_scores_are_the_expectation():
    recs = [{"problem_id": p, "correct": j < c} for p, c in (("a", 1), ("b", 0), ("c", 16)) for j in range(16)]
    assert per_problem_scores(recs, "bootstrap_pass@16", 16) == {"a": pytest.approx(0.643926, abs=5e-7), "b": 0.0,
                                                                  "c": 1.0}
    assert per_problem_scores(recs, "bootstrap_pass@n", 16)["a"] == pytest.approx(0.643926, abs=5e-7)
    with pytest.raises(HarnessError, match="bootstrap_pass@k"):
        per_problem_scores(recs, "bootstrap_pass@17", 16)


def test_frpo_table1_layout(tmp_path):
    """Rows = methods, columns = benchmarks, one metric: bootstrap_pass@16 as "mean (std)", like FRPO's Table 1."""
    base = {"aime24": AIME24, "aime25": AIME25}
    for label, extra in (("grpo", 3), ("frpo", 5)):
        counts = {b: [min(16, c + extra) if i < 12 else 0 for i, c in enumerate(cs)] for b, cs in base.items()}
        fx.write_run(tmp_path, f"{label}_s0", algo=label, label=label, seed=0, counts=counts, base_counts=base, n=16)
    runs, _ = load_runs([tmp_path])
    t = build_table(runs, metrics=["bootstrap_pass@16"], n_resamples=1_000)
    assert t.rows == ["base", "frpo", "grpo"] and [c.bench for c in t.columns] == ["aime24", "aime25"]
    md = RENDERERS["md"][0](t).splitlines()
    assert md[0] == "| Model | aime24 bootstrap_pass@16 | aime25 bootstrap_pass@16 |"
    b24, b25 = (json.loads((tmp_path / "grpo_s0" / "eval_base" / b / "summary.json").read_text())["bootstrap_pass@n"]
                for b in ("aime24", "aime25"))
    assert md[2] == f"| base | {100 * b24['mean']:.1f} ({100 * b24['std']:.1f}) | " \
                    f"{100 * b25['mean']:.1f} ({100 * b25['std']:.1f}) |"
    assert abs(b24["mean"] - 0.1295) < 0.003 and abs(b25["mean"] - 0.0723) < 0.003
    assert md[3].startswith("| frpo | **") and "(" in md[4]
    assert all(c.comparison.significant for (row, _), c in t.cells.items() if row != "base")


def test_three_bench_average_of_a_bootstrap_metric(tmp_path):
    benches = ("math500", "minerva_math", "olympiadbench")
    for label, skill in (("grpo", 0.4), ("prl", 0.6)):
        counts = {b: fx.draw_counts(skill, 10 * i + len(label)) for i, b in enumerate(benches)}
        fx.write_run(tmp_path, f"{label}_s0", algo=label, label=label, seed=0, counts=counts, base_counts=None)
    runs, _ = load_runs([tmp_path])
    t = build_table(runs, baseline="grpo", metrics=["bootstrap_pass@n"], n_resamples=200)
    assert (t.columns[-1].bench, t.columns[-1].header) == (AVG3, "bootstrap_pass@4")
    cell = t.cells[("prl", len(t.columns) - 1)]
    assert cell.boot_std is None and cell.mean == pytest.approx(
        statistics.mean(r.evals[b].summary["bootstrap_pass@n"]["mean"] for r in runs if r.label == "prl"
                        for b in benches), abs=1e-12)
