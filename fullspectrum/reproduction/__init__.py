"""Reproductions of the papers' tables through the sweep machinery, with statistics.

Modules:
"""

from __future__ import annotations
