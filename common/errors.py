"""User-facing errors.

Anything the user can fix (a bad flag, config value, data file, model path or run name) raises
:class:`HarnessError`. The CLI prints its message as one line, exits with code 2 and writes nothing;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """An error caused by user input; ``str(err)`` is the one-line message shown to the user."""

    exit_code = 2
