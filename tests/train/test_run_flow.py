"""``harness run`` as a whole (issues 11 and 14): the shared base evaluation, the end-of-run table, the per-step
ablation diagnostics, and the layering of the packages."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from harness.config import build_config
from harness.train.flow import run

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["rollout.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=24", "eval.limit=12", "eval.n=2",
         "eval.batch_size=4", "log.progress=false"]


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_base_evaluation_is_shared_between_runs(tmp_path, tiny_path, monkeypatch, capsys):
    """Issue 11 item 3: a second run of the same base model and eval settings copies the base evaluation;
    another seed (other samples) evaluates again; the run ends with its table (item 4)."""
    from harness.eval import base_cache
    from harness.train import flow as train

    monkeypatch.setattr(base_cache, "cache_root", lambda: tmp_path / "cache")
    calls = []
    real = train._evaluate

    def counting(run_, engine, benches, out_dir, grader):
        calls.append((run_.cfg.run_name, out_dir.name))
        return real(run_, engine, benches, out_dir, grader)

    monkeypatch.setattr(train, "_evaluate", counting)
    cfgs = {name: build_config({}, ["algo.name=grpo", "train.steps=1", f"results_dir={tmp_path}", f"name={name}",
                                    f"seed={seed}", *SMALL])
            for name, seed in (("a", 0), ("b", 0), ("c", 1))}
    dirs = {name: run(cfg) for name, cfg in cfgs.items()}
    from harness.report.summary import print_report
    print_report(dirs["c"])
    assert calls == [("a", "eval_base"), ("a", "eval"), ("b", "eval"), ("c", "eval_base"), ("c", "eval")]
    for f in ("samples.jsonl", "summary.json"):
        assert (dirs["a"] / "eval_base" / "arith" / f).read_bytes() == (dirs["b"] / "eval_base" / "arith" / f).read_bytes()
    assert len(list((tmp_path / "cache").iterdir())) == 2          # one key per (model, settings incl. seed)
    out = capsys.readouterr().out
    summary = json.loads((dirs["c"] / "eval" / "arith" / "summary.json").read_text())
    base = json.loads((dirs["c"] / "eval_base" / "arith" / "summary.json").read_text())
    assert f"arith (n=2)  {base['avg@n']:.3f} -> {summary['avg@n']:.3f}" in out
    assert f"{base['pass@k']['2']:.3f} -> {summary['pass@k']['2']:.3f}" in out
    reward = _metrics(dirs["c"])[0]["reward_mean"]
    assert f"training reward: {reward:.3f} (first 1 steps) -> {reward:.3f} (last 1 steps), 1 steps" in out
    assert f"run finished: {dirs['c']}/" in out and "  train/metrics.jsonl" in out


@pytest.mark.slow
def test_per_benchmark_limits_evaluate_and_cache_each_benchmark_apart(tmp_path, tiny_path, monkeypatch):
    """``eval.bench_limit``: each benchmark is evaluated on its own number of problems, and the shared base
    evaluation is keyed per benchmark by that number, so a run that changes one benchmark's limit reuses the
    other's base evaluation and evaluates the changed one again."""
    from harness.eval import base_cache
    from harness.train import flow as train

    monkeypatch.setattr(base_cache, "cache_root", lambda: tmp_path / "cache")
    calls = []
    real = train._evaluate
    monkeypatch.setattr(train, "_evaluate", lambda run_, engine, benches, out_dir, grader: (
        calls.append((run_.cfg.run_name, out_dir.name, list(benches))), real(run_, engine, benches, out_dir, grader)))
    dirs = {}
    for name, word_limit in (("a", 3), ("b", 5)):
        cfg = build_config({}, ["algo.name=grpo", "train.steps=1", f"results_dir={tmp_path}", f"name={name}",
                                "data.bench=arith,arith_word", f"eval.bench_limit.arith_word={word_limit}", *SMALL])
        dirs[name] = run(cfg)
    assert calls == [("a", "eval_base", ["arith", "arith_word"]), ("a", "eval", ["arith", "arith_word"]),
                     ("b", "eval_base", ["arith_word"]), ("b", "eval", ["arith", "arith_word"])]
    for name, word_limit in (("a", 3), ("b", 5)):
        for phase in ("eval_base", "eval"):
            for bench, limit in (("arith", 12), ("arith_word", word_limit)):
                rows = (dirs[name] / phase / bench / "samples.jsonl").read_text().splitlines()
                assert len(rows) == limit * 2, (name, phase, bench)             # eval.n = 2
                summary = json.loads((dirs[name] / phase / bench / "summary.json").read_text())
                assert summary["settings"]["limit"] == limit


@pytest.mark.slow
def test_process_and_entropy_shares_are_logged(tmp_path, tiny_path):
    """Issue 11 item 7: PRL's process share is 0 while the policy equals the reference and then scales with 1/eta
    (step 1 is the same for both etas, so step 2 sees the same samples); the entropy share is 0 without the bonus."""
    shares = {}
    for eta in (0.01, 1e6):
        cfg = build_config({}, ["algo.name=prl", f"algo.eta={eta}", "train.steps=2", f"results_dir={tmp_path}",
                                f"name=prl{eta}", "eval.before=false", "eval.after=false", *SMALL])
        rows = _metrics(run(cfg))
        shares[eta] = [r["process_share"] for r in rows]
        assert all(r["entropy_share"] == 0.0 for r in rows)
    assert shares[0.01][0] == shares[1e6][0] == 0.0, shares
    assert shares[0.01][1] > 0.01 and shares[0.01][1] == pytest.approx(shares[1e6][1] * 1e8, rel=1e-6), shares
    cfg = build_config({}, ["algo.name=grpo", "algo.entropy_coef=0.01", "train.steps=1", f"results_dir={tmp_path}",
                            "name=ent", "eval.before=false", "eval.after=false", *SMALL])
    row = _metrics(run(cfg))[0]
    bonus = 0.01 * row["entropy"]
    assert row["entropy_share"] == pytest.approx(bonus / (abs(row["pg_loss"]) + bonus))
    assert "process_share" not in row


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package,allowed", [("common", {"common"}), ("algorithms", {"common", "algorithms"}),
                                             ("benchmarks", {"common", "benchmarks"})])
def test_packages_import_downward(package, allowed):
    """Issue 14 item 3: common/ imports no project package; algorithms/ and benchmarks/ never import harness/."""
    project = {"common", "algorithms", "benchmarks", "harness"}
    for path in sorted((ROOT / package).glob("*.py")):
        bad = (_imports(path) & project) - allowed
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_test_hooks_machine_paths_or_tracker_references_in_the_run_path():
    """Issue 14 item 5, for the modules of a run (the orchestration this refactor owns)."""
    import re
    for rel in ("harness/train/flow.py", "harness/train/prepare.py", "harness/train/loop.py", "harness/train/data.py", "harness/stop.py",
                "harness/eval/base_cache.py", "harness/report/summary.py", "harness/report/tables.py", "harness/report/runs.py",
                "harness/report/render.py", "harness/engines/choose.py", "harness/config.py", "harness/train/wandb_log.py",
                "algorithms/core.py", "algorithms/loss.py", "common/rank.py"):
        text = (ROOT / rel).read_text(encoding="utf-8")
        assert "HARNESS_TRACE_DIR" not in text and "/work/" not in text, rel
        assert not re.search(r"\(issue \d+", text, re.I), rel


def _source(name: str, tmp_path: Path):
    from harness.train.data import TRAIN_SOURCES

    if name == "file":
        f = tmp_path / "train.jsonl"
        f.write_text("".join(json.dumps({"problem": f"What is {a}+{a}?", "answer": str(2 * a)}) + "\n"
                             for a in range(1, 6)))
        return TRAIN_SOURCES.get(name)(str(f), 0, 3)
    return TRAIN_SOURCES.get(name)(0, 3)


@pytest.mark.parametrize("name", __import__("harness.train.data", fromlist=["TRAIN_SOURCES"]).TRAIN_SOURCES.names())
def test_every_training_source_is_graded_by_its_benchmark(name, tmp_path):
    """Issue 14 item 2: a training source's problems name a registered benchmark; the reward is that benchmark's
    grader and the prompt its prompt."""
    from benchmarks import BENCHMARKS, Problem, get_benchmark
    from benchmarks.grading import Grader
    from harness.models import build_tiny_tokenizer
    from harness.train.data import Reward, prompt_of

    batch = _source(name, tmp_path).batch(0)
    assert len(batch) == 3 and all(p.bench in BENCHMARKS for p in batch)
    tok = build_tiny_tokenizer()
    for p in batch:
        assert prompt_of(p, tok) == get_benchmark(p.bench).prompt(Problem(p.id, p.problem, p.answer, {}), tok)
    with Grader() as grader:
        got = Reward(grader)([f"so \\boxed{{{p.answer}}}" for p in batch] + ["\\boxed{x}"], [*batch, batch[0]])
    assert got == [1.0, 1.0, 1.0, 0.0]


def test_a_registered_training_source_is_selected_by_name(monkeypatch):
    """Adding a training set is one registered class: ``data.train_data=NAME`` builds it, nothing else changes."""
    from types import SimpleNamespace

    from harness.train.data import TRAIN_SOURCES, ArithWordSource, build_source

    class Extra(ArithWordSource):
        pass

    monkeypatch.setitem(TRAIN_SOURCES._items, "extra_task", Extra)
    cfg = SimpleNamespace(train_data="extra_task", word_max_steps=2)
    assert type(build_source(cfg, seed=0, per_rank=2)) is Extra
    assert type(build_source(SimpleNamespace(train_data=None, arith_min_ops=1, arith_max_ops=1), 0, 2)).__name__ \
        == "ArithSource"


@pytest.mark.slow
def test_a_run_directory_in_use_is_refused(tmp_path, tiny_path):
    """``run`` holds ``<results>/.locks/<name>.lock`` from before it writes its directory to its end: a second process
    on the same directory (here ``--overwrite`` while the first still holds it) gets one error, exit 3, and the
    directory is left as it was."""
    from common.locks import BUSY_EXIT, Busy, hold_lock, lock_holder
    from harness.train.prepare import run_lock_path

    cfg = build_config({}, ["algo.name=grpo", "train.steps=1", f"results_dir={tmp_path}", "name=busy",
                            "eval.before=false", "eval.after=false", *SMALL])
    run_dir = run(cfg)
    lock = run_lock_path(cfg)
    assert lock == tmp_path / ".locks" / "busy.lock" and lock_holder(lock) is None   # released at the end
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    with hold_lock(lock, "another run"):
        with pytest.raises(Busy, match=r"^run busy is already running \(pid \d+ holds .*busy\.lock\); wait for it "
                                       r"to end$") as err:
            run(cfg, overwrite=True)
        assert err.value.exit_code == BUSY_EXIT
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    assert run(cfg, overwrite=True) == run_dir                                        # free again
