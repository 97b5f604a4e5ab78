"""Stopping a run on SIGTERM or SIGINT at the next safe point, resumable with ``--resume``.

SLURM preemption and time limits, ``timeout`` and ``kill`` send SIGTERM; Ctrl-C sends SIGINT. While
:func:`stop_on_signals` is active, either signal only records a request; the run then stops where
nothing is lost: training after the current RL step (it writes ``checkpoint/last`` first), evaluation
before its next generation chunk (every finished chunk is already in ``samples.jsonl``). The command
exits with ``128 + signal``: 143 for SIGTERM, 130 for SIGINT (the shell's convention), and
``harness run --resume`` continues to the same result as an uninterrupted run. A second Ctrl-C stops at
once (KeyboardInterrupt; ``--resume`` still continues from the last checkpoint).

Lightning installs its own SIGTERM handler while fitting (which would end the process at the end of
the epoch); :func:`install` is called again once training starts so that this module's handler is
the one in charge.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

from common.errors import HarnessError

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requested: list[int] = []


class Interrupted(HarnessError):
    """The run stopped on a signal at a safe point; exit code 128 + signal number (143 SIGTERM, 130 SIGINT)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def _handler(signum, frame) -> None:
    if _requested and signum == signal.SIGINT:
        raise KeyboardInterrupt
    if not _requested:
        log.warning("received %s: stopping at the next safe point", signal.Signals(signum).name)
        _requested.append(signum)


def install() -> None:
    """Make this module's handler the one for SIGTERM and SIGINT (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)


@contextlib.contextmanager
def stop_on_signals():
    """Record SIGTERM/SIGINT as stop requests for the duration of the block, then restore the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    _requested.clear()
    install()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _requested.clear()


def requested() -> int | None:
    """The signal number of a pending stop request, or None."""
    return _requested[0] if _requested else None


def check(where: str) -> None:
    """Raise :class:`Interrupted` when a stop was requested; ``where`` names the safe point for the message."""
    signum = requested()
    if signum is not None:
        raise Interrupted(signum, f"stopped by {signal.Signals(signum).name} {where}")
