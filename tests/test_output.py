"""Console output of ``run`` and ``eval``: default, ``--quiet``, ``--verbose`` (issue 11.5).

    .venv/bin/python -m pytest tests/test_output.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ["run", "--algo", "prl", "--bench", "arith", "--steps", "2", "--eval.limit", "4", "--eval.n", "2",
       "--train.save_every", "1"]   # a checkpoint per step: no "Writing model shards" bar for any


def _harness(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("HARNESS_LOG", None)
    proc = subprocess.run([sys.executable, "-m", "harness", *args, "--results-dir", str(cwd / "results")],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (proc.stdout + proc.stderr).replace("\r", "\n")


@pytest.mark.slow
def test_run_output_default_quiet_verbose(tmp_path, tiny_path):
    out = _harness([*RUN, "--name", "default"], tmp_path)
    assert "train (RL steps)" in out and "2/2" in out and "reward=" in out and "tok/s=" in out
    assert "Epoch 0" not in out and "Writing model shards" not in out and "Loading weights" not in out
    assert "mismatch=" in out                                           # the rollout/training mismatch
    assert "GPU available" not in out and "LeafSpec" not in out and "in eval mode" not in out
    assert "arith: 100%" in out and "chunks=1/1, acc=" in out           # the evaluation bars

    quiet = _harness([*RUN, "--name", "quiet", "--quiet"], tmp_path)
    assert "%|" not in quiet and "run finished" in quiet               # no bars at all

    verbose = _harness([*RUN, "--name", "verbose", "--verbose"], tmp_path)
    lines = [ln for ln in verbose.splitlines() if "GPU available" in ln]
    assert len(lines) == 1, lines                                       # once, not twice
    assert lines[0].startswith("INFO lightning.pytorch")
    assert "Loading weights" in verbose                                 # transformers' own bars: --verbose only


@pytest.mark.slow
def test_eval_quiet_has_results_and_no_bars(tmp_path, tiny_path):
    out = _harness(["eval", "--model", "tiny", "--bench", "arith", "--limit", "4", "--n", "2", "--quiet"],
                   tmp_path)
    assert "%|" not in out and "arith" in out and "avg@2" in out and "results:" in out


def test_model_hub_id_without_network_fails_in_one_line(monkeypatch):
    import time

    import benchmarks.loader as loader
    from common.errors import HarnessError
    from harness.models import load_model

    monkeypatch.setattr(loader, "hub_reachable", lambda: False)
    t = time.time()
    with pytest.raises(HarnessError) as err:
        load_model("no-such-org/no-such-model-11")
    msg = str(err.value)
    assert "no network" in msg and "no-such-org/no-such-model-11" in msg and "\n" not in msg
    assert time.time() - t < 20                  # the local cache only: no retries with back-off


def test_a_bar_keeps_ticking_during_a_long_call():
    """A real model's generation chunk or RL step takes minutes: the bar is redrawn every few seconds meanwhile
    (its elapsed time moves), stops being redrawn when the call ends, and a disabled bar gets no thread."""
    import threading
    import time

    from harness.progress import ticking

    class Bar:
        disable = False
        refreshes = 0

        def refresh(self):
            self.refreshes += 1

    bar = Bar()
    with ticking(bar, every=0.05):
        time.sleep(0.6)
    during = bar.refreshes
    time.sleep(0.2)
    assert during >= 3 and bar.refreshes == during
    assert not any(t.name == "bar-tick" for t in threading.enumerate())
    bar.disable = True
    with ticking(bar, every=0.01):
        assert not any(t.name == "bar-tick" for t in threading.enumerate())
        time.sleep(0.05)
    assert bar.refreshes == during
