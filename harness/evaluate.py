"""Evaluation: sample n responses per problem, grade them, write ``samples.jsonl`` + ``summary.json``.

The protocol is PRL's (``eval/gen.py`` + ``eval/eval.py``, arXiv 2601.10201; ``shared/notes/PRL.md``):
the paper prompt (chat template when the tokenizer has one), n = 8 samples at temperature 1.0, graded
by Math-Verify (:mod:`benchmarks.grading`), reporting avg@n and pass@k -- here the unbiased estimator
for every k in 1, 2, 4, ..., n (:mod:`harness.metrics`) -- plus maj@n.

Memory is bounded whatever the benchmark and model:

* **Too-long prompts.** A prompt longer than the model's context minus ``max_new_tokens`` (the
  engine's ``max_context``: ``max_position_embeddings``, or vLLM's ``max_model_len``) is handled by
  ``too_long``: ``"skip"`` (default) leaves the problem out and lists it in ``summary.json`` under
  ``skipped_too_long`` (``count`` and ``ids``; the metrics cover the other problems);
  ``"truncate"`` keeps its last tokens (left truncation, so the question's end and the
  instruction stay) and lists it under ``truncated_too_long``.
* **Token-budget chunks.** Problems are sorted by prompt length and grouped into chunks of at most
  ``batch_size`` prompts with ``prompts x n x (longest prompt + max_new_tokens) <= max_batch_tokens``
  (:func:`harness.engines.base.token_batches`); the hf engine samples a chunk in one batch under the same
  budget (it drops finished rows as it goes), so peak memory follows ``max_batch_tokens``.

Each chunk's samples are appended to ``<out_dir>/<bench>/samples.jsonl`` as soon as they are graded;
chunks and their seeds depend only on the problems and the settings, so ``resume=True`` continues an
interrupted evaluation from the complete problems on disk and gives the samples an uninterrupted run
would. ``summary.json`` is written atomically at the end and can be recomputed from ``samples.jsonl``
alone.

    python -m harness eval --model tiny --bench arith --n 4
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from benchmarks import Problem, get_benchmark
from common.errors import HarnessError
from common.versions import package_versions
from harness import stop
from harness.metrics import summarize
from harness.progress import ticking
from harness.results import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from harness.engines import SamplingParams, token_batches

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
TOO_LONG = ("skip", "truncate")
DEFAULT_MAX_BATCH_TOKENS = 32768


def problem_ids_sha256(ids) -> str:
    """sha256 of the sorted problem ids joined by newlines (identifies the evaluated subset)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def chunk_seed(seed: int, bench: str, start: int) -> int:
    """Sampling seed of chunk number ``start`` (independent of resumption)."""
    return (seed * 1_000_003 + zlib.crc32(f"{bench}/{start}".encode())) % (2 ** 31)


def evaluate(model_name: str, engine, tokenizer, bench_names: Sequence[str], out_dir: Path, *,
             n: int = 8, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 3072,
             limit: int | None = None, seed: int = 0, data_dir: str | None = None,
             batch_size: int = 64, grader=None, progress: bool = True,
             problems: dict[str, list[Problem]] | None = None, resume: bool = False,
             shard: tuple[int, int] = (0, 1), max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
             too_long: str = "skip") -> dict[str, dict]:
    """Evaluate one model on several benchmarks.

    Args:
        model_name: recorded in the summaries (``tiny``, a path or a hub id).
        engine: a :class:`harness.engines.base.RolloutEngine`.
        tokenizer: used only to build prompts (chat template or plain text).
        bench_names: registered benchmark names.
        out_dir: ``<out_dir>/<bench>/{samples.jsonl,summary.json}`` are written.
        n, temperature, top_p, max_new_tokens, seed: sampling settings.
        limit: evaluate only the first ``limit`` problems of each benchmark.
        data_dir: benchmark data folder (else ``$HARNESS_DATA_DIR``, else the hub).
        batch_size: most prompts per ``engine.generate`` call (each yields n samples).
        max_batch_tokens: token budget of one call (see the module docstring).
        too_long: ``"skip"`` or ``"truncate"`` prompts longer than the context minus max_new_tokens.
        grader: a :class:`benchmarks.grading.Grader` to reuse (else one is created and closed).
        progress: show a tqdm progress bar per benchmark.
        problems: already loaded problems per benchmark (skips loading; callers that validate first).
        resume: keep complete problems already in ``samples.jsonl`` instead of starting over.
        shard: ``(rank, world)`` under ``torch.distributed``: rank r samples the generation chunks
            ``r, r + world, ...`` (chunk seeds are the single-process ones), writes
            ``samples.rank<r>.jsonl``, and rank 0 merges them into ``samples.jsonl`` and writes the
            summary (other ranks return ``{}``). Every rank must call this.

    Returns:
        ``{bench: summary}`` with the content of each ``summary.json``.
    """
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p,
                            max_new_tokens=max_new_tokens, seed=seed)   # validates
    context = _check_chunking(engine, batch_size, max_batch_tokens, too_long, max_new_tokens)
    problems = dict(problems or {})
    for b in bench_names:  # load (and validate) everything before sampling anything
        if b not in problems:
            problems[b] = get_benchmark(b).load(data_dir, limit=limit)
    own_grader = grader is None
    if own_grader:
        from benchmarks.grading import Grader
        grader = Grader()
    settings = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                "seed": seed, "limit": limit, "batch_size": batch_size, "max_batch_tokens": max_batch_tokens,
                "too_long": too_long, "max_prompt_tokens": context - max_new_tokens if context else None,
                "engine": engine.kind, "dtype": engine.sample_dtype,
                "prompt": "chat_template" if getattr(tokenizer, "chat_template", None) else "plain"}
    chunking = {"batch_size": batch_size, "max_batch_tokens": max_batch_tokens, "too_long": too_long,
                "max_prompt_tokens": settings["max_prompt_tokens"]}
    try:
        with engine.batch_tokens(max_batch_tokens):   # each chunk under the evaluation's token budget
            return {b: _evaluate_bench(model_name, engine, tokenizer, b, problems[b], Path(out_dir) / b,
                                       params, chunking, grader, progress, resume,
                                       dict(settings, data=get_benchmark(b).source(data_dir)), shard)
                    for b in bench_names}
    finally:
        if own_grader:
            grader.close()


def _check_chunking(engine, batch_size, max_batch_tokens, too_long: str, max_new_tokens: int) -> int | None:
    """Validate the chunking settings; returns the engine's context length (None: unknown)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise HarnessError(f"eval batch_size must be a positive integer (got {batch_size!r})")
    if isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens < 1:
        raise HarnessError(f"eval max_batch_tokens must be a positive integer (got {max_batch_tokens!r})")
    if too_long not in TOO_LONG:
        raise HarnessError(f"eval too_long must be one of {', '.join(TOO_LONG)} (got {too_long!r})")
    context = engine.max_context
    if context is not None and context <= max_new_tokens:
        raise HarnessError(f"max_new_tokens ({max_new_tokens}) leaves no room for a prompt in the "
                           f"model's context ({context} tokens)")
    return context


def prepare_prompts(spec, problems: list[Problem], tokenizer, engine, max_prompt_tokens: int | None,
                    too_long: str) -> tuple[list[Problem], list, list[int], list[str], list[str], list[str]]:
    """Prompts of the problems that will be sampled, with the too-long policy applied.

    Returns ``(kept problems, prompts, prompt lengths in tokens, skipped ids, truncated ids, prompt texts)``;
    prompts are token-id lists for engines that take them (``accepts_token_ids``), else strings, and the
    texts are the prompts as sent (a truncated prompt's kept tokens, decoded). Tokenizers that cannot
    encode (test doubles) are measured in characters.
    """
    texts = [spec.prompt(p, tokenizer) for p in problems]
    if callable(tokenizer):
        ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    else:
        ids = None
    as_ids = ids is not None and engine.accepts_token_ids
    kept, prompts, lengths, skipped, truncated, sent = [], [], [], [], [], []
    for i, (p, text) in enumerate(zip(problems, texts)):
        length = len(ids[i]) if ids is not None else len(text)
        prompt = ids[i] if as_ids else text
        if max_prompt_tokens is not None and length > max_prompt_tokens:
            if too_long == "skip":
                skipped.append(p.id)
                continue
            truncated.append(p.id)
            cut = ids[i][-max_prompt_tokens:]
            text = tokenizer.decode(cut)
            prompt, length = (cut if as_ids else text), max_prompt_tokens
        kept.append(p)
        prompts.append(prompt)
        lengths.append(length)
        sent.append(text)
    return kept, prompts, lengths, skipped, truncated, sent


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


def _evaluate_bench(model_name, engine, tokenizer, bench: str, problems: list[Problem], bench_dir: Path,
                    params: SamplingParams, chunking: dict, grader, progress: bool, resume: bool,
                    settings: dict, shard: tuple[int, int] = (0, 1)) -> dict:
    from tqdm.auto import tqdm

    rank, world = shard
    spec = get_benchmark(bench)
    n = params.n
    problems, prompts, lengths, skipped, truncated, texts = prepare_prompts(
        spec, problems, tokenizer, engine, chunking["max_prompt_tokens"], chunking["too_long"])
    if not problems:
        raise HarnessError(f"{bench}: every prompt is longer than the {chunking['max_prompt_tokens']} tokens "
                           "the model's context leaves beside max_new_tokens; pass eval.too_long=truncate "
                           "or a lower max_new_tokens")
    chunks = token_batches(lengths, params.max_new_tokens, chunking["max_batch_tokens"],
                           max_rows=chunking["batch_size"], weight=n)
    samples_path, done = _samples_file(bench_dir, n, {p.id for p in problems}, resume, shard)
    t0 = time.time()
    bar = tqdm(total=len(problems) * n, initial=sum(len(v) for v in done.values()), desc=bench,
               unit="sample", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    try:
        for k, chunk_idx in enumerate(chunks):
            stop.check(f"during the evaluation of {bench} (finished samples are kept)")
            if k % world != rank:
                continue
            todo = [i for i in chunk_idx if problems[i].id not in done]
            if not todo:
                continue
            chunk = [problems[i] for i in todo]
            bar.set_postfix(_postfix(done, k, len(chunks)))
            with ticking(bar):   # a real model's chunk takes minutes: the elapsed time keeps moving
                gens = engine.generate([prompts[i] for i in todo], params,
                                       seed=chunk_seed(params.seed, bench, k))             # [P*n]
            if len(gens) != len(chunk) * n:
                raise RuntimeError(f"engine returned {len(gens)} generations for {len(chunk)} prompts x n={n}")
            records = _grade(grader, gens, chunk, [texts[i] for i in todo], bench)
            append_jsonl(samples_path, records)
            for r in records:
                done.setdefault(r["problem_id"], []).append(r)
            bar.set_postfix(_postfix(done, k + 1, len(chunks)), refresh=False)
            bar.update(len(records))
    finally:
        bar.close()
    if world > 1:
        done = _merge_shards(bench_dir, n, problems, world, rank)
        if rank != 0:
            return {}
    summary = {"schema_version": SCHEMA_VERSION, "bench": bench, "model": model_name, "n": n,
               **summarize({p.id: done[p.id] for p in problems}, n),
               "problem_ids_sha256": problem_ids_sha256(p.id for p in problems),
               "skipped_too_long": {"count": len(skipped), "ids": skipped},
               "truncated_too_long": {"count": len(truncated), "ids": truncated},
               "settings": settings, "grader": grader.describe(bench), "versions": package_versions(),
               "time_s": round(time.time() - t0, 3)}
    _warn_too_long(bench, skipped, truncated, chunking["max_prompt_tokens"])
    atomic_write_json(bench_dir / "summary.json", summary)
    return summary


def _samples_file(bench_dir: Path, n: int, ids: set[str], resume: bool,
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
        done.update(_load_done_readonly(merged_path, n, ids))
    return samples_path, done


def _warn_too_long(bench: str, skipped: list[str], truncated: list[str], limit: int | None) -> None:
    for ids, what in ((skipped, "skipped (eval.too_long=truncate keeps them)"), (truncated, "left-truncated")):
        if ids:
            log.warning("%s: %d prompts longer than %d tokens (context minus max_new_tokens) %s: %s", bench,
                        len(ids), limit, what, ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else ""))


def _grade(grader, gens, chunk: list[Problem], prompts: list[str], bench: str) -> list[dict]:
    """One samples.jsonl record per generation, in the engine's (prompt-major) order.

    A record holds everything needed to check its verdict by hand: the prompt as sent, the gold answer,
    the response and what the grader extracted from it.
    """
    results = grader.grade([g.text for g in gens], [chunk[g.prompt_index].answer for g in gens], bench,
                           [g.finish_reason for g in gens])
    seen: dict[int, int] = defaultdict(int)
    records = []
    for g, res in zip(gens, results):
        problem = chunk[g.prompt_index]
        records.append({"problem_id": problem.id, "sample_index": seen[g.prompt_index],
                        "prompt": prompts[g.prompt_index], "gold": problem.answer,
                        "response": g.text, "extracted": res.extracted, "correct": res.correct,
                        "num_tokens": len(g.response_ids), "finish_reason": g.finish_reason})
        seen[g.prompt_index] += 1
    return records


def _load_done_readonly(path: Path, n: int, ids: set[str]) -> dict[str, list[dict]]:
    by_id: dict[str, list[dict]] = defaultdict(list)
    for r in read_jsonl(path):
        by_id[r["problem_id"]].append(r)
    return {pid: sorted(rs, key=lambda r: r["sample_index"]) for pid, rs in by_id.items()
            if pid in ids and sorted(r["sample_index"] for r in rs) == list(range(n))}


def _merge_shards(bench_dir: Path, n: int, problems: list[Problem], world: int, rank: int):
    """Gather every rank's samples into samples.jsonl (rank 0), each (problem, sample) exactly once."""
    import torch.distributed as dist

    dist.barrier()
    done: dict[str, list[dict]] = {}
    if rank == 0:
        ids = {p.id for p in problems}
        merged = bench_dir / "samples.jsonl"
        sources = [merged] + [bench_dir / f"samples.rank{r}.jsonl" for r in range(world)]
        for path in sources:
            if path.exists():
                done.update(_load_done_readonly(path, n, ids))
        missing = [p.id for p in problems if p.id not in done]
        if missing:
            raise RuntimeError(f"{bench_dir.name}: {len(missing)} problems have no complete samples after merging")
        atomic_write_text(merged, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                          for p in problems for r in done[p.id]))
        for path in sources[1:]:
            path.unlink(missing_ok=True)
    dist.barrier()
    return done


def _postfix(done: dict[str, list[dict]], chunks_done: int, chunks: int) -> dict:
    """The bar's postfix: generation chunks done of all, and the accuracy so far (once there is one)."""
    total = sum(len(v) for v in done.values())
    out = {"chunks": f"{chunks_done}/{chunks}"}
    if total:
        out["acc"] = f"{sum(r['correct'] for v in done.values() for r in v) / total:.3f}"
    return out
