"""Crash-safe resume (issue 6) and clean stops (issue 11): SIGKILL or SIGTERM/SIGINT a run, ``run --resume``,
and get exactly the uninterrupted results.

* Training: a 6-step CPU run is killed with SIGKILL at three points (once it has logged steps 2, 4
  and 5, plus a random delay so the kill lands anywhere in the next step, checkpoint writes
  included; the last one may land in the final evaluation), resumed with ``run --resume --name NAME`` (the run's own config.yaml supplies the rest),
  and compared with an uninterrupted run of the same seed: every metric except timings, the final
  parameters, and every evaluation sample.
* Evaluation: a run is killed in the middle of its base evaluation, resumed, killed again in the
  middle of its final evaluation (training already complete), resumed again; every (problem,
  sample) appears exactly once and equals the uninterrupted run's.
* The pieces: atomic checkpoint swap recovery, metrics truncation, config checks on resume.

All runs are subprocesses with ``OMP_NUM_THREADS=1`` (bit-identical CPU maths between processes, and
no thread oversubscription on a busy machine), two at a time.

    .venv/bin/python -m pytest tests/train/test_resume.py -q
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--rollout.prompts_per_step", "4", "--rollout.n", "4", "--rollout.max_new_tokens", "24",
         "--eval.limit", "8", "--eval.n", "2", "--log.progress", "false"]
TRAIN = ["run", "--algo", "grpo", "--steps", "6", "--seed", "3", "--train.save_every", "1", *SMALL]
STEPS_SIGTERM = 12


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _cli(args: list[str], results: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args, "--results-dir", str(results)],
                          capture_output=True, text=True, env=_env(), cwd=results.parent, timeout=600)


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _run_and_signal(args: list[str], results: Path, watch: str, at_least: int, delay: float,
                    sig: int = signal.SIGTERM) -> tuple[int, int, int, str]:
    """Start ``python -m harness ARGS``; send ``sig`` ``delay`` s after ``watch`` has ``at_least`` lines.

    Returns (exit code, lines of ``watch`` when the signal was sent, lines after the exit, stderr).
    """
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args, "--results-dir", str(results)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(), cwd=results.parent,
                            text=True)
    path = results / watch
    deadline = time.monotonic() + 300
    while _lines(path) < at_least and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    sent = _lines(path)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    return proc.returncode, sent, _lines(path), err


def _run_and_kill(args: list[str], results: Path, watch: str, at_least: int, delay: float) -> tuple[int, int]:
    """Start ``python -m harness ARGS``; SIGKILL it ``delay`` s after ``watch`` has ``at_least`` lines."""
    code, _, after, err = _run_and_signal(args, results, watch, at_least, delay, signal.SIGKILL)
    assert code == -signal.SIGKILL, f"finished before the kill ({code}): {err[-2000:]}"
    return code, after


def _is_timing(key: str) -> bool:
    """Wall-clock fields (``time_*_s``, ``tokens_per_s``): they differ between any two runs."""
    return key.startswith("time_") or key == "tokens_per_s"


def _metrics(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if not _is_timing(k)}
            for x in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]


def _samples(run_dir: Path, stage: str) -> list[tuple]:
    rows = [json.loads(x) for x in (run_dir / stage / "arith" / "samples.jsonl").read_text().splitlines()]
    keys = [(r["problem_id"], r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys)), "a (problem, sample) appears twice"
    return sorted((r["problem_id"], r["sample_index"], r["response"], r["correct"]) for r in rows)


def _both_then_same_samples(results: Path, uninterrupted, interrupted) -> tuple[Path, Path]:
    """Run the two jobs side by side; the interrupted run "ev" then has the reference "ref"'s 160 x 2 samples in
    both evaluations and its 2 training steps."""
    with ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(uninterrupted), pool.submit(interrupted)]:
            job.result()
    run, ref = results / "ev", results / "ref"
    for stage in ("eval_base", "eval"):
        got = _samples(run, stage)
        assert len(got) == 160 * 2 and got == _samples(ref, stage), stage
    assert [m["step"] for m in _metrics(run)] == [1, 2]
    return run, ref


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(run_dir / "checkpoint" / "final" / "model.safetensors"))


def _same_nan(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def _assert_same_run(run: Path, ref: Path, what: str) -> None:
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished", what
    got, want = _metrics(run), _metrics(ref)
    assert [m["step"] for m in got] == list(range(1, len(want) + 1)) and len(want) in (6, STEPS_SIGTERM), \
        (what, [m["step"] for m in got])
    for g, w in zip(got, want):
        assert g.keys() == w.keys() and all(_same_nan(g[k], w[k]) for k in g), (what, g, w)
    pa, pb = _params(run), _params(ref)
    for k in pb:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=1e-5, msg=f"{what}: {k}")
    for stage in ("eval_base", "eval"):
        assert _samples(run, stage) == _samples(ref, stage), (what, stage)
        s, r = (json.loads((d / stage / "arith" / "summary.json").read_text()) for d in (run, ref))
        assert (s["avg@n"], s["pass@k"], s["num_samples"]) == (r["avg@n"], r["pass@k"], r["num_samples"])


@pytest.mark.slow
def test_sigkill_during_training_then_resume_matches_uninterrupted(tmp_path, tiny_path):
    results = tmp_path / "results"
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng = random.Random(seed)
    points = [(k, rng.uniform(0.0, 0.1)) for k in (2, 4, 5)]   # a step takes ~0.15-0.5 s here

    def uninterrupted():
        proc = _cli([*TRAIN, "--name", "ref"], results)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def killed_and_resumed(k: int, delay: float):
        name = f"kill{k}"
        _, seen = _run_and_kill([*TRAIN, "--name", name], results, f"{name}/train/metrics.jsonl", k, delay)
        proc = _cli(["run", "--resume", "--name", name], results)   # settings come from its config.yaml
        assert proc.returncode == 0, proc.stderr[-3000:]
        return seen

    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(uninterrupted)] + [pool.submit(killed_and_resumed, k, d) for k, d in points]
        seen = [j.result() for j in jobs][1:]
    print(f"kills (after step, delay) {points}: steps logged when killed {seen} (rng seed {seed})")
    assert sum(n < 6 for n in seen) >= 2, seen    # at least two kills in the middle of training
    for (k, delay), n in zip(points, seen):
        what = f"killed after step {k} (+{delay:.2f}s, {n} steps logged; rng seed {seed})"
        _assert_same_run(results / f"kill{k}", results / "ref", what)
        resumes = json.loads((results / f"kill{k}" / "run.json").read_text())["resumes"]
        assert len(resumes) == 1 and resumes[0]["from_step"] <= n, (what, resumes)
        assert not (results / f"kill{k}" / "checkpoint" / "last").exists()   # removed once finished


@pytest.mark.slow
def test_sigkill_during_evaluation_then_resume(tmp_path, tiny_path):
    """Killed in the base evaluation, then in the final one (training complete): nothing lost or repeated."""
    results = tmp_path / "results"
    args = ["run", "--algo", "grpo", "--steps", "2", "--seed", "5", *SMALL,
            "--eval.limit", "160", "--eval.batch_size", "4",          # 40 chunks of 4 problems x 2 samples
            "--eval.cache_base", "false"]                             # (a shared base evaluation is not killed)

    def uninterrupted():
        proc = _cli([*args, "--name", "ref"], results)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def interrupted():
        _run_and_kill([*args, "--name", "ev"], results, "ev/eval_base/arith/samples.jsonl", 48, 0.0)
        base = _lines(results / "ev" / "eval_base" / "arith" / "samples.jsonl")
        assert 48 <= base < 320 and not (results / "ev" / "eval_base" / "arith" / "summary.json").exists()
        _run_and_kill(["run", "--resume", "--name", "ev"], results, "ev/eval/arith/samples.jsonl", 48, 0.0)
        final = _lines(results / "ev" / "eval" / "arith" / "samples.jsonl")
        assert 48 <= final < 320 and not (results / "ev" / "eval" / "arith" / "summary.json").exists()
        proc = _cli(["run", "--resume", "--name", "ev"], results)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run, ref = _both_then_same_samples(results, uninterrupted, interrupted)
    assert [len(r) for r in (json.loads((run / "run.json").read_text())["resumes"],)] == [2]
    assert json.loads((run / "run.json").read_text())["resumes"][1]["from_step"] == 2   # no retraining


# --------------------------------------------------------------------------- SIGTERM / SIGINT: a clean stop

@pytest.mark.slow
def test_sigterm_during_training_stops_cleanly_and_resumes_to_the_same_result(tmp_path, tiny_path):
    """SIGTERM (and once SIGINT) mid-training: exit 143/130 after the current step, checkpoint/last at that step
    even with save_every=0, every logged step kept; ``--resume`` ends exactly like the uninterrupted run."""
    results = tmp_path / "results"
    # no periodic checkpoints: the stop itself must write one. 12 steps, not 6: a tiny step can take under 50 ms,
    # so a signal sent 0.05 s after step 4 may land in step 6; it must still land before the last step.
    args = [*TRAIN, "--train.save_every", "0", "--steps", str(STEPS_SIGTERM)]
    points = [(2, 0.0, signal.SIGTERM), (4, 0.05, signal.SIGTERM), (3, 0.02, signal.SIGINT)]

    def uninterrupted():
        proc = _cli([*args, "--name", "ref"], results)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def stopped_and_resumed(k: int, delay: float, sig: int):
        name = f"stop{k}"
        code, sent, after, err = _run_and_signal([*args, "--name", name], results, f"{name}/train/metrics.jsonl",
                                                 k, delay, sig)
        assert code == 128 + sig, (code, err[-3000:])
        assert err.strip().splitlines()[-1].startswith("stopped: "), err[-2000:]
        assert "Traceback" not in err, err[-3000:]
        run_dir = results / name
        assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
        state = json.loads((run_dir / "checkpoint" / "last" / "state.json").read_text())
        assert sent <= after == state["step"] < STEPS_SIGTERM, (sent, after, state)   # no finished step lost, none extra
        assert not (run_dir / "checkpoint" / "final").exists() and not (run_dir / "eval").exists()
        proc = _cli(["run", "--resume", "--name", name], results)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return after

    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(uninterrupted)] + [pool.submit(stopped_and_resumed, *p) for p in points]
        stopped_at = [j.result() for j in jobs][1:]
    for (k, delay, sig), n in zip(points, stopped_at):
        what = f"{signal.Signals(sig).name} after step {k} (+{delay:.2f}s), stopped at step {n}"
        _assert_same_run(results / f"stop{k}", results / "ref", what)
        resumes = json.loads((results / f"stop{k}" / "run.json").read_text())["resumes"]
        assert [r["from_step"] for r in resumes] == [n], (what, resumes)


@pytest.mark.slow
def test_sigterm_during_evaluation_keeps_finished_samples_and_resumes(tmp_path, tiny_path):
    """SIGTERM in the base evaluation, then in the final one: exit 143 before the next chunk, every sample
    written before the signal kept, and the resumed run's samples equal the uninterrupted run's."""
    results = tmp_path / "results"
    args = ["run", "--algo", "grpo", "--steps", "2", "--seed", "6", *SMALL,
            "--eval.limit", "160", "--eval.batch_size", "4", "--eval.cache_base", "false"]

    def uninterrupted():
        proc = _cli([*args, "--name", "ref"], results)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def interrupted():
        for stage, resume in (("eval_base", []), ("eval", ["--resume"])):
            cmd = [*args, "--name", "ev"] if not resume else ["run", "--resume", "--name", "ev"]
            code, sent, after, err = _run_and_signal(cmd, results, f"ev/{stage}/arith/samples.jsonl", 48, 0.0)
            assert code == 143 and "Traceback" not in err, (stage, code, err[-3000:])
            assert 48 <= sent <= after < 320 and after % 8 == 0, (stage, sent, after)  # whole chunks only
            assert not (results / "ev" / stage / "arith" / "summary.json").exists()
            assert json.loads((results / "ev" / "run.json").read_text())["status"] == "interrupted"
        proc = _cli(["run", "--resume", "--name", "ev"], results)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run, ref = _both_then_same_samples(results, uninterrupted, interrupted)
    assert _metrics(run) == _metrics(ref)
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


# --------------------------------------------------------------------------- the pieces

def _tiny_policy():
    from harness.models import load_model
    model, _ = load_model("tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 4))
    model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def test_checkpoint_roundtrip_and_rng(tmp_path, tiny_path):
    import numpy as np

    from harness.train import checkpoint

    model, opt, sched = _tiny_policy()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    checkpoint.save(tmp_path, policy=model, optimizer=opt, scheduler=sched, state={"step": 7})
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    model2, opt2, sched2 = _tiny_policy()
    with torch.no_grad():
        next(model2.parameters()).add_(1.0)
    state = checkpoint.load(tmp_path / "checkpoint" / "last", policy=model2, optimizer=opt2, scheduler=sched2)
    assert state["step"] == 7
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert sched2.state_dict()["last_epoch"] == sched.state_dict()["last_epoch"] == 1
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_checkpoint_swap_recovery(tmp_path):
    from harness.train import checkpoint

    ck = tmp_path / "checkpoint"

    def make(name, step):
        (ck / name).mkdir(parents=True)
        (ck / name / "state.json").write_text(json.dumps({"step": step}))

    assert checkpoint.recover(tmp_path) is None
    make(".last.tmp", 3)                      # crashed while writing the first checkpoint
    assert checkpoint.recover(tmp_path) is None and not (ck / ".last.tmp").exists()
    make(".last.old", 2)                      # crashed between the two renames
    make(".last.tmp", 3)
    assert checkpoint.recover(tmp_path) == ck / "last" and checkpoint.read_state(tmp_path) == {"step": 2}
    make(".last.old", 1)                      # crashed before the old one was removed
    assert checkpoint.recover(tmp_path) == ck / "last" and checkpoint.read_state(tmp_path) == {"step": 2}
    assert sorted(p.name for p in ck.iterdir()) == ["last"]
    (ck / "last" / "state.json").unlink()     # a torn last (cannot happen: renamed complete) is no checkpoint
    assert checkpoint.recover(tmp_path) is None


def test_truncate_metrics_drops_later_steps_and_torn_line(tmp_path):
    from harness.train.prepare import truncate_metrics as _truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "x": s / 3}) + "\n" for s in range(1, 6)) + '{"step": 6, "x"')
    _truncate_metrics(path, 3)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3]
    assert path.read_text().endswith("\n")
    _truncate_metrics(path, 0)
    assert path.read_text() == ""


def _fake_run(results: Path, name: str, *extra: str) -> Path:
    from harness.config import build_config, dump_yaml

    cfg = build_config({}, ["algo.name=grpo", f"name={name}", *extra])
    run_dir = results / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    (run_dir / "run.json").write_text(json.dumps({"name": name, "status": "running"}))
    return run_dir


def _tree(d: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in d.rglob("*")}


def test_existing_run_needs_resume_or_overwrite(tmp_path, capsys):
    run_dir = _fake_run(tmp_path, "x")
    before = _tree(tmp_path)
    assert main(["run", "--algo", "grpo", "--name", "x", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "already exists" in err and str(run_dir) in err
    assert _tree(tmp_path) == before


def test_resume_refuses_changed_settings(tmp_path, capsys):
    _fake_run(tmp_path, "x", "algo.clip_eps_low=0.2")
    before = _tree(tmp_path)
    assert main(["run", "--resume", "--name", "x", "--results-dir", str(tmp_path),
                 "--algo.clip_eps_low", "0.3", "--rollout.n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config differs in algo.clip_eps_low (0.2 -> 0.3), rollout.n (8 -> 2)" in err
    assert _tree(tmp_path) == before


def test_resume_by_the_default_name_of_a_run_started_without_one(tmp_path, capsys):
    from harness.config import build_config, dump_yaml

    cfg = build_config({}, ["algo.name=grpo"])
    run_dir = tmp_path / cfg.run_name
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))   # name: null
    (run_dir / "run.json").write_text(json.dumps({"name": cfg.run_name, "status": "finished"}))
    assert main(["run", "--resume", "--name", "grpo-arith-s0", "--algo", "grpo", "--results-dir", str(tmp_path)]) == 0
    assert main(["run", "--resume", "--algo", "grpo", "--results-dir", str(tmp_path)]) == 0
    assert "error" not in capsys.readouterr().err


def test_resume_of_finished_run_without_checkpoint(tmp_path, capsys):
    run_dir = _fake_run(tmp_path, "x", "train.steps=4")
    (run_dir / "run.json").write_text(json.dumps({"name": "x", "status": "finished"}))
    before = _tree(tmp_path)
    assert main(["run", "--resume", "--name", "x", "--results-dir", str(tmp_path)]) == 0   # nothing to do
    assert _tree(tmp_path) == before
    capsys.readouterr()
    assert main(["run", "--resume", "--name", "x", "--results-dir", str(tmp_path), "--steps", "8"]) == 2
    assert "train.keep_last" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_run_extended_with_resume_matches_uninterrupted(tmp_path, tiny_path):
    """2-process DDP (gloo): 2 steps, then ``--resume --steps 4`` == 4 steps in one go (every rank reloads its state)."""
    results = tmp_path / "results"
    ddp = ["run", "--algo", "grpo", "--seed", "1", "--devices", "2", "--strategy", "ddp",
           "--trainer.accelerator", "cpu", *SMALL, "--eval.before", "false", "--train.keep_last", "true"]

    def job(args):
        proc = _cli(args, results)
        assert proc.returncode == 0, proc.stderr[-3000:]

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(job, [*ddp, "--steps", "4", "--name", "ref"])
        pool.submit(job, [*ddp, "--steps", "2", "--name", "ext"]).result()
        pool.submit(job, ["run", "--resume", "--name", "ext", "--steps", "4"]).result()
        first.result()
    run, ref = results / "ext", results / "ref"
    got, want = _metrics(run), _metrics(ref)
    assert [m["step"] for m in got] == [1, 2, 3, 4]
    for g, w in zip(got, want):
        assert all(_same_nan(g[k], w[k]) for k in w), (g, w)
    pa, pb = _params(run), _params(ref)
    for k in pb:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=1e-5, msg=k)
    assert _samples(run, "eval") == _samples(ref, "eval")
    assert json.loads((run / "checkpoint" / "last" / "state.json").read_text())["world_size"] == 2
