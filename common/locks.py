"""Process locks that keep a run (or a sweep) from running twice at once: an exclusive ``flock`` on a file holding
the holder's pid, released by the kernel when the holding process dies.

    python -c "from common.locks import hold_lock; from pathlib import Path; \
with hold_lock(Path('/tmp/x.lock'), 'demo'): print('held')"
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from common.errors import HarnessError

BUSY_EXIT = 3                       # exit code when a run (or the sweep) is already running in another process


class Busy(HarnessError):
    """A run or sweep whose lock another live process holds."""

    exit_code = BUSY_EXIT


@contextlib.contextmanager
def hold_lock(path: Path, what: str, hint: str = ""):
    """Hold an exclusive ``flock`` on ``path`` (its content: our pid) or raise :class:`Busy` naming the holder
    (``hint`` ends the message, e.g. how to check on it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{what} is already running (pid {_read_pid(path) or '?'} holds {path}); wait for "
                       f"it to end{hint}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def lock_holder(path: Path) -> int | None:
    """The pid of the live process holding ``path``'s lock, else None (the lock is free or absent)."""
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(path) or -1
    finally:
        os.close(fd)
    return None
