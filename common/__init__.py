"""The base layer every package imports downward: ``algorithms``, ``benchmarks`` and ``harness`` all build on it,
and it imports none of them.

- :mod:`common.errors`: :class:`HarnessError`, the one-line user error.
- :mod:`common.registry`: the name -> object registry of algorithms, benchmarks and rollout engines.
- :mod:`common.jsonl`: strict JSONL reading with ``file:line`` errors.
- :mod:`common.versions`: the package versions recorded with every run and evaluation.
- :mod:`common.rank`: this process's rank (Lightning's rules) and the ``torch.distributed`` shard.
"""
