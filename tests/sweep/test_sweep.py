"""Sweeps (harness/sweep/): grid parsing and validation, run naming, resumability, and one real sweep end to end."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from common.errors import HarnessError
from harness.cli import main
from harness.sweep import MANIFEST, parse_grid, parse_seeds, plan_sweep, run_status, run_sweep

FAST = ["--steps", "1", "--rollout.prompts_per_step", "2", "--rollout.n", "2", "--rollout.max_new_tokens", "16",
        "--eval.limit", "4", "--eval.n", "2", "--bench", "arith"]


# ---------------------------------------------------------------------------------------------------------------------
# parsing and planning


def test_parse_grid_and_seeds():
    assert parse_grid(["algo.eta=10,100,1000", "algo.entropy_coef=0, 0.001"]) == {
        "algo.eta": ["10", "100", "1000"], "algo.entropy_coef": ["0", "0.001"]}
    assert parse_grid([]) == {}
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("7") == [7]


@pytest.mark.parametrize("spec, match", [
    ("algo.eta=", "is empty"), ("algo.eta", "must look like"), ("=1,2", "must look like"),
    ("algo.eta=1,,2", "empty value"), ("algo.eta=1,", "empty value"), ("algo.eta=1,1", "repeats"),
    ("seed=0,1", "--seeds"), ("name=a,b", "--name"), ("results_dir=a,b", "--results-dir"),
])
def test_parse_grid_rejects(spec, match):
    with pytest.raises(HarnessError, match=match):
        parse_grid([spec])


def test_parse_grid_rejects_repeated_key():
    with pytest.raises(HarnessError, match="given twice"):
        parse_grid(["algo.eta=1", "algo.eta=2"])


@pytest.mark.parametrize("text", ["", "a", "0,x", "0,0", "1.5"])
def test_parse_seeds_rejects(text):
    with pytest.raises(HarnessError, match="--seeds"):
        parse_seeds(text)


def test_plan_names_labels_settings_and_order(tmp_path):
    grid = parse_grid(["algo.eta=10,100", "algo.entropy_coef=0,1e-3"])
    plan = plan_sweep(grid, [0, 1], ["algo.name=prl", f"results_dir={tmp_path}", "train.steps=3"])
    assert plan.name == "sweep-prl-eta-entropy_coef" and plan.sweep_dir == tmp_path / plan.name
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # planning writes nothing
    names = [r.name for r in plan.runs]
    assert names == ["prl_eta=10_entropy_coef=0_s0", "prl_eta=10_entropy_coef=1e-3_s0",
                     "prl_eta=100_entropy_coef=0_s0", "prl_eta=100_entropy_coef=1e-3_s0",
                     "prl_eta=10_entropy_coef=0_s1", "prl_eta=10_entropy_coef=1e-3_s1",
                     "prl_eta=100_entropy_coef=0_s1", "prl_eta=100_entropy_coef=1e-3_s1"]
    r = plan.runs[1]
    assert r.label == "prl eta=10 entropy_coef=1e-3" and r.seed == 0
    assert r.settings == {"algo.eta": 10.0, "algo.entropy_coef": 0.001}
    assert json.dumps(r.settings) == '{"algo.eta": 10.0, "algo.entropy_coef": 0.001}'  # typed by the config
    assert r.overrides[-3:] == ["seed=0", f"name={r.name}", f"results_dir={plan.sweep_dir / 'runs'}"]
    assert "log.wandb_group=sweep-prl-eta-entropy_coef" in r.overrides and "train.steps=3" in r.overrides
    assert plan.base_overrides == ["algo.name=prl", "train.steps=3"]  # results_dir is the root, not identity


def test_plan_grid_over_algorithms_and_clashing_keys(tmp_path):
    plan = plan_sweep(parse_grid(["algo.name=prl,grpo", "algo.kl_coef=0,0.01", "train.epochs=1,2"]), [3],
                      [f"results_dir={tmp_path}"], name="cmp")
    assert [r.name for r in plan.runs][:3] == ["prl_kl_coef=0_epochs=1_s3", "prl_kl_coef=0_epochs=2_s3",
                                               "prl_kl_coef=0.01_epochs=1_s3"]
    assert [r.algo for r in plan.runs] == ["prl"] * 4 + ["grpo"] * 4
    assert plan.runs[4].label == "grpo kl_coef=0 epochs=1"
    assert plan.runs[4].settings == {"algo.kl_coef": 0.0, "train.epochs": 1}  # algo.name is run.json "algo"
    # two keys with the same last component keep their full dotted names
    plan = plan_sweep(parse_grid(["rollout.temperature=0.7", "eval.temperature=0.5"]), [0],
                      ["algo.name=grpo", f"results_dir={tmp_path}"], name="t")
    assert plan.runs[0].name == "grpo_rollout.temperature=0.7_eval.temperature=0.5_s0"
    # a value with a character run names may not hold
    plan = plan_sweep(parse_grid(["model.name=org/model-a"]), [0], ["algo.name=grpo", f"results_dir={tmp_path}"],
                      name="m")
    assert plan.runs[0].name == "grpo_name=org-model-a_s0" and plan.runs[0].settings == {"model.name": "org/model-a"}


@pytest.mark.parametrize("args, match", [
    (["--algo", "prl", "--grid", "algo.eta="], "is empty"),
    (["--algo", "prl", "--grid", "algo.eta"], "must look like"),
    (["--algo", "prl", "--grid", "algo.nope=1,2"], "unknown config key 'algo.nope'"),
    (["--algo", "grpo", "--grid", "algo.eta=1,2"], "unknown config key 'algo.eta'"),
    (["--algo", "prl", "--grid", "algo.eta=10,-1"], "algo.eta must be > 0"),
    (["--algo", "prl", "--grid", "algo.eta=abc"], "algo.eta"),
    (["--algo", "prl", "--grid", "algo.name=prl,grpo"], "both set"),
    (["--grid", "algo.eta=10"], "no algorithm given"),
    (["--algo", "prl", "--seeds", "0,x"], "--seeds"),
    (["--algo", "prl", "--seed", "1", "--seeds", "0,1"], "either --seed or --seeds"),
    (["--algo", "prl", "--name", "../x"], "invalid run name"),
    (["--algo", "prl", "--grid", "algo.eta=10", "--algo.eta", "5"], "both set"),
    (["--algo", "prl", "--grid", "algo.eta=10", "--nonsense"], "unrecognized argument"),
    (["--algo", "prl", "--grid", "algo.eta=10", "--bench", "nope"], "unknown benchmark 'nope'"),
    (["--algo", "prl", "--grid", "rollout.engine=hf,bogus"], "unknown rollout engine 'bogus'"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "res"
    assert main(["sweep", *args, "--results-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match in err, err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------------
# resumability (a fake runner that records what it is asked to run)


def _fake_runner(calls: list, fail: set):
    from harness.config import build_config

    def runner(spec: dict, log_path: Path) -> int:
        cfg = build_config(spec["config"], spec["overrides"])
        run_dir = Path(cfg.results_dir) / cfg.run_name
        calls.append((cfg.run_name, bool(spec.get("overwrite") or spec.get("resume"))))
        if spec.get("overwrite"):
            shutil.rmtree(run_dir)
        # fails if an unfinished directory was not redone (overwrite) or continued (resume)
        run_dir.mkdir(parents=True, exist_ok=bool(spec.get("resume")))
        status = "running" if cfg.run_name in fail else "finished"
        (run_dir / "run.json").write_text(json.dumps({"status": status, "label": spec["label"],
                                                      "settings": spec["settings"], "seed": cfg.seed}))
        return 1 if cfg.run_name in fail else 0
    return runner


def _manifest(plan) -> dict:
    return json.loads((plan.sweep_dir / MANIFEST).read_text())


def test_rerun_skips_finished_and_redoes_the_rest(tmp_path):
    def plan(grid="algo.eta=10,100"):
        return plan_sweep(parse_grid([grid]), [0, 1], ["algo.name=prl", f"results_dir={tmp_path}"], name="sw")

    calls, lines = [], []
    p = plan()
    assert run_sweep(p, runner=_fake_runner(calls, {"prl_eta=100_s0"}), echo=lines.append) == 1
    assert calls == [("prl_eta=10_s0", False), ("prl_eta=100_s0", False), ("prl_eta=10_s1", False),
                     ("prl_eta=100_s1", False)]
    m = _manifest(p)
    assert [(r["name"], r["status"]) for r in m["runs"]] == [
        ("prl_eta=10_s0", "finished"), ("prl_eta=100_s0", "failed"), ("prl_eta=10_s1", "finished"),
        ("prl_eta=100_s1", "finished")]
    assert m["grid"] == {"algo.eta": ["10", "100"]} and m["seeds"] == [0, 1]
    assert m["base_overrides"] == ["algo.name=prl"] and m["runs"][1]["exit_code"] == 1
    assert m["runs"][0]["settings"] == {"algo.eta": 10.0} and m["runs"][0]["label"] == "prl eta=10"
    assert "[2/4] prl_eta=100_s0: FAILED (exit 1)" in lines[2]

    # interrupted: one run directory vanished, one left unfinished -> only those two run again
    shutil.rmtree(tmp_path / "sw" / "runs" / "prl_eta=10_s1")
    calls.clear()
    lines.clear()
    assert run_sweep(plan(), runner=_fake_runner(calls, set()), echo=lines.append) == 0
    assert calls == [("prl_eta=100_s0", True), ("prl_eta=10_s1", False)]
    assert all(r["status"] == "finished" for r in _manifest(p)["runs"])
    assert lines[1] == "[1/4] prl_eta=10_s0: already finished, skipped"

    # a different grid under the same name is refused (nothing changes) unless --overwrite
    before = (p.sweep_dir / MANIFEST).read_text()
    with pytest.raises(HarnessError, match=r"different grid \(was algo.eta=10,100, now algo.eta=10,1000\)"):
        run_sweep(plan("algo.eta=10,1000"), runner=_fake_runner(calls, set()), echo=lines.append)
    assert (p.sweep_dir / MANIFEST).read_text() == before
    calls.clear()
    assert run_sweep(plan("algo.eta=10,1000"), overwrite=True, runner=_fake_runner(calls, set()),
                     echo=lines.append) == 0
    assert [c[0] for c in calls] == ["prl_eta=10_s0", "prl_eta=1000_s0", "prl_eta=10_s1", "prl_eta=1000_s1"]
    assert sorted(os.listdir(p.sweep_dir / "runs")) == sorted(c[0] for c in calls)  # old runs are gone


def test_interrupt_marks_the_run_and_propagates(tmp_path):
    p = plan_sweep({}, [0, 1], ["algo.name=grpo", f"results_dir={tmp_path}"], name="sw")
    assert [r.name for r in p.runs] == ["grpo_s0", "grpo_s1"]

    def runner(spec, log_path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(p, runner=runner, echo=lambda s: None)
    assert [r["status"] for r in _manifest(p)["runs"]] == ["interrupted", "pending"]


def test_a_directory_that_is_not_a_sweep_is_not_touched(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "keep.txt").write_text("x")
    p = plan_sweep({}, [0], ["algo.name=grpo", f"results_dir={tmp_path}"], name="sw")
    with pytest.raises(HarnessError, match="is not a sweep"):
        run_sweep(p, runner=_fake_runner([], set()), echo=lambda s: None)
    assert os.listdir(tmp_path / "sw") == ["keep.txt"]


# ---------------------------------------------------------------------------------------------------------------------
# end to end: real runs, each in its own process


@pytest.mark.slow
def test_sweep_end_to_end_and_resume(tmp_path, capsys, tiny_path):
    from harness.report.tables import load_runs

    argv = ["sweep", "--algo", "prl", "--grid", "algo.eta=10,100", "--seeds", "0", "--name", "sw",
            "--results-dir", str(tmp_path), "--wandb", *FAST]
    assert main(argv) == 0, capsys.readouterr().err
    sweep = tmp_path / "sw"
    m = json.loads((sweep / MANIFEST).read_text())
    assert [(r["name"], r["status"]) for r in m["runs"]] == [("prl_eta=10_s0", "finished"),
                                                             ("prl_eta=100_s0", "finished")]
    for eta in (10, 100):
        d = sweep / "runs" / f"prl_eta={eta}_s0"
        info = json.loads((d / "run.json").read_text())
        assert (info["label"], info["settings"], info["status"]) == (f"prl eta={eta}", {"algo.eta": eta}, "finished")
        assert (d / "eval" / "arith" / "summary.json").is_file() and (d / "train" / "metrics.jsonl").is_file()
        assert f"eta: {float(eta)}" in (d / "config.yaml").read_text()
        assert "wandb_group: sw" in (d / "config.yaml").read_text()
        assert list((d / "wandb").glob("offline-run-*/run-*.wandb"))  # offline wandb run inside the run dir
        assert (d / "logs" / "local.log").is_file()
    runs, warnings = load_runs([sweep])  # what `harness table` reads
    assert [r.label for r in runs] == ["prl eta=10", "prl eta=100"] and not warnings

    # simulate a crash in the second run, then rerun the same command: only that run is redone
    first, second = sweep / "runs" / "prl_eta=10_s0", sweep / "runs" / "prl_eta=100_s0"
    info = json.loads((second / "run.json").read_text())
    (second / "run.json").write_text(json.dumps({**info, "status": "running"}))
    shutil.rmtree(second / "eval")
    assert run_status(second) == "unfinished"
    stamp = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[1/2] prl_eta=10_s0: already finished, skipped" in out
    assert "[2/2] prl_eta=100_s0: finished (redone)" in out
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == stamp
    assert json.loads((second / "run.json").read_text())["status"] == "finished"
    assert (second / "eval" / "arith" / "summary.json").is_file()
    assert (second / "logs" / "local.log").read_text().count("attempt ====") == 2
