"""Plots (harness/report/plots/): smoothing and bands, the raw data written beside each figure, PNG + PDF, the token and
time axes, pass@k CI bands."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from harness.report.plots import write_plots
from harness.report.plots.common import band_over_seeds, bootstrap_ci, ema, ema_span
from harness.report.plots.training import run_series
from harness.report.tables import load_runs

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tables" / "sweep"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURE.parent / "make_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def test_ema_band_and_ci():
    assert np.allclose(ema(np.ones(5), 5), 1.0)  # bias-corrected: no pull towards 0 at the start
    y = np.array([0.0, 10.0, 10.0, 10.0])
    a = 2 / 6  # span 5
    want = [0.0, a * 10 / (1 - (1 - a) ** 2), None, None]
    assert ema(y, 5)[0] == 0.0 and ema(y, 5)[1] == pytest.approx(want[1])
    assert np.all(np.diff(ema(y, 5)) > 0) and ema(y, 5)[-1] < 10  # lags the raw values
    assert np.array_equal(ema(y, 1), y)
    assert np.isfinite(ema(np.array([np.nan, 1.0, 2.0]), 3)[1:]).all()
    assert [ema_span(n) for n in (1, 20, 100, 10_000)] == [1, 4, 20, 50]
    curves = np.array([[1.0, 2.0], [3.0, 6.0], [2.0, 1.0]])
    mean, lo, hi = band_over_seeds(curves, "minmax")
    assert mean.tolist() == [2.0, 3.0] and lo.tolist() == [1.0, 1.0] and hi.tolist() == [3.0, 6.0]
    mean, lo, hi = band_over_seeds(curves, "ci95")
    assert lo[0] == pytest.approx(2 - 4.302653 * 1 / np.sqrt(3), abs=1e-5)  # t(0.975, 2) * sd / sqrt(3)
    lo, hi = bootstrap_ci(np.array([0.0] * 50 + [1.0] * 50))
    assert 0.38 < lo < 0.45 and 0.55 < hi < 0.62


def test_run_series_tokens_and_time():
    rows = [{"step": 2, "tokens_per_s": 50.0, "time_generate_s": 2.0, "time_score_s": 1.0, "time_update_s": 3.0,
             "reward_mean": 0.5}, {"step": 1, "tokens_per_s": 10.0, "time_generate_s": 3.0, "time_score_s": 0.0,
                                   "time_update_s": 0.0, "reward_mean": 0.25, "kl": float("nan")}]
    s = run_series(rows)
    assert s["step"].tolist() == [1, 2] and s["tokens"].tolist() == [30, 130]
    assert s["time_min"].tolist() == pytest.approx([3 / 60, 9 / 60]) and s["reward_mean"].tolist() == [0.25, 0.5]
    assert np.isnan(run_series([{"step": 1, "reward_mean": 1.0}])["tokens"]).all()  # not logged: no token axis


def test_write_plots_png_pdf_and_raw_csv(tmp_path):
    for eta in (10, 100):
        for seed in (0, 1, 2):
            fx.write_run(tmp_path / "sw", f"prl_eta{eta}_s{seed}", algo="prl", label=f"prl eta={eta}", seed=seed,
                         counts={"math500": fx.draw_counts(0.3 + eta / 500, eta + seed)},
                         base_counts={"math500": fx.draw_counts(0.3, 7)}, settings={"algo.eta": eta}, steps=12)
    runs, _ = load_runs([tmp_path / "sw"])
    out = tmp_path / "out"
    paths = write_plots(runs, out)
    assert [p.name for p in paths] == ["pass_at_k.png", "training.png", "training_tokens.png", "training_time.png",
                                       "sweep.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    # the raw per-step values, unsmoothed, one row per (run, step)
    with open(out / "training.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 * 12
    log = [json.loads(ln) for ln in (runs[0].path / "train" / "metrics.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["run"] == runs[0].path.name]
    assert [float(r["reward_mean"]) for r in mine] == pytest.approx([m["reward_mean"] for m in log], rel=1e-5)
    assert [int(r["generated_tokens"]) for r in mine] == [100 * s for s in range(1, 13)]  # 100 tok/s x 1 s
    assert mine[0]["label"] == "prl eta=10" and mine[0]["seed"] == "0"
    # pass@k: mean over seeds of summary pass@k inside its 95% CI, on k = 1, 2, 4
    with open(out / "pass_at_k.csv", newline="") as f:
        pk = list(csv.DictReader(f))
    row = next(r for r in pk if r["row"] == "prl eta=100" and r["k"] == "2")
    want = 100 * np.mean([r.evals["math500"].summary["pass@k"]["2"] for r in runs if r.label == "prl eta=100"])
    assert float(row["pass_at_k_pct"]) == pytest.approx(want, abs=1e-3) and row["seeds"] == "3"
    assert float(row["ci95_lo"]) < float(row["pass_at_k_pct"]) < float(row["ci95_hi"])
    assert sorted({int(r["k"]) for r in pk}) == [1, 2, 4] and {r["row"] for r in pk} == {"base", "prl eta=10",
                                                                                         "prl eta=100"}
    sweep = list(csv.DictReader(open(out / "sweep.csv", newline="")))
    assert [(r["value"], r["seeds"]) for r in sweep] == [("10", "3"), ("100", "3")]
    assert float(sweep[0]["min_pct"]) <= float(sweep[0]["mean_pct"]) <= float(sweep[0]["max_pct"])


def test_process_share_and_mismatch_panels_only_where_logged(tmp_path):
    """process_share (PRL, FRPO) and the mismatch metrics get panels and training.csv columns; a run that does not log
    them (GRPO) leaves its cells empty instead of drawing zeros."""
    for algo in ("prl", "grpo"):
        run = fx.write_run(tmp_path / "sw", f"{algo}_s0", algo=algo, label=algo, seed=0,
                           counts={"math500": fx.draw_counts(0.3, 1)}, base_counts={"math500": fx.draw_counts(0.3, 7)},
                           steps=4)
        log = run / "train" / "metrics.jsonl"
        rows = [json.loads(ln) for ln in log.read_text().splitlines()]
        for i, r in enumerate(rows):
            r.update(mismatch_kl=1e-4 * (i + 1), mismatch_logp_abs_max=0.01 * (i + 1))
            if algo == "prl":
                r["process_share"] = 0.05 * (i + 1)
        log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs, _ = load_runs([tmp_path / "sw"])
    out = tmp_path / "out"
    write_plots(runs, out)
    with open(out / "training.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    prl = [r for r in rows if r["label"] == "prl"]
    grpo = [r for r in rows if r["label"] == "grpo"]
    assert [float(r["process_share"]) for r in prl] == pytest.approx([0.05, 0.1, 0.15, 0.2])
    assert [r["process_share"] for r in grpo] == [""] * 4
    assert [float(r["mismatch_logp_abs_max"]) for r in grpo] == pytest.approx([0.01, 0.02, 0.03, 0.04])


def test_a_metric_that_is_zero_everywhere_keeps_its_axis():
    from matplotlib.figure import Figure

    from harness.report.plots.common import zero_axis

    fig = Figure()
    flat, varied, empty, tiny = (fig.add_subplot(141 + i) for i in range(4))
    flat.plot([1, 2, 4], [0.0, 0.0, 0.0])
    zero_axis(flat, [0.0, 0.0, 0.0, float("nan")])
    varied.plot([1, 2], [0.0, 5.0])
    zero_axis(varied, [0.0, 5.0])
    zero_axis(empty, [], top=1.0)
    assert flat.get_ylim() == (0.0, 100.0)                 # not matplotlib's (-0.055, 0.055)
    assert varied.get_ylim()[1] < 10 and empty.get_ylim() == (0.0, 1.0)   # data decide; an empty panel untouched
    tiny.plot([1, 2], [3e-11, 4e-11])
    zero_axis(tiny, [3e-11, 4e-11], top=1.0)
    assert tiny.get_ylim()[1] < 1e-10                     # a tiny real value is not drawn as a flat 0 on [0, 1]
