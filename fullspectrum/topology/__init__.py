"""The unrolled, input-aware view of MGE24 (SPEC §7): the whole network as one graph.

Modules:
"""

from __future__ import annotations
