"""A small process pool with a hard per-task timeout: a stuck task's worker is killed and replaced.

Why not ``concurrent.futures`` or ``pebble``: a ``ProcessPoolExecutor`` cannot kill one stuck worker,
and both start workers with ``fork`` (unsafe in a parent that holds CUDA, vLLM or tokenizer threads)
or with ``spawn``/``forkserver``, which re-import the caller's ``__main__`` in every worker (a
training script, or ``harness.__main__`` with torch). Workers here are fresh interpreters started
with ``subprocess`` that import only the task's module; tasks and results travel as pickles over
two pipes (``multiprocessing.connection.Connection``).

Each worker runs one task at a time. The parent gives it ``timeout`` seconds from the moment the
task is sent to an idle, fully started worker, then SIGKILLs it and starts a replacement. A worker
also caps its own CPU time per task (``RLIMIT_CPU``, several times the timeout) so that it cannot
outlive a parent that died without cleaning up, and exits when its task pipe closes.

    python -c "from benchmarks.pool import TimeoutPool; p = TimeoutPool('math:factorial', timeout=1); \
print(p.map([(5,), (10**7,)])); p.close()"
"""

from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Sequence

OK, TIMEOUT, ERROR = "ok", "timeout", "error"
_ROOT = str(Path(__file__).resolve().parents[1])
_STARTUP_TIMEOUT = 120.0


def _resolve(path: str):
    module, _, attr = path.partition(":")
    obj = __import__(module, fromlist=[attr])
    return getattr(obj, attr)


def worker_main(task_fd: int, result_fd: int, func: str, init: str | None, cpu_cap: float) -> None:
    """Entry point of a worker process: ``init()`` once, then answer tasks until the pipe closes."""
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    try:
        if init:
            _resolve(init)()
        fn = _resolve(func)
    except BaseException as err:  # report why the worker cannot start, then exit
        results.send((ERROR, f"{type(err).__name__}: {err}"))
        return
    results.send((OK, "ready"))
    while True:
        try:
            args = tasks.recv()
        except (EOFError, OSError):
            return
        used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        try:  # a task may burn at most cpu_cap more CPU seconds (SIGXCPU ends the process)
            _, hard = resource.getrlimit(resource.RLIMIT_CPU)
            soft = int(used + cpu_cap) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (soft if hard < 0 else min(soft, hard), hard))
        except (ValueError, OSError):  # pragma: no cover
            pass
        try:
            reply = (OK, fn(*args))
        except BaseException as err:  # noqa: BLE001 - any failure is the task's result
            reply = (ERROR, f"{type(err).__name__}: {str(err)[:200]}")
        try:
            results.send(reply)
        except (pickle.PicklingError, TypeError) as err:
            results.send((ERROR, f"unpicklable result: {err}"))


class _Worker:
    def __init__(self, func: str, init: str | None, cpu_cap: float) -> None:
        task_r, task_w = os.pipe()
        res_r, res_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
        code = (f"from benchmarks.pool import worker_main; "
                f"worker_main({task_r}, {res_w}, {func!r}, {init!r}, {cpu_cap!r})")
        self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(task_r, res_w),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     env=env, cwd=_ROOT)
        os.close(task_r)
        os.close(res_w)
        self.tasks = Connection(task_w, readable=False)
        self.results = Connection(res_r, writable=False)
        self.ready = False
        self.started = time.monotonic()
        self.job: tuple[int, float] | None = None   # (task index, deadline)

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:  # pragma: no cover - already gone
            pass
        self.proc.wait()
        self.tasks.close()
        self.results.close()


def _kill_all(workers: list[_Worker]) -> None:
    for w in workers:
        w.kill()
    workers.clear()


class TimeoutPool:
    """Run ``func(*args)`` for many argument tuples in ``workers`` processes, each under ``timeout``.

    Args:
        func: ``"module:function"`` importable in a fresh interpreter (the repo root is on its path).
        workers: number of worker processes.
        timeout: seconds a single task may run before its worker is killed.
        init: optional ``"module:function"`` called once in every new worker.
    """

    def __init__(self, func: str, *, workers: int = 2, timeout: float = 5.0,
                 init: str | None = None) -> None:
        self.func, self.init, self.timeout = func, init, float(timeout)
        self.size = workers
        self.restarts = 0
        self._workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._workers)

    def _spawn(self) -> _Worker:
        return _Worker(self.func, self.init, cpu_cap=max(10.0, 4 * self.timeout))

    def map(self, arg_list: Sequence[tuple]) -> list[tuple[str, Any]]:
        """Results in order: ``("ok", value)``, ``("timeout", None)`` or ``("error", message)``."""
        while len(self._workers) < self.size:
            self._workers.append(self._spawn())
        results: list[tuple[str, Any] | None] = [None] * len(arg_list)
        queue = deque(range(len(arg_list)))
        while queue or any(w.job for w in self._workers):
            now = time.monotonic()
            for w in self._workers:
                if w.ready and w.job is None and queue:
                    i = queue.popleft()
                    w.tasks.send(arg_list[i])
                    w.job = (i, time.monotonic() + self.timeout)
            deadlines = [w.job[1] for w in self._workers if w.job]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else 1.0
            for conn in wait([w.results for w in self._workers], timeout=wait_s):
                w = next(w for w in self._workers if w.results is conn)
                self._receive(w, results)
            now = time.monotonic()
            for k, w in enumerate(self._workers):
                if w.job and now >= w.job[1]:
                    results[w.job[0]] = (TIMEOUT, None)
                    self._replace(k)
                elif not w.ready and now - w.started > _STARTUP_TIMEOUT:
                    raise RuntimeError(f"grading worker did not start within {_STARTUP_TIMEOUT:.0f} s")
        return results  # type: ignore[return-value]

    def _receive(self, w: _Worker, results: list) -> None:
        k = self._workers.index(w)
        try:
            status, value = w.results.recv()
        except (EOFError, OSError):  # the worker died (memory, SIGXCPU, segfault, killed)
            if not w.ready:
                raise RuntimeError(f"grading worker exited while starting (code {w.proc.wait()})")
            if w.job is not None:
                results[w.job[0]] = (ERROR, f"worker died (exit code {w.proc.wait()})")
            self._replace(k)
            return
        if not w.ready:
            if status != OK:
                raise RuntimeError(f"grading worker failed to start: {value}")
            w.ready = True
        elif w.job is not None:
            results[w.job[0]] = (status, value)
            w.job = None

    def _replace(self, k: int) -> None:
        self._workers[k].kill()
        self._workers[k] = self._spawn()
        self.restarts += 1

    def close(self) -> None:
        self._finalizer()
