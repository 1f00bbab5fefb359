"""Sweeps: a grid of commands, one run folder per point, run locally or on Ray.

Modules:
"""

from __future__ import annotations
