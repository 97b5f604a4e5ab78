"""Resumable training checkpoints: ``<run>/checkpoint/last/``, written atomically, and their recovery.

``checkpoint/last/`` holds everything a run needs to continue exactly where it stopped:

* ``config.json`` + ``model.safetensors`` (``save_pretrained`` of the policy; loadable as a model);
* ``optimizer.pt``: the optimizer and lr-scheduler ``state_dict``s (rank 0's; DDP replicas agree);
* ``rng_rank<r>.pt``: each process's python / numpy / torch (/ CUDA) RNG states;
* ``state.json``: ``{"step", "optimizer_steps", "skipped_updates", "bad_steps", "world_size", "time"}``,
  written last.

A new checkpoint is written into ``checkpoint/.last.tmp/`` and fsynced; then the previous ``last`` is
renamed to ``.last.old``, the new one to ``last``, and ``.last.old`` is removed. A crash at any point
leaves either the previous or the new checkpoint complete; :func:`recover` finishes or rolls back
the swap before a run resumes. Files are loaded with ``torch.load(weights_only=True)``: a
checkpoint never runs pickled code.

    python -c "from harness.train.checkpoint import read_state; print(read_state('results/grpo-arith-s0'))"
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file

from common.atomic import swap_in
from common.errors import HarnessError
from harness.progress import hf_bars_off
from harness.results import atomic_write_json

LAST, TMP, OLD = "last", ".last.tmp", ".last.old"


def _noop() -> None:
    pass


def rng_state() -> dict:
    """This process's RNG states, as tensors and plain Python values (loadable with ``weights_only``)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_pretrained_atomic(model, tokenizer, path: str | os.PathLike) -> None:
    """``save_pretrained`` of model (+ tokenizer) into ``path`` via a temp folder and a rename."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with hf_bars_off():   # no "Writing model shards" bar per checkpoint
        model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    _fsync_tree(tmp)
    swap_in(tmp, path)


def save(run_dir: str | os.PathLike, *, policy, optimizer, scheduler, state: dict, rank: int = 0,
         barrier: Callable[[], None] = _noop) -> Path:
    """Write ``checkpoint/last`` atomically. Every rank calls this (rank 0 writes the model and optimizer)."""
    ck = Path(run_dir) / "checkpoint"
    tmp = ck / TMP
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    tmp.mkdir(parents=True, exist_ok=True)  # other nodes may not share rank 0's filesystem view yet
    torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")
    if rank == 0:
        with hf_bars_off():
            policy.save_pretrained(tmp)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                   tmp / "optimizer.pt")
    barrier()
    if rank == 0:
        atomic_write_json(tmp / "state.json", dict(state, time=time.time()))
        _fsync_tree(tmp)
        swap_in(tmp, ck / LAST, ck / OLD)
    barrier()
    return ck / LAST


def recover(run_dir: str | os.PathLike) -> Path | None:
    """Finish or roll back a checkpoint swap cut short by a crash; returns ``checkpoint/last`` if complete."""
    ck = Path(run_dir) / "checkpoint"
    last, old = ck / LAST, ck / OLD
    shutil.rmtree(ck / TMP, ignore_errors=True)
    if not (last / "state.json").is_file() and (old / "state.json").is_file():
        shutil.rmtree(last, ignore_errors=True)
        os.replace(old, last)
    shutil.rmtree(old, ignore_errors=True)
    return last if (last / "state.json").is_file() else None


def read_state(run_dir: str | os.PathLike) -> dict | None:
    """``state.json`` of ``checkpoint/last`` (None when there is none)."""
    path = Path(run_dir) / "checkpoint" / LAST / "state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def load_weights(policy, folder: str | os.PathLike) -> None:
    """Load the weights of a ``save_pretrained`` folder into ``policy`` in place (tied weights allowed)."""
    folder = Path(folder)

    index = folder / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
             else ["model.safetensors"])
    weights = {}
    for f in files:
        weights.update(load_file(str(folder / f)))
    missing, unexpected = policy.load_state_dict(weights, strict=False)
    params = dict(policy.named_parameters(remove_duplicate=False))
    loaded = {params[k].data_ptr() for k in weights if k in params}
    untied = [k for k in missing if k not in params or params[k].data_ptr() not in loaded]
    if untied or unexpected:
        raise HarnessError(f"checkpoint {folder} does not match the model (missing {untied[:3]}, "
                           f"unexpected {unexpected[:3]}); resume with the same model or use --overwrite")


def load(folder: str | os.PathLike, *, policy, optimizer, scheduler, rank: int = 0) -> dict:
    """Load ``checkpoint/last`` into the policy, optimizer, scheduler and this rank's RNGs; returns state.json."""
    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    load_weights(policy, folder)
    opt = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    rng = folder / f"rng_rank{rank}.pt"
    if rng.is_file():
        set_rng_state(torch.load(rng, weights_only=True))
    return state
