"""``samples.jsonl``: the complete problems an interrupted evaluation keeps (``--resume``), and the merge of
the ranks' shards into one file (each (problem, sample) exactly once, in problem order).

    python -c "from harness.eval.samples import complete_problems; help(complete_problems)"
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch.distributed as dist

from benchmarks import Problem
from harness.results import atomic_write_text, read_jsonl


def _load_done(path: Path, n: int, ids: set[str]) -> dict[str, list[dict]]:
    """Complete problems (all n samples) of an earlier, interrupted run; the file is rewritten to them."""
    records = read_jsonl(path, repair=True)
    by_id: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_id[r["problem_id"]].append(r)
    done = {pid: sorted(rs, key=lambda r: r["sample_index"]) for pid, rs in by_id.items()
            if pid in ids and sorted(r["sample_index"] for r in rs) == list(range(n))}
    if sum(len(v) for v in done.values()) != len(records):  # drop partial problems from the file
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                        for rs in done.values() for r in rs))
    return done


def samples_file(bench_dir: Path, n: int, ids: set[str], resume: bool,
                  shard: tuple[int, int]) -> tuple[Path, dict[str, list[dict]]]:
    """This rank's samples file and the complete problems already in it (resume), else an emptied file."""
    rank, world = shard
    bench_dir.mkdir(parents=True, exist_ok=True)
    merged_path = bench_dir / "samples.jsonl"
    samples_path = merged_path if world == 1 else bench_dir / f"samples.rank{rank}.jsonl"
    done: dict[str, list[dict]] = {}
    if resume and samples_path.exists():
        done = _load_done(samples_path, n, ids)
    else:
        samples_path.unlink(missing_ok=True)
    if world > 1 and resume and merged_path.exists():  # complete problems merged by an earlier run
        done.update(complete_problems(merged_path, n, ids))
    return samples_path, done


def complete_problems(path: Path, n: int, ids: set[str]) -> dict[str, list[dict]]:
    """The problems of ``ids`` with all n samples in the file (read only)."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for r in read_jsonl(path):
        by_id[r["problem_id"]].append(r)
    return {pid: sorted(rs, key=lambda r: r["sample_index"]) for pid, rs in by_id.items()
            if pid in ids and sorted(r["sample_index"] for r in rs) == list(range(n))}


def merge_shards(bench_dir: Path, n: int, problems: list[Problem], world: int, rank: int):
    """Gather every rank's samples into samples.jsonl (rank 0), each (problem, sample) exactly once."""

    dist.barrier()
    done: dict[str, list[dict]] = {}
    if rank == 0:
        ids = {p.id for p in problems}
        merged = bench_dir / "samples.jsonl"
        sources = [merged] + [bench_dir / f"samples.rank{r}.jsonl" for r in range(world)]
        for path in sources:
            if path.exists():
                done.update(complete_problems(path, n, ids))
        missing = [p.id for p in problems if p.id not in done]
        if missing:
            raise RuntimeError(f"{bench_dir.name}: {len(missing)} problems have no complete samples after merging")
        atomic_write_text(merged, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                          for p in problems for r in done[p.id]))
        for path in sources[1:]:
            path.unlink(missing_ok=True)
    dist.barrier()
    return done
