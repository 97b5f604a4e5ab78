"""Tests of the comparison table (harness/report/tables.py, harness/commands/table.py) and plots (harness/report/plots.py).

Golden files: tests/golden/table.{md,tex,csv}, built from the fixture runs in tests/fixtures/tables/sweep/ (written by
tests/fixtures/tables/make_fixtures.py). After an intended change, regenerate and review the diff::

    HARNESS_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/report/test_tables.py -q
    .venv/bin/python -m pytest tests/report/test_tables.py -q
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import HarnessError
from harness.commands import table as table_cmd
from harness.report.plots import plot_training, write_plots
from harness.report.render import RENDERERS
from harness.report.tables import AVG3, build_table, load_runs

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tables" / "sweep"
GOLDEN = ROOT / "tests" / "golden"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURE.parent / "make_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


@pytest.fixture(scope="module")
def fixture_table():
    runs, warnings = load_runs([FIXTURE])
    return runs, warnings, build_table(runs, baseline="grpo")


def _args(dirs, **kw) -> argparse.Namespace:
    base = dict(dirs=[str(d) for d in dirs], baseline=None, format="md", out=None, metric=None, n_resamples=10_000,
                alpha=0.05, seed=0, no_plots=False)
    return argparse.Namespace(**{**base, **kw})


# ------------------------------------------------------------------------------------------------------------ golden


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_golden_tables(fixture_table, fmt):
    render, name = RENDERERS[fmt]
    text = render(fixture_table[2])
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / name).write_text(text, encoding="utf-8")
    assert text == (GOLDEN / name).read_text(encoding="utf-8")


def test_significance_marks(fixture_table):
    _, warnings, t = fixture_table
    assert t.rows == ["base", "grpo", "prl"] and t.baseline == "grpo"
    assert any("prl_s2" in w for w in warnings)  # the unfinished run of the sweep is skipped
    cmp = {(c.row, c.bench, c.metric): c for c in t.comparisons}
    assert len(cmp) == 8  # (base, prl) x 2 benches x (avg@4, pass@4)
    clear = cmp[("prl", "math500", "avg@4")]
    assert clear.significant and clear.p_holm < 1e-3 and clear.low > 0.2
    null = cmp[("prl", "minerva_math", "avg@4")]
    assert not null.significant and null.p > 0.5 and null.low < 0 < null.high
    md = RENDERERS["md"][0](t)
    assert "| prl | **88.8** ± 3.5† |" in md and "| 53.1 ± 4.4 |" not in md  # minerva cell bold but unmarked
    assert "**53.1** ± 4.4 |" in md


def test_cells_combine_seeds_by_hand(fixture_table):
    _, _, t = fixture_table
    vals = [json.loads((FIXTURE / "runs" / f"grpo_s{s}" / "eval" / "math500" / "summary.json").read_text())["avg@n"]
            for s in (0, 1)]
    cell = t.cells[("grpo", 0)]
    assert (cell.mean, cell.std, cell.n_seeds) == (pytest.approx(statistics.mean(vals), abs=1e-15),
                                                   pytest.approx(statistics.stdev(vals), abs=1e-15), 2)
    assert t.cells[("base", 0)].std is None and t.cells[("base", 0)].comparison.row == "base"
    # the paired difference uses per-problem scores averaged over seeds: its mean equals the difference of means
    prl = t.cells[("prl", 0)]
    assert prl.comparison.diff == pytest.approx(prl.mean - cell.mean, abs=1e-12)


def test_command_writes_all_formats_and_plots(tmp_path, capsys):
    out = tmp_path / "report"
    assert table_cmd.run(_args([FIXTURE], baseline="grpo", out=str(out))) == 0
    captured = capsys.readouterr()
    assert captured.out == (GOLDEN / "table.md").read_text(encoding="utf-8")
    assert "skipping unfinished run" in captured.err
    for name in ("table.md", "table.tex", "table.csv"):
        assert (out / name).read_text(encoding="utf-8") == (GOLDEN / name).read_text(encoding="utf-8")
    for name in ("pass_at_k.png", "training.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / name).stat().st_size > 10_000
    assert not (out / "sweep.png").exists()  # only prl sets algo.eta, to one value: nothing swept


def test_format_and_metric_options(capsys):
    table_cmd.run(_args([FIXTURE / "runs" / "grpo_s0", FIXTURE / "runs" / "prl_s0"], format="csv",
                        metric=["avg@n", "pass@1,pass@2"], n_resamples=500))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("row,bench,metric,value,std,n_seeds,diff,")
    assert [ln.split(",")[2] for ln in lines[1:4]] == ["avg@4", "pass@1", "pass@2"]
    assert len(lines) == 1 + 3 * 2 * 3  # 3 rows x 2 benches x 3 metrics; default baseline: base
    assert all(ln.split(",")[6] == "" for ln in lines[1:7])  # the base row has no comparison


# ------------------------------------------------------------------------------------------------ 3-bench average


def test_three_bench_average(tmp_path, capsys):
    benches = ("math500", "minerva_math", "olympiadbench")
    for label, skill in (("grpo", 0.4), ("prl", 0.6)):
        for seed in (0, 1):
            counts = {b: fx.draw_counts(skill, hash((label, b, seed)) % 1000) for b in benches}
            fx.write_run(tmp_path, f"{label}_s{seed}", algo=label, label=label, seed=seed, counts=counts,
                         base_counts=None)
    runs, _ = load_runs([tmp_path])
    t = build_table(runs, baseline="grpo", n_resamples=500)
    assert t.rows == ["grpo", "prl"]
    assert [(c.bench, c.header) for c in t.columns[-2:]] == [(AVG3, "avg@4"), (AVG3, "pass@4")]
    for row in t.rows:
        per_seed = [statistics.mean(r.evals[b].summary["avg@n"] for b in benches) for r in runs if r.label == row]
        cell = t.cells[(row, len(t.columns) - 2)]
        assert (cell.mean, cell.std) == (pytest.approx(statistics.mean(per_seed), abs=1e-12),
                                         pytest.approx(statistics.stdev(per_seed), abs=1e-12))
        assert cell.comparison is None
    assert len(t.comparisons) == 6


# -------------------------------------------------------------------------------------------------------- errors


def _copy_fixture(tmp_path: Path) -> Path:
    dst = tmp_path / "sweep"
    shutil.copytree(FIXTURE, dst)
    return dst


def _mutate_summary(path: Path, **changes) -> None:
    s = json.loads(path.read_text())
    s.update(changes)
    path.write_text(json.dumps(s))


def test_error_no_shared_benchmark(tmp_path):
    fx.write_run(tmp_path, "a", algo="grpo", label="grpo", seed=0, counts={"math500": [1] * 20}, base_counts=None)
    fx.write_run(tmp_path, "b", algo="prl", label="prl", seed=0, counts={"minerva_math": [1] * 20}, base_counts=None)
    with pytest.raises(HarnessError, match="share no benchmark"):
        table_cmd.run(_args([tmp_path / "a", tmp_path / "b"]))


def test_error_problem_sets_differ(tmp_path):
    fx.write_run(tmp_path, "a", algo="grpo", label="grpo", seed=0, counts={"math500": [1] * 20}, base_counts=None)
    fx.write_run(tmp_path, "b", algo="prl", label="prl", seed=0, counts={"math500": [1] * 19}, base_counts=None)
    with pytest.raises(HarnessError, match="problem sets differ"):
        table_cmd.run(_args([tmp_path]))


def test_error_n_differs(tmp_path):
    fx.write_run(tmp_path, "a", algo="grpo", label="grpo", seed=0, counts={"math500": [1] * 20}, base_counts=None)
    fx.write_run(tmp_path, "b", algo="prl", label="prl", seed=0, counts={"math500": [1] * 20}, base_counts=None, n=8)
    with pytest.raises(HarnessError, match="n differs"):
        table_cmd.run(_args([tmp_path]))


def test_error_unknown_baseline():
    with pytest.raises(HarnessError, match="--baseline 'reinforce' matches no row"):
        table_cmd.run(_args([FIXTURE], baseline="reinforce"))


def test_error_directory_without_runs(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(HarnessError, match="no runs"):
        table_cmd.run(_args([tmp_path / "empty"]))
    with pytest.raises(HarnessError, match="not a directory"):
        table_cmd.run(_args([tmp_path / "missing"]))


def test_error_unfinished_run_named_explicitly():
    with pytest.raises(HarnessError, match="not finished"):
        table_cmd.run(_args([FIXTURE / "runs" / "prl_s2"]))


@pytest.mark.parametrize("damage,match", [
    (lambda e: (e / "summary.json").unlink(), "missing file"),
    (lambda e: (e / "summary.json").write_text("{not json"), "invalid JSON"),
    (lambda e: (e / "summary.json").write_text("[1, 2]"), "expected a JSON object"),
    (lambda e: _mutate_summary(e / "summary.json", **{"avg@n": 0.123}), "samples.jsonl gives"),
    (lambda e: _mutate_summary(e / "summary.json", problem_ids_sha256="0" * 64), "problem_ids_sha256"),
    (lambda e: (e / "samples.jsonl").unlink(), "missing file"),
    (lambda e: open(e / "samples.jsonl", "a").write('{"problem_id": "x"\n'), r"samples.jsonl:81: invalid"),
])
def test_error_damaged_files(tmp_path, damage, match):
    sweep = _copy_fixture(tmp_path)
    damage(sweep / "runs" / "prl_s1" / "eval" / "math500")
    with pytest.raises(HarnessError, match=match):
        table_cmd.run(_args([sweep], n_resamples=100))


def test_error_bad_metric_and_options():
    with pytest.raises(HarnessError, match="--metric"):
        table_cmd.run(_args([FIXTURE], metric=["maj@n"]))
    with pytest.raises(HarnessError, match="no pass@3"):
        table_cmd.run(_args([FIXTURE], metric=["pass@3"]))
    with pytest.raises(HarnessError, match="--alpha"):
        table_cmd.run(_args([FIXTURE], alpha=5))


def test_error_duplicate_label_and_seed(tmp_path):
    sweep = _copy_fixture(tmp_path)
    info = json.loads((sweep / "runs" / "prl_s1" / "run.json").read_text())
    (sweep / "runs" / "prl_s1" / "run.json").write_text(json.dumps({**info, "seed": 0}))
    with pytest.raises(HarnessError, match="same label 'prl' and seed 0"):
        table_cmd.run(_args([sweep]))


# --------------------------------------------------------------------------------------------------------- plots


def test_footnote_flags_rows_with_identical_samples(tmp_path):
    """Issue 11 item 7: a swept coefficient whose rows have byte-identical samples is named in the footnote."""
    counts = {"math500": fx.draw_counts(0.4, 7)}
    for eta in (100, 1000):
        fx.write_run(tmp_path / "sw", f"prl_eta{eta}_s0", algo="prl", label=f"prl eta={eta}", seed=0,
                     counts=counts, base_counts=None, settings={"algo.eta": eta})
    fx.write_run(tmp_path / "sw", "grpo_s0", algo="grpo", label="grpo", seed=0,
                 counts={"math500": fx.draw_counts(0.2, 8)}, base_counts=None, settings={})
    runs, _ = load_runs([tmp_path / "sw"])
    t = build_table(runs, baseline="grpo", n_resamples=200)
    flagged = [n for n in t.notes if "byte-identical" in n]
    assert flagged == ["rows `prl eta=100` and `prl eta=1000` have byte-identical evaluation samples: "
                       "algo.eta (100 vs 1000) changed nothing the evaluation saw"], t.notes
    assert "Rows `prl eta=100` and `prl eta=1000` have byte-identical" in RENDERERS["md"][0](t)


def test_sweep_and_training_plots(tmp_path):
    for eta in (10, 100, 1000):
        for seed in (0, 1):
            fx.write_run(tmp_path / "sw", f"prl_eta{eta}_s{seed}", algo="prl", label=f"prl eta={eta}", seed=seed,
                         counts={"math500": fx.draw_counts(0.3 + eta / 2000, eta + seed)}, base_counts=None,
                         settings={"algo.eta": eta, "algo.kl_coef": 0.0})
    runs, _ = load_runs([tmp_path / "sw"])
    assert [r.info["settings"]["algo.eta"] for r in runs] == [10, 10, 100, 100, 1000, 1000]  # numeric order
    paths = write_plots(runs, tmp_path / "out")
    assert sorted(p.name for p in paths) == ["pass_at_k.png", "sweep.png", "training.png", "training_time.png",
                                             "training_tokens.png"]  # issue 16: x in tokens and time too
    assert all(p.stat().st_size > 10_000 for p in paths)
    (runs[0].path / "train" / "metrics.jsonl").write_text('{"step": 1, "kl": 0.1}\n{"step": 2,,}\n{"step": 3}\n')
    with pytest.raises(HarnessError, match="invalid JSON line"):
        plot_training(runs, tmp_path / "t.png")
    for r in runs:
        (r.path / "train" / "metrics.jsonl").unlink()
    assert plot_training(runs, tmp_path / "t.png") is None and not (tmp_path / "t.png").exists()


# ------------------------------------------------------------------------------------------------------------ CLI


@pytest.mark.skipif(not (ROOT / "harness" / "cli.py").exists(), reason="harness/cli.py not written yet")
def test_cli_end_to_end(tmp_path):
    cmd = [sys.executable, "-m", "harness", "table", str(FIXTURE), "--baseline", "grpo", "--format", "latex"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (GOLDEN / "table.tex").read_text(encoding="utf-8")
    bad = subprocess.run(cmd[:-4] + ["--baseline", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --baseline 'nope' matches no row")


def test_table_formats_are_the_renderers():
    """``harness table --format`` lists its choices without importing the renderers (scipy: ``--help`` stays fast)."""
    from harness.commands.table import FORMATS
    from harness.report.render import RENDERERS

    assert FORMATS == tuple(sorted(RENDERERS))
