"""The model cache: where built-in models are built once per machine (``$HARNESS_CACHE_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "rl-harness"))
