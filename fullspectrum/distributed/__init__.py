"""Scale-out: Ray as an optional engine for sweep points and PAGS candidates.

Modules:
"""

from __future__ import annotations
