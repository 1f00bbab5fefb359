"""Work as Ray tasks: calls in item order over a per-process state, and commands run as tasks.

Both need a connected session (:func:`~fullspectrum.distributed.cluster.ray_session`).

:func:`map_ordered` is what a process pool with an initializer does, on a cluster: the shared
input (a PAGS population's model and data) is put into Ray's object store once, each worker
process builds its state from it once (``setup(shared)``, cached by the call's key) and every
task then calls ``call(state, *args)`` for one item. Results come back in item order, whatever
order the tasks finish in, with at most ``in_flight`` tasks submitted ahead, so memory stays
bounded. Functions are sent by reference: the nodes must have the same ``fullspectrum``
installed.

:class:`RayProcesses` runs commands as tasks (one per sweep point) with the CPUs and GPUs each
asks for, and hands back each one's :class:`~fullspectrum.distributed.processes.ProcessOutcome`
as it ends. A task whose worker dies (a lost node, the memory killer) is not retried: its
outcome says so, and the command's own resume picks the work up next time.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from fullspectrum.distributed.cluster import require_ray
from fullspectrum.distributed.processes import ProcessOutcome, run_process

_STATE: dict[str, object] = {}  # in a Ray worker process: the state of the map it last served


def _with_state(key: str, setup: Callable, boxed: list, call: Callable, *args):
    """Ray task body: ``call(state, *args)``, building ``state = setup(shared)`` once per process and map."""
    if key not in _STATE:
        ray = require_ray()
        _STATE.clear()  # one map at a time per worker process: drop the previous one's state
        _STATE[key] = setup(ray.get(boxed[0]))  # boxed: a bare ObjectRef argument would be fetched every time
    return call(_STATE[key], *args)


def map_ordered(
    setup: Callable,
    call: Callable,
    shared,
    items: Iterable[Sequence],
    *,
    in_flight: int,
    num_cpus: float = 1,
    num_gpus: float = 0,
) -> Iterator:
    """Yield ``call(setup(shared), *args)`` for each ``args`` of ``items``, in order, as Ray tasks.

    ``setup`` and ``call`` must be module-level functions (sent by reference); ``items`` is
    consumed lazily, one item per finished task. Closing the iterator cancels what is in flight.
    """
    ray = require_ray()
    remote = ray.remote(_with_state).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
    key, boxed = uuid.uuid4().hex, [ray.put(shared)]
    pending: deque = deque()
    upcoming = iter(items)
    try:
        for args in upcoming:
            pending.append(remote.remote(key, setup, boxed, call, *args))
            if len(pending) >= max(1, in_flight):
                break
        while pending:
            result = ray.get(pending.popleft())
            following = next(upcoming, None)
            if following is not None:
                pending.append(remote.remote(key, setup, boxed, call, *following))
            yield result
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):  # already done or gone: nothing to cancel
                ray.cancel(ref)


class RayProcesses:
    """Commands run as Ray tasks, each with its own CPU and GPU request; outcomes as they end."""

    def __init__(self) -> None:
        self._ray = require_ray()
        self._remote = self._ray.remote(run_process)
        self._running: dict = {}  # ObjectRef -> the caller's key

    def __len__(self) -> int:
        """Commands submitted and not yet handed back."""
        return len(self._running)

    def submit(
        self,
        key,
        argv: Sequence[str],
        *,
        python: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
    ) -> None:
        """Run ``argv`` as a task (``python``: as arguments of the node's Python); ``key`` comes back
        with its outcome."""
        task = self._remote.options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
        cwd = None if cwd is None else str(cwd)
        self._running[task.remote(list(argv), python=python, env=dict(env or {}), cwd=cwd)] = key

    def wait(self, timeout_s: float | None = None) -> list[tuple[object, ProcessOutcome]]:
        """The commands that ended within ``timeout_s`` (at least one unless it runs out), with their keys."""
        if not self._running:
            return []
        done, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout_s)
        ended = []
        for ref in done:
            key = self._running.pop(ref)
            try:
                outcome = self._ray.get(ref)
            except Exception as error:  # the task's worker died: report it as the command's end
                reason = " ".join(str(error).split())[:500] or type(error).__name__
                outcome = ProcessOutcome(-9, f"the Ray task running this command failed: {reason}")
            ended.append((key, outcome))
        return ended

    def cancel_all(self) -> None:
        """Stop every command still running (their workers are killed, and their children with them)."""
        for ref in list(self._running):
            with contextlib.suppress(Exception):  # already ended
                self._ray.cancel(ref, force=True)
        self._running.clear()
