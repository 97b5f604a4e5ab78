"""Strict JSONL reading: every bad line is a one-line :class:`HarnessError` naming ``file:line``.

Used for everything the user hands in (benchmark files, training data, grading input) and for the
result files tables are computed from. Lines are split on ``\\n`` only, not ``str.splitlines()``:
U+2028, ``\\x85`` ... are valid inside JSON strings. The tolerant reader of the harness's own
append-only logs (which drops a torn last line) is :func:`harness.results.read_jsonl`.

    python -c "from common.jsonl import read_jsonl_strict; print(read_jsonl_strict('x.jsonl'))"
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from common.errors import HarnessError


def read_jsonl_strict(path: str | os.PathLike, *, blank_lines: bool = True, objects: bool = True,
                      empty: str = "") -> list[tuple[int, Any]]:
    """``(line number, value)`` of each JSON line of ``path``.

    Args:
        blank_lines: skip blank lines; False makes a blank line (other than a final newline) an error.
        objects: every value must be a JSON object.
        empty: text added to the "empty file" error (e.g. how many rows were expected).
    Raises:
        HarnessError: ``path: empty file``, ``path:N: not valid UTF-8 ...``, ``path:N: invalid JSON ...``,
        ``path:N: expected a JSON object, got list`` or ``path:N: empty line ...``.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise HarnessError(f"{path}: empty file{empty}")
    body = raw[:-1] if raw.endswith(b"\n") else raw  # the newline ending the last line
    out = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise HarnessError(f"{path}:{lineno}: not valid UTF-8 (byte "
                               f"0x{line[err.start]:02x} at column {err.start + 1})") from None
        if not text.strip():
            if blank_lines:
                continue
            raise HarnessError(f"{path}:{lineno}: empty line (one JSON object per line expected)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise HarnessError(f"{path}:{lineno}: invalid JSON: {err.msg} (column {err.colno})") from None
        if objects and not isinstance(value, dict):
            raise HarnessError(f"{path}:{lineno}: expected a JSON object, got {type(value).__name__}")
        out.append((lineno, value))
    return out
