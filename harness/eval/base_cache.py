"""Shared base-model evaluations: a base model is evaluated once per content and settings, then reused.

A run's ``eval_base/<bench>/`` is fully determined by the model's weights and tokenizer, the benchmark
data, the evaluation settings (n, temperature, top_p, max_new_tokens, limit, seed, batch size, engine,
prompt) and the grader (Math-Verify version and options). Those are hashed into a key; the first run
that evaluates a combination stores its ``samples.jsonl`` + ``summary.json`` under
``$HARNESS_CACHE_DIR/base-evals/<key>/<bench>/``, and every later run (or sweep job) with the same key
copies them into its own ``eval_base/`` instead of sampling again. The copies are byte-identical to
what the run would have computed, so tables and significance tests are unchanged: a sweep still shows
one base row. ``eval.cache_base=false`` turns this off; multi-process evaluations do not use it.

    python -c "from harness.eval.base_cache import cache_root; print(cache_root())"
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from common.atomic import atomic_folder
from harness.models import cache_dir

FILES = ("samples.jsonl", "summary.json")
SAMPLES_FORMAT = 2  # bump when samples.jsonl rows change (2: prompt and gold added), so no stale copy is reused


def cache_root() -> Path:

    return cache_dir() / "base-evals"


def model_digest(model: torch.nn.Module, tokenizer) -> str:
    """sha256 of every parameter and buffer (name, dtype, shape, bytes) and of the tokenizer's vocabulary and
    template."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    vocab = sorted(tokenizer.get_vocab().items())
    h.update(json.dumps([vocab, getattr(tokenizer, "chat_template", None)], ensure_ascii=False).encode())
    return h.hexdigest()


def data_digest(source: str) -> str:
    """sha256 of a local benchmark file, else the source string itself (built-in or hub)."""
    path = Path(source)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else source


def cache_key(*, model: str, digest: str, bench: str, settings: dict, grader: dict, data: str) -> str:
    blob = json.dumps({"model": model, "digest": digest, "bench": bench, "settings": settings,
                       "grader": grader, "data": data, "format": SAMPLES_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def restore(key: str, bench: str, dest: Path) -> bool:
    """Copy a cached evaluation into ``dest`` (the run's ``eval_base/<bench>``); False when there is none."""
    src = cache_root() / key / bench
    if not all((src / f).is_file() for f in FILES):
        return False
    with atomic_folder(dest, replace=True) as tmp:
        for f in FILES:
            shutil.copyfile(src / f, tmp / f)
    return True


def store(key: str, bench: str, src: Path) -> None:
    """Keep a finished evaluation (``src`` holds samples.jsonl + summary.json) under its key, atomically."""
    dest = cache_root() / key / bench
    if dest.is_dir():
        return
    with atomic_folder(dest, replace=False) as tmp:   # another run that stored it first keeps its copy
        for f in FILES:
            shutil.copyfile(src / f, tmp / f)
