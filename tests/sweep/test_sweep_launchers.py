"""Sweep launchers (harness/sweep/launchers.py, driver.py, status.py): run locks, the SLURM job array (written by
submitit through a fake sbatch on PATH, never submitted), --status, and a real grid through submitit-local with one
job killed mid-run and finished by the rerun."""

from __future__ import annotations

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.errors import HarnessError
from harness.cli import main
from harness.sweep import MANIFEST, parse_grid, plan_sweep, run_sweep
from harness.sweep.job import SweepJob
from harness.sweep.launchers import parse_extra, parse_slurm_time
from harness.sweep.manifest import hold_lock, lock_path
from harness.sweep.worker import run_job

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--rollout.prompts_per_step", "2", "--rollout.n", "2", "--rollout.max_new_tokens", "16",
        "--eval.limit", "4", "--eval.n", "2", "--bench", "arith"]


def _manifest(sweep: Path) -> dict:
    return json.loads((sweep / MANIFEST).read_text())


# ---------------------------------------------------------------------------------------------------------------------
# one setting never runs twice at once


def test_a_run_whose_lock_is_held_is_left_alone(tmp_path):
    plan = plan_sweep(parse_grid(["algo.eta=10,100"]), [0], ["algo.name=prl", f"results_dir={tmp_path}"], name="sw")
    calls = []

    def runner(spec, log_path):
        calls.append(Path(spec["run_dir"]).name)
        run_dir = Path(spec["run_dir"])
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({"status": "finished"}))
        return 0

    lines = []
    with hold_lock(lock_path(plan.sweep_dir, "prl_eta=10_s0"), "run prl_eta=10_s0"):
        assert run_sweep(plan, runner=runner, echo=lines.append) == 0
        # a job of the same setting started by anything else refuses to train it (exit 3), touching nothing
        spec = {"config": {}, "overrides": plan.runs[0].overrides, "label": "x", "settings": {}, "log": None,
                "run_dir": str(plan.sweep_dir / "runs" / "prl_eta=10_s0"),
                "lock": str(lock_path(plan.sweep_dir, "prl_eta=10_s0"))}
        assert run_job(spec) == 3
        with pytest.raises(HarnessError, match="another `harness sweep` is driving it|is running"):
            run_sweep(plan, overwrite=True, runner=runner, echo=lines.append)
    assert calls == ["prl_eta=100_s0"]
    assert lines[1] == f"[1/2] prl_eta=10_s0: already running (pid {os.getpid()}), left to it"
    assert not (plan.sweep_dir / "runs" / "prl_eta=10_s0").exists()
    # once the lock is free, the rerun runs it and skips the finished one
    assert run_sweep(plan, runner=runner, echo=lines.append) == 0
    assert calls == ["prl_eta=100_s0", "prl_eta=10_s0"]
    # a second driver of the same sweep is refused while the first holds the sweep lock
    with hold_lock(plan.sweep_dir / "locks" / "_driver.lock", "sweep sw"):
        with pytest.raises(HarnessError, match=r"sweep sw is already running \(pid \d+"):
            run_sweep(plan, runner=runner, echo=lines.append)


# ---------------------------------------------------------------------------------------------------------------------
# SLURM: submitit writes the sbatch script; a fake sbatch records it instead of submitting


def _fake_slurm(tmp_path: Path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "sbatch": '#!/bin/sh\nn=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 4242)\n'
                  'echo $((n + 1)) > "$FAKE_SLURM/next"\ncp "$1" "$FAKE_SLURM/sbatch-$n.sh"\n'
                  'echo "Submitted batch job $n"\n',
        "srun": "#!/bin/sh\nexit 1\n",
        "sacct": '#!/bin/sh\necho "JobID|State|NodeList"\ncat "$FAKE_SLURM/sacct" 2>/dev/null\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(tmp_path))
    return tmp_path


SLURM = ["--launcher", "slurm", "--slurm.partition", "gpu", "--slurm.gpus-per-node", "2", "--slurm.time", "1-00:00:00",
         "--slurm.account", "proj", "--slurm.extra", "qos=high", "--slurm.extra", "mem=64G", "--max-parallel", "3"]


def test_slurm_job_array_script_status_and_resubmission(tmp_path, monkeypatch, capsys):
    fake = _fake_slurm(tmp_path, monkeypatch)
    res = tmp_path / "res"
    argv = ["sweep", "--algo", "prl", "--grid", "algo.eta=10,100", "--seeds", "0,1", "--name", "sw", "--devices", "2",
            "--results-dir", str(res), "--steps", "2", *FAST, *SLURM]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "submitted 4 run(s) to SLURM: job 4242 (array of 4)" in out
    script = (fake / "sbatch-4242.sh").read_text()
    folder = res / "sw" / "submitit"
    for line in ["#SBATCH --array=0-3%3", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --ntasks-per-node=2", "#SBATCH --nodes=1", "#SBATCH --time=1440", "#SBATCH --account=proj",
                 "#SBATCH --qos=high", "#SBATCH --mem=64G", "#SBATCH --job-name=sw",
                 f"#SBATCH --output={folder}/%A_%a_0_log.out",
                 f"export PYTHONPATH={ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"]:
        assert line in script.splitlines(), (line, script)
    srun = [ln for ln in script.splitlines() if ln.startswith("srun ")]
    assert len(srun) == 1 and srun[0].endswith(f"{sys.executable} -u -m submitit.core._submit {folder}")
    # each array task's pickle holds run_job and that run's spec, in manifest order
    m = _manifest(res / "sw")
    names = [e["name"] for e in m["runs"]]
    assert names == ["prl_eta=10_s0", "prl_eta=100_s0", "prl_eta=10_s1", "prl_eta=100_s1"]
    assert [(e["launcher"], e["job_id"], e["status"]) for e in m["runs"]] == [
        ("slurm", f"4242_{i}", "submitted") for i in range(4)]
    for i, name in enumerate(names):
        with open(folder / f"4242_{i}_submitted.pkl", "rb") as f:
            delayed = pickle.load(f)
        assert isinstance(delayed.function, SweepJob) and hasattr(delayed.function, "checkpoint")  # requeueable
        spec = delayed.args[0]
        assert delayed.function.checkpoint(spec).args == (spec,)  # on preemption/time-out: requeued, same spec
        assert f"name={name}" in spec["overrides"] and "trainer.devices=2" in spec["overrides"]
        assert spec["run_dir"] == str((res / "sw" / "runs" / name).resolve()) and spec["resume"] is None

    # --status: the scheduler's view for runs not started, run.json for finished ones
    (fake / "sacct").write_text("4242_0|RUNNING|n1\n4242_1|PENDING|\n4242_2|FAILED|n2\n4242_3|COMPLETED|n3\n")
    done = res / "sw" / "runs" / "prl_eta=100_s1"
    (done / "train").mkdir(parents=True)
    (done / "run.json").write_text(json.dumps({"status": "finished"}))
    (done / "config.yaml").write_text("train:\n  steps: 2\n")
    (done / "train" / "metrics.jsonl").write_text('{"step": 1, "reward_mean": 0.25, "kl": 0.0}\n'
                                                  '{"step": 2, "reward_mean": 0.5, "kl": 0.01}\n')
    assert main(["sweep", "--status", "sw", "--results-dir", str(res)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "sweep sw: 4 runs: 1 RUNNING, 1 PENDING, 1 failed, 1 finished"
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in table[3:]}
    assert rows["prl_eta=10_s0"][:2] == ["RUNNING", "slurm 4242_0"]
    assert rows["prl_eta=100_s0"][0] == "PENDING" and rows["prl_eta=10_s1"][0] == "failed (FAILED)"
    assert rows["prl_eta=100_s1"][:5] == ["finished", "slurm 4242_3", "2/2", "0.5", "0.01"]

    # rerun: the live jobs are left alone, the finished one skipped, only the failed one resubmitted (not an array)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[1/4] prl_eta=10_s0: already RUNNING, left to it" in out
    assert "[4/4] prl_eta=100_s1: already finished, skipped" in out
    assert "submitted 1 run(s) to SLURM: job 4243;" in out
    again = (fake / "sbatch-4243.sh").read_text()
    assert "--array" not in again and "#SBATCH --partition=gpu" in again
    m = _manifest(res / "sw")
    assert [(e["job_id"], len(e["attempts"])) for e in m["runs"]] == [("4242_0", 1), ("4242_1", 1), ("4243", 2),
                                                                      ("4242_3", 1)]
    assert m["runs"][2]["attempts"][0]["job_id"] == "4242_2"


@pytest.mark.parametrize("extra, match", [
    (["--slurm.time", "soon"], "--slurm.time 'soon' is not a time"),
    (["--slurm.extra", "qos"], "must look like key=value"),
    (["--slurm.extra", "array=0-9"], "cannot set 'array'"),
    (["--slurm.nodes", "2"], "--slurm.nodes 2 differs from the runs' trainer.num_nodes 1"),
    (["--max-parallel", "0"], "--max-parallel must be >= 1"),
])
def test_slurm_bad_input_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, extra, match):
    _fake_slurm(tmp_path, monkeypatch)
    out = tmp_path / "res"
    assert main(["sweep", "--algo", "prl", "--results-dir", str(out), "--launcher", "slurm", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match in err, err
    assert not out.exists()


@pytest.mark.parametrize("args, match", [
    (["--slurm.partition", "gpu"], "--slurm.partition needs --launcher slurm"),
    (["--launcher", "slurm"], "no sbatch on PATH"),
    (["--max-parallel", "2"], "--max-parallel needs --launcher submitit-local or slurm"),
    (["--launcher", "submitit-local", "--in-process"], "--in-process works with --launcher local only"),
    (["--launcher", "nope"], "invalid choice: 'nope'"),
])
def test_launcher_flags_bad_input(tmp_path, monkeypatch, capsys, args, match):
    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "res"
    assert main(["sweep", "--algo", "prl", "--results-dir", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err, err
    assert not out.exists()


def test_slurm_dry_run_prints_the_script_without_sbatch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["sweep", "--algo", "prl", "--grid", "algo.eta=1,2,3", "--results-dir", str(tmp_path / "r"),
                 "--launcher", "slurm", "--slurm.time", "90", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-2%3" in out and "#SBATCH --time=90" in out and not (tmp_path / "r").exists()


def test_parse_slurm_time_and_extra():
    assert [parse_slurm_time(t) for t in ("120", "30:30", "2:00:00", "1-12", "1-12:30", "1-0:0:1")] == [
        120, 31, 120, 2160, 2190, 1441]
    assert parse_extra(["qos=high", "cpus_per_task=8", "--mem=64G"]) == {"qos": "high", "cpus-per-task": "8",
                                                                        "mem": "64G"}
    with pytest.raises(HarnessError, match="at least one minute"):
        parse_slurm_time("0")


# ---------------------------------------------------------------------------------------------------------------------
# a real 2-setting x 1-seed grid through submitit-local; one job killed mid-run, then the same command again


def _files(d: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file() and "logs" not in p.parts}


@pytest.mark.slow
def test_submitit_local_grid_kill_one_job_and_rerun(tmp_path, capsys, tiny_path):
    from harness.sweep.manifest import lock_holder

    argv = ["sweep", "--algo", "prl", "--grid", "algo.eta=10,100", "--seeds", "0", "--name", "sw", "--results-dir",
            str(tmp_path), "--steps", "30", "--train.save_every", "5", "--launcher", "submitit-local",
            "--max-parallel", "2", *FAST]
    sweep, victim = tmp_path / "sw", tmp_path / "sw" / "runs" / "prl_eta=100_s0"
    proc = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.time() + 400
        while not (victim / "checkpoint" / "last").is_dir():  # its first checkpoint (step 5 of 30)
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.1)
        pid = lock_holder(lock_path(sweep, victim.name))
        assert pid and pid != proc.pid
        os.kill(pid, signal.SIGKILL)  # the process training it: as an OOM kill or a lost node would
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "[1/2] prl_eta=10_s0: finished in" in out and "[2/2] prl_eta=100_s0: FAILED (exit None" in out
    m = _manifest(sweep)
    assert [(e["name"], e["status"], e["launcher"]) for e in m["runs"]] == [
        ("prl_eta=10_s0", "finished", "submitit-local"), ("prl_eta=100_s0", "failed", "submitit-local")]
    first_jobs = [e["job_id"] for e in m["runs"]]
    assert all(j.isdigit() for j in first_jobs) and m["runs"][0]["exit_code"] == 0
    assert m["runs"][1]["job_state"] == "no result: killed or crashed" and m["runs"][1]["exit_code"] is None
    done_before = len((victim / "train" / "metrics.jsonl").read_text().splitlines())
    assert 5 <= done_before < 30
    other = sweep / "runs" / "prl_eta=10_s0"
    stamp = _files(other)

    capsys.readouterr()
    assert main(argv) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "[1/2] prl_eta=10_s0: already finished, skipped" in out and "[2/2] prl_eta=100_s0: finished in" in out
    # it ends with the table command's table and names the files written (the same files as any launcher's)
    assert "| prl eta=10 |" in out and "| prl eta=100 |" in out and f"files: {sweep / 'sweep.json'}" in out
    assert f"wrote {sweep / 'report' / 'table.md'}" in cap.err
    assert (sweep / "report" / "training.pdf").is_file() and (sweep / "report" / "training.csv").is_file()
    assert _files(other) == stamp  # not redone
    info = json.loads((victim / "run.json").read_text())
    assert info["status"] == "finished" and [r["from_step"] for r in info["resumes"]][0] % 5 == 0
    assert info["resumes"][0]["from_step"] >= 5  # continued from its checkpoint, not from scratch
    steps = [json.loads(ln)["step"] for ln in (victim / "train" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))  # every step once
    assert (victim / "eval" / "arith" / "summary.json").is_file()
    m = _manifest(sweep)
    assert [e["status"] for e in m["runs"]] == ["finished", "finished"]
    assert len(m["runs"][1]["attempts"]) == 2 and m["runs"][1]["job_id"] != first_jobs[1]
    assert len(m["runs"][0]["attempts"]) == 1
    logs = sorted(p.name for p in (victim / "logs").glob("*.log"))
    assert logs == sorted(f"submitit-local-{a['job_id']}.log" for a in m["runs"][1]["attempts"])
    assert "==== " in (victim / "logs" / logs[0]).read_text()

    assert main(["sweep", "--status", str(sweep)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "sweep sw: 2 runs: 2 finished"
    assert all(ln.split("|")[2].strip() == "finished" and ln.split("|")[4].strip() == "30/30" for ln in table[3:])


def test_slurm_wait_follows_the_jobs_to_their_end(tmp_path, monkeypatch, capsys):
    fake = _fake_slurm(tmp_path, monkeypatch)
    (fake / "sacct").write_text("4242_0|FAILED|n1\n4242_1|TIMEOUT|n2\n")  # the jobs end without a result
    res = tmp_path / "res"
    argv = ["sweep", "--algo", "prl", "--grid", "algo.eta=10,100", "--name", "sw", "--results-dir", str(res),
            "--launcher", "slurm", "--wait", "--no-report", *FAST]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "[1/2] prl_eta=10_s0: FAILED (exit None, FAILED)" in out
    assert "[2/2] prl_eta=100_s0: FAILED (exit None, TIMEOUT)" in out
    m = _manifest(res / "sw")
    assert [(e["status"], e["job_state"]) for e in m["runs"]] == [("failed", "FAILED"), ("failed", "TIMEOUT")]
