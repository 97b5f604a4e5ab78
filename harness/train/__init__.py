"""One training run, in the order it happens: :mod:`.prepare` (check all input, load, lock and write the run
directory) -> :mod:`.flow` (evaluate base, fit, evaluate, close) with :mod:`.loop` (the Lightning RL step), and their
parts: :mod:`.data` (training problems and reward), :mod:`.batching` (micro-batches by tokens), :mod:`.logprobs`
(chunked token log-probs), :mod:`.steps` (step metrics, loader), :mod:`.checkpoint` (resume), :mod:`.wandb_log`.

May import: :mod:`harness.eval`, :mod:`harness.models`, :mod:`harness.engines`, the base modules
(:mod:`harness.config`, :mod:`harness.results`, ...), :mod:`algorithms`, :mod:`benchmarks`, :mod:`common`.

    python -m harness run --algo prl --bench arith --steps 3
"""
