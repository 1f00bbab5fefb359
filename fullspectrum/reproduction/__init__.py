"""Reproductions of the papers' tables through the sweep machinery, with statistics.

``fullspectrum reproduce fs23-table`` runs FS23's comparison (SPEC §9) as one chained sweep and
writes its tables and report.

Modules:

* :mod:`~fullspectrum.reproduction.presets`: what each preset runs (``quick``, ``cpu``, ``paper``);
* :mod:`~fullspectrum.reproduction.fs23_grid`: FS23's comparison as a chained sweep grid;
* :mod:`~fullspectrum.reproduction.collect`: the finished sweep read back, one row per trained
  network (method, generator, density, seed, accuracy, cost in iterations), and the ITOP runs;
* :mod:`~fullspectrum.reproduction.statistics`: Student-t intervals over seeds, differences
  paired by seed, Holm's correction over a report's claims, bootstrap correlation intervals;
* :mod:`~fullspectrum.reproduction.report`: ``results.csv`` (mean ± 95% CI, cost), the claims
  FS23 makes that the rows can test, ``report.md``;
* :mod:`~fullspectrum.reproduction.fs23_table`: ``run_fs23_table``, the reproduction folder
  (kind ``reproduction``) run or continued, and its tables written.
"""

from __future__ import annotations

from fullspectrum.reproduction.fs23_table import Reproduction, run_fs23_table
from fullspectrum.reproduction.presets import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "Reproduction", "run_fs23_table"]
