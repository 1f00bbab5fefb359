"""A tracker for any PyTorch training loop: an ordinary run folder, snapshots off the loop's thread.

Modules:
"""

from __future__ import annotations
