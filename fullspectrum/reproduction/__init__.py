"""Reproductions of the papers' tables through the sweep machinery, with statistics.

Modules:

* :mod:`~fullspectrum.reproduction.statistics`: Student-t intervals over seeds, differences
  paired by seed, Holm's correction over a report's claims, bootstrap correlation intervals
  (SPEC §9);
* :mod:`~fullspectrum.reproduction.report`: FS23's table from one row per trained network:
  ``results.csv`` (mean ± 95% CI, cost in iterations), the claims it tests, ``report.md``.
"""

from __future__ import annotations
