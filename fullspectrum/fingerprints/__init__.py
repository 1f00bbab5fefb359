"""Graphon fingerprints of pruning methods (G25, SPEC §7b): estimates over seeds and widths.

Modules:
"""

from __future__ import annotations
