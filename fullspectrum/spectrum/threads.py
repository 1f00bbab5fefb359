"""The engine's threads: one BLAS thread while it runs, and its own few threads for independent work.

The engine's linear algebra is many small dense SVDs and sparse matrix-vector
products, where BLAS threads cost more than they give; worse, right after a
PyTorch training step the OpenMP threads of torch are still spinning, and a
multi-threaded OpenBLAS call then fights them for the cores (measured: a
128×256 SVD went from 1.5 ms to 20 ms inside a training loop). The limit is
scoped to the call and restored afterwards.

What does pay is running whole independent pieces of work side by side (a layer's Lanczos runs and
its dense class solves; the row pieces of a large dense product): :func:`run_all` spreads them over
:func:`engine_threads` threads, this one included. Each piece computes what it would alone, so the
values are the same bits whatever the threads. A piece that itself asks for :func:`run_all` runs
its own pieces in its thread (no pool thread ever waits on another).
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import ThreadpoolController

F = TypeVar("F", bound=Callable)
T = TypeVar("T")
_controller: ThreadpoolController | None = None
MAX_ENGINE_THREADS = 4
"""Most threads :func:`run_all` uses: the work it is given comes in a few pieces."""


def one_blas_thread(function: F) -> F:
    """Run ``function`` with numpy/scipy's BLAS limited to one thread."""

    @functools.wraps(function)
    def limited(*args, **kwargs):
        global _controller
        if _controller is None:  # created lazily: it sees the BLAS libraries loaded by then
            _controller = ThreadpoolController()
        with _controller.limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return limited  # type: ignore[return-value]


def engine_threads() -> int:
    """Threads :func:`run_all` may use: the cores this process may run on, at most
    :data:`MAX_ENGINE_THREADS`, and no more than torch's threads where torch is loaded (the budget
    of a training loop or of a worker: PAGS and sweep workers run on one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    torch = sys.modules.get("torch")
    if torch is not None:
        cores = min(cores, torch.get_num_threads())
    return max(1, min(cores, MAX_ENGINE_THREADS))


_inside = threading.local()  # .busy: this thread is running run_all's pieces
_pool: dict[str, object] = {"pool": None, "pid": None, "workers": 0}


def run_all(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """``[task() for task in tasks]``, the tasks taken in turn by up to :func:`engine_threads`
    threads (this one included). Inside a task, or with one thread, one after the other. An
    exception is raised once every started task has ended."""
    threads = min(engine_threads(), len(tasks))
    if threads <= 1 or getattr(_inside, "busy", False):
        return [task() for task in tasks]
    results: list = [None] * len(tasks)
    claims = itertools.count()  # each thread claims the next task: the long ones do not queue

    def drain() -> None:
        _inside.busy = True
        try:
            while (k := next(claims)) < len(tasks):
                results[k] = tasks[k]()
        finally:
            _inside.busy = False

    futures = [_worker_pool(threads - 1).submit(drain) for _ in range(threads - 1)]
    try:
        drain()
    finally:
        for future in futures:
            future.exception()  # wait for each, then raise the first failure below
    for future in futures:
        future.result()
    return results


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, made again in a forked child (whose copy has no threads)."""
    if _pool["pid"] != os.getpid() or int(_pool["workers"]) < workers:
        _pool.update(
            pool=ThreadPoolExecutor(workers, thread_name_prefix="fullspectrum-engine"),
            pid=os.getpid(),
            workers=workers,
        )
    return _pool["pool"]  # type: ignore[return-value]
