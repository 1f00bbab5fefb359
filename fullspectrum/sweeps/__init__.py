"""Sweeps: a grid of commands, one run folder per point, run locally or on Ray.

``fullspectrum sweep GRID.toml --out DIR`` reads a grid file, expands it into points, checks
every point's command line, and runs the points into ``DIR`` (a folder of kind ``sweep``, SPEC
§8) as child processes or Ray tasks; a second invocation skips finished points and resumes
interrupted ones, and ``DIR/points.csv`` holds one row per point.

Modules:

* :mod:`~fullspectrum.sweeps.grid`: the TOML grid file (``command``, ``[fixed]``, ``[grid]``,
  chained ``[stage.NAME]`` tables) read and checked (:func:`load_grid`, :class:`SweepGrid`);
* :mod:`~fullspectrum.sweeps.commands`: what the sweep knows of a command (:class:`CommandSpec`:
  its options, their spelling, its parser's check), built by the command line;
* :mod:`~fullspectrum.sweeps.points`: the grid expanded into :class:`Point` s with stable folder
  names, chain references resolved, every command line checked (:func:`expand_grid`,
  :func:`check_points`);
* :mod:`~fullspectrum.sweeps.folder`: the sweep folder: its ``run.json`` of kind ``sweep``,
  ``grid.toml``, ``points.csv`` and the points' logs;
* :mod:`~fullspectrum.sweeps.backends`: where points run: child processes (:class:`LocalBackend`)
  or Ray tasks (:class:`RayBackend`);
* :mod:`~fullspectrum.sweeps.runner`: :func:`run_sweep`: skip, resume, run, report, keep the table;
* :mod:`~fullspectrum.sweeps.launch`: :func:`launch_sweep`: the whole sweep in one call (grid
  checked, backend chosen, Ray session opened), for the command line and the reproductions.
"""

from __future__ import annotations

from fullspectrum.sweeps.backends import BACKENDS, LocalBackend, RayBackend
from fullspectrum.sweeps.commands import SWEEP_OPTIONS, CommandSpec, OptionSpec
from fullspectrum.sweeps.folder import POINTS_FILE, SWEEP_KIND
from fullspectrum.sweeps.grid import GridError, Stage, SweepGrid, load_grid, parse_grid
from fullspectrum.sweeps.launch import launch_sweep
from fullspectrum.sweeps.points import Point, check_points, expand_grid
from fullspectrum.sweeps.runner import STATUSES, PointState, SweepResult, point_threads, run_sweep

__all__ = [
    "BACKENDS",
    "POINTS_FILE",
    "STATUSES",
    "SWEEP_KIND",
    "SWEEP_OPTIONS",
    "CommandSpec",
    "GridError",
    "LocalBackend",
    "OptionSpec",
    "Point",
    "PointState",
    "RayBackend",
    "Stage",
    "SweepGrid",
    "SweepResult",
    "check_points",
    "expand_grid",
    "launch_sweep",
    "load_grid",
    "parse_grid",
    "point_threads",
    "run_sweep",
]
