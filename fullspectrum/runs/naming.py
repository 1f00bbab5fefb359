"""How new run folders are named: readable parts, safe in any file system, unique by the clock.

A run started by hand gets the folder its ``--out`` says; runs started for a
user (the app's training, sampling and upload jobs) get a name made here from
what they are (``pags_snip_mlp_digits``), the local time they started
(``20240501-120000``), or, for a run made from another run, the source run's
folder name and what was done to it (``<source>__static_candidate3``), which
stays the same so a second request finds the first run again.

>>> from datetime import datetime
>>> run_folder_name("pags", "snip", "mlp", "digits", when=datetime(2024, 5, 1, 12, 0, 0))
'pags_snip_mlp_digits_20240501-120000'
>>> run_folder_name("my run #2", timestamp=False)
'my_run_2'
>>> run_folder_name("static", "candidate3", source="runs/b_pags", timestamp=False)
'b_pags__static_candidate3'
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

PART_MAX_CHARS = 60
"""Longest part kept (a file name has room for several)."""
TIME_FORMAT = "%Y%m%d-%H%M%S"
"""The start time in a run folder's name (local time, to the second)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_part(text: object) -> str:
    """``text`` with every run of characters other than letters, digits, ``_ . -`` made one ``_``, cut
    to :data:`PART_MAX_CHARS` (``my run #2`` -> ``my_run_2``)."""
    return _UNSAFE.sub("_", str(text).strip())[:PART_MAX_CHARS]


def run_folder_name(
    *parts: object,
    source: str | Path | None = None,
    timestamp: bool = True,
    when: datetime | None = None,
) -> str:
    """The folder name of a new run: ``parts`` made safe (:func:`safe_part`) and joined by ``_``.

    ``source``: the run this one is made from; its folder name comes first,
    then ``__``. ``timestamp``: add the start time ``when`` (default now) in
    :data:`TIME_FORMAT`, so that a second run of the same kind gets its own folder.
    """
    name = "_".join(safe_part(part) for part in parts)
    if source is not None:
        name = f"{Path(source).name}__{name}"
    if timestamp:
        name = f"{name}_{(when or datetime.now()).strftime(TIME_FORMAT)}"
    return name
