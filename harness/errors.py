"""Kept so that ``from harness.errors import HarnessError`` in code written before the move keeps working;
the error lives in :mod:`common.errors` (import it from there)."""

from common.errors import HarnessError  # noqa: F401
