"""Evaluation: sample n responses per problem, grade them, write ``samples.jsonl`` + ``summary.json``.

The protocol is PRL's (``eval/gen.py`` + ``eval/eval.py``, arXiv 2601.10201): the paper prompt (chat template when
the tokenizer has one), n = 8 samples at temperature 1.0, graded by Math-Verify (:mod:`benchmarks.grading`); reported
as avg@n, maj@n and the unbiased pass@k for every k in 1, 2, 4, ..., n (:mod:`harness.metrics`; PRL's pass@8, "any
sample correct", is the same number at k = n), plus FRPO's bootstrap pass@k at k = n (``bootstrap_pass@n``: mean and
std over 1,000 replicates; arXiv 2601.10201 v2, Table 1).

Memory is bounded: a prompt longer than the context minus ``max_new_tokens`` is skipped or left-truncated
(``eval.too_long``; listed in the summary), and problems are sampled in chunks of at most ``eval.batch_size`` prompts
with ``prompts x n x (longest prompt + max_new_tokens) <= eval.max_batch_tokens``. Each graded chunk is appended to
``samples.jsonl`` at once, and chunk seeds depend only on the problems and the settings, so ``resume`` gives the
samples an uninterrupted run would. Details: ``docs/evaluation.md`` and ``docs/memory.md``.

    python -m harness eval --model tiny --bench arith --n 4
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

from tqdm.auto import tqdm

from benchmarks import Problem, get_benchmark
from benchmarks.grading import Grader
from common.errors import HarnessError
from common.versions import package_versions
from harness import stop
from harness.config import RunConfig
from harness.engines import SamplingParams, token_batches
from harness.metrics import summarize
from harness.eval.samples import merge_shards, samples_file
from harness.progress import ticking
from harness.results import append_jsonl, atomic_write_json

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


def problem_ids_sha256(ids) -> str:
    """sha256 of the sorted problem ids joined by newlines (identifies the evaluated subset)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def chunk_seed(seed: int, bench: str, start: int) -> int:
    """Sampling seed of chunk number ``start`` (independent of resumption)."""
    return (seed * 1_000_003 + zlib.crc32(f"{bench}/{start}".encode())) % (2 ** 31)


def load_problems(cfg: RunConfig, benches: Sequence[str]) -> dict[str, list[Problem]]:
    """Each benchmark's problems, ``eval.limit`` / ``eval.bench_limit`` applied (loaded and validated up front)."""
    return {b: get_benchmark(b).load(cfg.data.data_dir, limit=cfg.eval.limit_of(b)) for b in benches}


def sampling_settings(cfg: RunConfig, bench: str) -> dict:
    """What a benchmark's samples depend on besides the engine, its precision and the prompt format: recorded in
    ``summary.json`` and hashed into the base-evaluation cache key (:func:`harness.train.flow.base_key`).
    ``eval.max_new_tokens`` 0 is the rollouts' limit."""
    e = cfg.eval
    return {"n": e.n, "temperature": e.temperature, "top_p": e.top_p,
            "max_new_tokens": e.max_new_tokens or cfg.rollout.max_new_tokens, "seed": cfg.seed,
            "limit": e.limit_of(bench), "batch_size": e.batch_size, "max_batch_tokens": e.max_batch_tokens,
            "too_long": e.too_long}


def prompt_format(tokenizer) -> str:
    return "chat_template" if getattr(tokenizer, "chat_template", None) else "plain"


def evaluate(engine, tokenizer, benches: Mapping[str, list[Problem]], out_dir: Path, cfg: RunConfig, *,
             resume: bool = False, shard: tuple[int, int] = (0, 1), grader=None) -> dict[str, dict]:
    """Evaluate one model on several benchmarks with the settings of ``cfg.eval`` (seed ``cfg.seed``).

    Args:
        engine: a :class:`harness.engines.RolloutEngine` (it samples in its own precision).
        tokenizer: used only to build prompts (chat template or plain text).
        benches: ``{benchmark name: problems}`` (:func:`load_problems`).
        out_dir: ``<out_dir>/<bench>/{samples.jsonl,summary.json}`` are written.
        cfg: a :class:`harness.config.RunConfig`; ``model.name`` is recorded in the summaries, ``data.data_dir``
            identifies the data, ``log.progress`` shows a bar per benchmark.
        resume: keep complete problems already in ``samples.jsonl`` instead of starting over.
        shard: ``(rank, world)`` under ``torch.distributed``: rank r samples the generation chunks
            ``r, r + world, ...`` (chunk seeds are the single-process ones), writes
            ``samples.rank<r>.jsonl``, and rank 0 merges them into ``samples.jsonl`` and writes the
            summary (other ranks return ``{}``). Every rank must call this.
        grader: a :class:`benchmarks.grading.Grader` to share (else one is created and closed); the one
            exception to six parameters: a run grades its rewards and evaluations with one worker pool.

    Returns:
        ``{bench: summary}`` with the content of each ``summary.json``.
    """
    own_grader = grader is None
    grader = Grader() if own_grader else grader
    try:
        with engine.batch_tokens(cfg.eval.max_batch_tokens):   # each chunk under the evaluation's token budget
            return {b: _evaluate_bench(engine, tokenizer, b, problems, Path(out_dir) / b, cfg, grader, resume, shard)
                    for b, problems in benches.items()}
    finally:
        if own_grader:
            grader.close()


def _max_prompt_tokens(engine, max_new_tokens: int) -> int | None:
    """The longest prompt the engine's context leaves beside ``max_new_tokens`` (None: unknown)."""
    context = engine.max_context
    if context is not None and context <= max_new_tokens:
        raise HarnessError(f"max_new_tokens ({max_new_tokens}) leaves no room for a prompt in the "
                           f"model's context ({context} tokens)")
    return context - max_new_tokens if context is not None else None


class Prompts(NamedTuple):
    problems: list[Problem]      # the kept problems
    prompts: list                # token-id lists or strings, as the engine takes them
    lengths: list[int]           # prompt lengths in tokens
    skipped: list[str]           # ids of too-long prompts left out (eval.too_long=skip)
    truncated: list[str]         # ids of too-long prompts left-truncated (eval.too_long=truncate)
    texts: list[str]             # the prompts as sent


def prepare_prompts(spec, problems: list[Problem], tokenizer, engine, max_prompt_tokens: int | None,
                    too_long: str) -> Prompts:
    """Prompts of the problems that will be sampled, with the too-long policy applied.

    Prompts are token-id lists for engines that take them (``accepts_token_ids``), else strings, and the
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
    return Prompts(kept, prompts, lengths, skipped, truncated, sent)


def _evaluate_bench(engine, tokenizer, bench: str, problems: list[Problem], bench_dir: Path, cfg: RunConfig,
                    grader, resume: bool, shard: tuple[int, int]) -> dict:
    """Sample, grade and write one benchmark; the summary (rank 0; ``{}`` on the other ranks)."""
    settings = sampling_settings(cfg, bench)
    n, max_new = settings.pop("n"), settings["max_new_tokens"]
    params = SamplingParams(n=n, temperature=settings["temperature"], top_p=settings["top_p"],
                            max_new_tokens=max_new, seed=cfg.seed)   # validates
    max_prompt = _max_prompt_tokens(engine, max_new)
    settings.update(max_prompt_tokens=max_prompt, engine=engine.kind, dtype=engine.sample_dtype,
                    prompt=prompt_format(tokenizer), data=get_benchmark(bench).source(cfg.data.data_dir))
    p = prepare_prompts(get_benchmark(bench), problems, tokenizer, engine, max_prompt, cfg.eval.too_long)
    if not p.problems:
        raise HarnessError(f"{bench}: every prompt is longer than the {max_prompt} tokens "
                           "the model's context leaves beside max_new_tokens; pass eval.too_long=truncate "
                           "or a lower max_new_tokens")
    chunks = token_batches(p.lengths, max_new, cfg.eval.max_batch_tokens, max_rows=cfg.eval.batch_size, weight=n)
    samples_path, done = samples_file(bench_dir, n, {q.id for q in p.problems}, resume, shard)
    t0 = time.time()
    _sample(engine, bench, p, chunks, params, samples_path, done, grader, cfg.log.progress, shard)
    rank, world = shard
    if world > 1:
        done = merge_shards(bench_dir, n, p.problems, world, rank)
        if rank != 0:
            return {}
    summary = {"schema_version": SCHEMA_VERSION, "bench": bench, "model": cfg.model.name, "n": n,
               **summarize({q.id: done[q.id] for q in p.problems}, n),
               "problem_ids_sha256": problem_ids_sha256(q.id for q in p.problems),
               "skipped_too_long": {"count": len(p.skipped), "ids": p.skipped},
               "truncated_too_long": {"count": len(p.truncated), "ids": p.truncated},
               "settings": settings, "grader": grader.describe(bench), "versions": package_versions(),
               "time_s": round(time.time() - t0, 3)}
    _warn_too_long(bench, p.skipped, p.truncated, max_prompt)
    atomic_write_json(bench_dir / "summary.json", summary)
    return summary


def _sample(engine, bench: str, p: Prompts, chunks: list[list[int]], params: SamplingParams, samples_path: Path,
            done: dict[str, list[dict]], grader, progress: bool, shard: tuple[int, int]) -> None:
    """Sample and grade this rank's chunks that are not done, appending each chunk's records as it finishes."""
    rank, world = shard
    n = params.n
    bar = tqdm(total=len(p.problems) * n, initial=sum(len(v) for v in done.values()), desc=bench,
               unit="sample", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    try:
        for k, chunk_idx in enumerate(chunks):
            stop.check(f"during the evaluation of {bench} (finished samples are kept)")
            todo = [i for i in chunk_idx if p.problems[i].id not in done] if k % world == rank else []
            if not todo:
                continue
            chunk = [p.problems[i] for i in todo]
            bar.set_postfix(_postfix(done, k, len(chunks)))
            with ticking(bar):   # a real model's chunk takes minutes: the elapsed time keeps moving
                gens = engine.generate([p.prompts[i] for i in todo], params,
                                       seed=chunk_seed(params.seed, bench, k))             # [P*n]
            if len(gens) != len(chunk) * n:
                raise RuntimeError(f"engine returned {len(gens)} generations for {len(chunk)} prompts x n={n}")
            records = _grade(grader, gens, chunk, [p.texts[i] for i in todo], bench)
            append_jsonl(samples_path, records)
            for r in records:
                done.setdefault(r["problem_id"], []).append(r)
            bar.set_postfix(_postfix(done, k + 1, len(chunks)), refresh=False)
            bar.update(len(records))
    finally:
        bar.close()


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


def _postfix(done: dict[str, list[dict]], chunks_done: int, chunks: int) -> dict:
    """The bar's postfix: generation chunks done of all, and the accuracy so far (once there is one)."""
    total = sum(len(v) for v in done.values())
    out = {"chunks": f"{chunks_done}/{chunks}"}
    if total:
        out["acc"] = f"{sum(r['correct'] for v in done.values() for r in v) / total:.3f}"
    return out
