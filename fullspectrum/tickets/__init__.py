"""Lottery tickets (IMP with rewinding) and Early-Bird tickets: the baselines of SPEC §9.

Modules:
"""

from __future__ import annotations
