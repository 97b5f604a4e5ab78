"""Kept so that ``from harness.registry import Registry`` in code written before the move keeps working;
the registry lives in :mod:`common.registry` (import it from there)."""

from common.registry import Registry  # noqa: F401
