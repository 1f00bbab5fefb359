"""Generating and scoring a PAGS / PEGS population in worker processes (SPEC §5; FS23).

Candidates are independent, so they are spread over ``workers`` processes of a
``concurrent.futures.ProcessPoolExecutor`` started with ``forkserver`` (or
``spawn`` where the OS lacks it): never a fork of a process holding CUDA or
thread state; the fork server imports torch once, so workers start quickly. Each worker rebuilds the model once from
the ``PopulationContext`` (model name, classes, input shape, state dict) and
then only receives candidate indices and their minibatches. Results come back
in index order, whatever order the workers finish in, and at most
``2 × workers`` candidates are in flight, so memory stays bounded.

Ctrl-C is the parent's alone: the fork server is started with SIGINT blocked
(so neither it nor any worker forked from it can be interrupted, even while it
imports torch) and every worker ignores SIGINT, so a Ctrl-C in the terminal,
which reaches the whole process group, interrupts only the parent; it stops
submitting, lets the candidates in flight finish and shuts the pool down.

``backend="ray"`` scores the candidates as Ray tasks instead
(:func:`~fullspectrum.distributed.tasks.map_ordered`): the context goes into Ray's object store
once, each Ray worker process builds its evaluator once, and the results come back in index
order too, ``2 × workers`` in flight (``workers`` at least the cluster's CPUs), on a GPU each when
the sampling runs on ``cuda``. The session is the caller's
(:func:`~fullspectrum.distributed.ray_session`), else a local Ray started for the sampling.

A result must not depend on the number of workers, nor on the backend. Every candidate is
therefore computed single-threaded (torch and the BLAS under NumPy/SciPy),
in the workers and in the in-process path used for ``workers == 1`` alike, so
floating-point reductions run in the same order everywhere.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import torch

from fullspectrum.distributed import ray_session
from fullspectrum.distributed.tasks import map_ordered
from fullspectrum.sampling.candidates import CandidateEvaluator, CandidateResult, PopulationContext

Batches = list | None
Progress = Callable[[int, int], None]
IN_FLIGHT_PER_WORKER = 2
"""Candidates submitted ahead per worker: enough to keep each busy, few enough to bound memory."""
PRELOAD = ["fullspectrum.sampling.workers"]
"""Imported once by the fork server, so each worker starts with torch already loaded."""

_EVALUATOR: CandidateEvaluator | None = None  # one per worker process, built by _init_worker
_LIMITS = None  # keeps the BLAS thread limit of a worker alive


def _blas_limits():
    """Limit NumPy/SciPy's BLAS to one thread if ``threadpoolctl`` is available (else a no-op)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one torch thread and one BLAS thread, then restore both."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas_limits():
            yield
    finally:
        torch.set_num_threads(threads)


def _mp_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the OS has it (fast: forks of a clean server), else ``spawn``."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def _start_fork_server(context: multiprocessing.context.BaseContext) -> None:
    """Start the fork server, if it is not running yet, with SIGINT blocked in it and all its forks.

    Python's fork server ignores SIGINT only once it has imported its preload
    (torch: a second or more), and a worker restores the handler it inherits; a
    blocked signal mask survives the fork server's exec and its forks. The
    resource tracker starts first, because starting it unblocks SIGINT again.
    """
    if context.get_start_method() != "forkserver" or not hasattr(signal, "pthread_sigmask"):
        return
    multiprocessing.resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _init_worker(context: PopulationContext) -> None:
    global _EVALUATOR, _LIMITS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which shuts the pool down
    torch.set_num_threads(1)
    _LIMITS = _blas_limits()
    _EVALUATOR = CandidateEvaluator(context)


def _evaluate(seed: int, index: int, batches: Batches) -> CandidateResult:
    return _EVALUATOR.evaluate(seed, index, batches)


def _ray_evaluator(context: PopulationContext) -> CandidateEvaluator:
    with single_threaded():  # as the in-process path builds it
        return CandidateEvaluator(context)


def _ray_evaluate(evaluator: CandidateEvaluator, seed: int, index: int, batches: Batches) -> CandidateResult:
    with single_threaded():
        return evaluator.evaluate(seed, index, batches)


def _evaluate_on_ray(context, seed, indices, batches_of, workers, progress) -> Iterator[CandidateResult]:
    with ray_session() as ray:
        workers = max(workers, int(ray.cluster_resources().get("CPU", 1)))
        calls = ((seed, index, batches_of(index)) for index in indices)
        gpus = 1 if str(context.device).startswith("cuda") else 0
        results = map_ordered(
            _ray_evaluator,
            _ray_evaluate,
            context,
            calls,
            in_flight=IN_FLIGHT_PER_WORKER * workers,
            num_gpus=gpus,
        )
        with contextlib.closing(results):  # a stopped sampling cancels the tasks in flight
            for done, result in enumerate(results, start=1):
                if progress is not None:
                    progress(done, len(indices))
                yield result


def evaluate_population(
    context: PopulationContext,
    seed: int,
    indices: Sequence[int],
    batches_of: Callable[[int], Batches],
    *,
    workers: int = 1,
    progress: Progress | None = None,
    backend: str = "local",
) -> Iterator[CandidateResult]:
    """Yield the scored candidates ``indices`` in that order.

    ``batches_of(i)`` gives candidate ``i``'s minibatches (``None`` for
    data-free generators); it runs in this process, just before ``i`` is
    submitted. ``progress(done, total)`` is called after each candidate.
    ``backend``: ``local`` (``workers`` processes) or ``ray`` (Ray tasks).
    """
    total = len(indices)
    if backend == "ray":
        yield from _evaluate_on_ray(context, seed, indices, batches_of, workers, progress)
        return
    if workers <= 1:
        with single_threaded():
            evaluator = CandidateEvaluator(context)
        for done, index in enumerate(indices, start=1):
            with single_threaded():
                result = evaluator.evaluate(seed, index, batches_of(index))
            if progress is not None:
                progress(done, total)
            yield result
        return

    mp_context = _mp_context()
    _start_fork_server(mp_context)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp_context,
        initializer=_init_worker,
        initargs=(context,),
    )
    pending: deque[Future] = deque()
    upcoming = iter(indices)
    try:
        for index in upcoming:
            pending.append(pool.submit(_evaluate, seed, index, batches_of(index)))
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                break
        done = 0
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool as error:
                raise RuntimeError(
                    f"a sampling worker process died ({error}); a script that uses workers > 1 must "
                    "start the sampling under `if __name__ == '__main__':` (spawned workers import it)"
                ) from error
            next_index = next(upcoming, None)
            if next_index is not None:
                pending.append(pool.submit(_evaluate, seed, next_index, batches_of(next_index)))
            done += 1
            if progress is not None:
                progress(done, total)
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
