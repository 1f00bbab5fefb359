"""One call for a whole sweep: expand and check the grid, pick the backend, run it.

:func:`launch_sweep` is what ``fullspectrum sweep`` does after reading its flags, and what a
caller above this package (a reproduction) calls with a grid of its own. It needs the commands
a sweep may run as :class:`~fullspectrum.sweeps.commands.CommandSpec` s, which the command line
builds from its parsers (``fullspectrum.cli.sweep.sweepable_commands``) and passes down: this
package sits below the command line and never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fullspectrum.distributed import ray_session
from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.sweeps.backends import BACKENDS, LocalBackend, RayBackend
from fullspectrum.sweeps.commands import CommandSpec
from fullspectrum.sweeps.grid import SweepGrid
from fullspectrum.sweeps.points import check_points, expand_grid
from fullspectrum.sweeps.runner import Notify, Progress, SweepResult, point_threads, run_sweep


def launch_sweep(
    grid: SweepGrid,
    grid_text: str,
    out: str | Path,
    commands: Mapping[str, CommandSpec],
    *,
    backend: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> SweepResult:
    """Run ``grid`` into ``out`` on ``backend`` (see :func:`~fullspectrum.sweeps.runner.run_sweep`).

    ``grid_text``: the grid file's text (kept as ``grid.toml``); ``address``: the Ray cluster to
    join (``None``: a local Ray, or the session already open); ``max_parallel``: points at once
    (default: local, one per CPU core for the threads each uses; Ray, what the cluster fits).
    Everything is checked before anything runs: the grid, the backend, a cluster that cannot
    be reached, points on ``cuda`` for a cluster without GPUs.
    """
    if backend not in BACKENDS:
        raise unknown_name("backend", backend, BACKENDS)
    if address is not None and backend != "ray":
        raise FullSpectrumError("--address names a Ray cluster to join; add --backend ray")
    points = expand_grid(grid, out)
    argvs = check_points(grid, points, commands, out)
    sweep = dict(
        commands=commands, grid_text=grid_text, backend_name=backend, progress=progress, notify=notify
    )
    if backend == "local":
        parallel = max_parallel or max(1, (os.cpu_count() or 1) // point_threads())
        return run_sweep(grid, points, argvs, out, LocalBackend(parallel), **sweep)
    with ray_session(address) as ray:
        wanting = sum(point.options.get("device") == "cuda" for point in points)
        if wanting and not ray.cluster_resources().get("GPU", 0):
            raise FullSpectrumError(
                f"{grid.source}: {wanting} points run on cuda and ask Ray for a GPU, but the Ray cluster "
                "has none; join one with GPUs (--address) or run them on cpu"
            )
        return run_sweep(grid, points, argvs, out, RayBackend(max_parallel), **sweep)
