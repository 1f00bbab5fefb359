"""Reproductions of the papers' tables through the sweep machinery, with statistics.

Modules:

* :mod:`~fullspectrum.reproduction.statistics`: Student-t intervals over seeds, differences
  paired by seed, Holm's correction over a report's claims, bootstrap correlation intervals
  (SPEC §9).
"""

from __future__ import annotations
