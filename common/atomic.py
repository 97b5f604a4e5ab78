"""Atomic writes, the one home for them: a file or a folder appears whole or not at all.

A file is written to a temp file beside it and moved in with ``os.replace``; a folder is built in a temp folder
beside it and moved in the same way. A crash leaves at most a dot-named temp file or folder behind, never a torn
result.

    python -c "from common.atomic import atomic_write_text; atomic_write_text('/tmp/x.txt', 'hi')"
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Create ``path`` from what ``write(binary file)`` writes, via a temp file, fsync and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 (unencodable lone surrogates become ``\\udcXX`` escapes: exact inside JSON
    strings, visible rather than a crash elsewhere)."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8", errors="backslashreplace")))


@contextlib.contextmanager
def atomic_folder(dest: str | os.PathLike, *, replace: bool) -> Iterator[Path]:
    """Yield an empty temp folder beside ``dest``; when the block succeeds it becomes ``dest``.

    ``replace=True``: an existing ``dest`` is replaced; ``replace=False``: an existing ``dest`` (another process
    finished first) is kept and the new folder dropped. On an exception the temp folder is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        yield tmp
        if replace:
            swap_in(tmp, dest)
        else:
            with contextlib.suppress(OSError):
                os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def swap_in(tmp: str | os.PathLike, dest: str | os.PathLike, old: str | os.PathLike | None = None) -> None:
    """Replace the folder ``dest`` by the complete folder ``tmp``. The previous ``dest`` survives as ``old``
    (default ``.<name>.old`` beside it) until the new one is in place, so a crash in between leaves one of the two
    whole (``harness.train.checkpoint.recover`` finishes or rolls back such a swap)."""
    tmp, dest = Path(tmp), Path(dest)
    old = Path(old) if old is not None else dest.parent / f".{dest.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
