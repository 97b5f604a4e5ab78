"""The benchmark registry itself, below every module that needs to look a benchmark up by name.

The specs register in :mod:`benchmarks` (``benchmarks/__init__.py``), which Python always runs before any
``benchmarks.*`` module, so the registry is filled whenever it is read.
"""

from __future__ import annotations

from common.registry import Registry

BENCHMARKS: Registry = Registry("benchmark")
