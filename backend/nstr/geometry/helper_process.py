"""A second core for libigl: jobs shared between this process and one spawned helper process.

libigl's Python calls (the AABB distance queries, the fast winding number) hold the GIL and run on one
core, so threads cannot overlap them; a process can. :class:`SharedJobs` hands a list of independent
calls to the helper one at a time, while this process works on something else and then takes whatever
the helper has not started. Each job runs where it is taken, start to end, so the results are the same
numbers as running every job here (tests/test_geometry.py checks that on the scores).

The helper is spawned (never forked: a server has threads, and a forked child can inherit their held
locks), kept for later calls (spawning costs ~0.3 s: Python, numpy and libigl), and replaced if it dies.
If it cannot start, or there is one core, every job runs here.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def helper_pool() -> ProcessPoolExecutor | None:
    """The shared one-process pool, started on first use; None where it cannot help (one core, or a host
    program such as Blender whose executable is not Python and cannot run a spawned child)."""
    global _pool
    if len(os.sched_getaffinity(0)) < 2 or not os.path.basename(sys.executable).startswith("python"):
        return None
    with _pool_lock:
        if _pool is None:
            import multiprocessing

            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    """Forget a helper that failed, so the next call starts a fresh one."""
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start


class SharedJobs:
    """Run ``fn(*args)`` for each args in ``jobs``; the helper starts on the first at once, and each next job
    goes to whichever side is free first. ``results()`` returns the values in order and each job's seconds."""

    def __init__(self, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], pool: ProcessPoolExecutor | None
                 ) -> None:
        self._fn, self._jobs, self._pool = fn, list(jobs), pool
        self._lock = threading.Lock()
        self._next = 0
        self._futures: dict[int, Future] = {}
        if pool is not None:
            self._send()

    def _claim(self) -> int | None:
        with self._lock:
            if self._next >= len(self._jobs):
                return None
            self._next += 1
            return self._next - 1

    def _send(self, _finished: Future | None = None) -> None:
        """Give the helper the next unclaimed job (called again each time it finishes one). Claiming and
        recording the future happen under one lock, so results() never sees a claimed job without it."""
        if _finished is not None and (_finished.cancelled() or _finished.exception() is not None):
            return  # a failed helper takes no more; results() runs the rest here
        with self._lock:
            if self._next >= len(self._jobs):
                return
            i = self._next
            self._next += 1
            try:
                future: Future | None = self._pool.submit(_timed, self._fn, *self._jobs[i])
            except Exception:  # noqa: BLE001 - a helper that cannot take work: results() runs job i here
                future = None
            self._futures[i] = future
        if future is not None:
            future.add_done_callback(self._send)

    def results(self) -> tuple[list[Any], list[float]]:
        values: list[Any] = [None] * len(self._jobs)
        seconds = [0.0] * len(self._jobs)
        while (i := self._claim()) is not None:
            values[i], seconds[i] = _timed(self._fn, *self._jobs[i])
        with self._lock:
            sent = dict(self._futures)
        for i, future in sent.items():
            try:
                if future is None:
                    raise BrokenProcessPool("the helper took no work")
                values[i], seconds[i] = future.result()
            except BrokenProcessPool:  # the helper died (killed, out of memory) or never started: do it here
                if self._pool is not None:
                    _drop_pool(self._pool)
                values[i], seconds[i] = _timed(self._fn, *self._jobs[i])
        return values, seconds
