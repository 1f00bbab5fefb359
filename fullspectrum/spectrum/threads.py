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
    :data:`MAX_ENGINE_THREADS`, and within the process's thread budget: ``OMP_NUM_THREADS`` where
    it is set (a spectra worker's and a sweep point's: one) and torch's threads where torch is
    loaded (a training loop's; a PAGS worker's: one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    budget = os.environ.get("OMP_NUM_THREADS", "").strip()
    if budget.isdigit() and int(budget) > 0:
        cores = min(cores, int(budget))
    torch = sys.modules.get("torch")
    if torch is not None:
        cores = min(cores, torch.get_num_threads())
    return max(1, min(cores, MAX_ENGINE_THREADS))


_inside = threading.local()  # .busy: this thread is running run_all's pieces
_pool: dict[str, object] = {"pool": None, "pid": None, "workers": 0}


def run_all(tasks: Sequence[Callable[[], T]], shared: Sequence[bool] | None = None) -> list[T]:
    """``[task() for task in tasks]``, the tasks taken in turn by up to :func:`engine_threads`
    threads. ``shared[k]`` (default: every task) says task ``k`` spends its time outside the GIL
    (compiled loops, BLAS) and may run on another thread; the others run on this one, first: two
    tasks that hold the GIL only slow each other down (measured: two threads of a layer's dense class
    solves took 40 ms where one took 21 ms). Inside a task, or with one thread, one after the other.
    An exception is raised once every started task has ended."""
    shared = [True] * len(tasks) if shared is None else list(shared)
    threads = min(engine_threads(), sum(shared) + (not all(shared)))
    if threads <= 1 or getattr(_inside, "busy", False):
        return [task() for task in tasks]
    results: list = [None] * len(tasks)
    own = [k for k in range(len(tasks)) if not shared[k]] + [k for k in range(len(tasks)) if shared[k]]
    anyone = [k for k in range(len(tasks)) if shared[k]]
    taken: set[int] = set()
    lock = threading.Lock()

    def drain(order: list[int]) -> None:
        _inside.busy = True
        try:
            for k in order:  # each thread claims the next task it may take: the long ones do not queue
                with lock:
                    if k in taken:
                        continue
                    taken.add(k)
                results[k] = tasks[k]()
        finally:
            _inside.busy = False

    futures = [_worker_pool(threads - 1).submit(drain, anyone) for _ in range(threads - 1)]
    try:
        drain(own)
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
