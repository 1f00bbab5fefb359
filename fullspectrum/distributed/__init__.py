"""Scale-out: Ray as an optional engine for sweep points and PAGS candidates.

Nothing here imports Ray until a caller asks for it, so the library works without the
``ray`` extra; asking for Ray where it is not installed is one line of bad input.
The driver process alone writes run folders: a Ray task computes and returns its
result (a scored candidate, a finished command's exit status and output), so a
killed task or a lost node never leaves a half-written run.

Modules:

* :mod:`~fullspectrum.distributed.cluster`: importing Ray (:func:`require_ray`), joining a
  cluster (its address checked first, :func:`check_reachable`) or starting a local one
  (:func:`ray_session`);
* :mod:`~fullspectrum.distributed.tasks`: work as Ray tasks: one call per item in item order
  with a per-process state built once (:func:`map_ordered`), and commands run as tasks
  (:class:`RayProcesses`);
* :mod:`~fullspectrum.distributed.processes`: a command run as a child process that dies with
  its parent (:func:`start_process`, :func:`run_process`, :class:`ProcessOutcome`).
"""

from __future__ import annotations

from fullspectrum.distributed.cluster import RayMissingError, check_reachable, ray_session, require_ray
from fullspectrum.distributed.processes import ProcessOutcome, run_process, start_process

__all__ = [
    "ProcessOutcome",
    "RayMissingError",
    "check_reachable",
    "ray_session",
    "require_ray",
    "run_process",
    "start_process",
]
