"""Shared fixtures: the warm-started tiny model is built once per machine (cached by content hash)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
os.environ.setdefault("HARNESS_DATA_DIR", str(SHARED))
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def tiny_path():
    from harness.models import tiny_model_path
    return tiny_model_path()


@pytest.fixture(scope="session")
def tiny(tiny_path):
    from harness.models import load_model
    return load_model("tiny")


def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 600, module: str = "harness"):
    """Run ``python -m harness ...`` (or another ``module``) in a subprocess; returns CompletedProcess."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
