"""Evaluating a model on benchmarks with the paper's protocol (:mod:`.evaluate`: n samples per problem, Pass@k for
every k, maj@n; resumable chunk by chunk, sharded over ranks) and the shared base-model evaluations
(:mod:`.base_cache`).

May import: :mod:`harness.engines`, :mod:`harness.models`, the base modules (:mod:`harness.config`,
:mod:`harness.metrics`, :mod:`harness.results`, ...), :mod:`benchmarks`, :mod:`common`.

    python -m harness eval --model tiny --bench arith --limit 16 --n 4
"""
