"""The scored candidates of an unfinished PAGS / PEGS sampling, saved one file each (SPEC §5, §8).

A sampling scores its candidates one by one; their rows reach the run's
``population`` table in one transaction only at the end, when every layer's
winner (the ``won`` column) is known. Until then each scored candidate is
saved as ``scored/candidate_XXXXXXXX.json`` in the run directory, written
atomically (whole or absent, whatever interrupts it), holding its layers' four
components of ``u`` and score (floats written exactly, NaN included) and the
sampling's seconds so far. A resumed sampling reads the unbroken run of files
from candidate 0 (:func:`read_scored`), replays the per-layer selection over
them in index order and scores the rest; candidate ``i`` depends only on
``(seed, i)``, so a file that cannot be read is simply scored again. The folder
goes once the run has finished.

>>> import tempfile
>>> run_dir = Path(tempfile.mkdtemp())
>>> rows = {"fc.weight": {"delta_r": 0.5, "lambda_w": float("nan"), "delta_r_imdb": 1.0,
...                       "lambda_imsg": 0.0, "score": 1.25}}
>>> save_scored(run_dir, ScoredCandidate(0, rows, seconds=0.1))
>>> [saved] = read_scored(run_dir, ["fc.weight"])
>>> saved.index, saved.rows["fc.weight"]["score"], math.isnan(saved.rows["fc.weight"]["lambda_w"])
(0, 1.25, True)
>>> discard_scored(run_dir); read_scored(run_dir, ["fc.weight"])
[]
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.spectrum import VECTOR_AXES

SCORED_DIR = "scored"
"""Folder of a run directory holding the scored candidates of an unfinished sampling."""
ROW_FIELDS = (*VECTOR_AXES, "score")
"""What a scored layer holds: the four components of ``u`` (raw, NaN kept) and its score."""
_FILE = re.compile(r"candidate_(\d{8})\.json")


class ScoredCandidate(NamedTuple):
    """One scored candidate as a resumed sampling needs it (its masks are regenerated when needed)."""

    index: int
    """Candidate index ``i``."""
    rows: dict[str, dict[str, float]]
    """Parameter name -> ``ROW_FIELDS``, in layer order."""
    seconds: float
    """Seconds the sampling had spent on its population when this candidate was saved."""


def scored_file(run_dir: str | Path, index: int) -> Path:
    """Where candidate ``index`` of a run is saved."""
    return Path(run_dir) / SCORED_DIR / f"candidate_{index:08d}.json"


def save_scored(run_dir: str | Path, candidate: ScoredCandidate) -> None:
    """Save one scored candidate atomically (a crash leaves the file whole or absent)."""
    rows = {name: {key: float(row[key]) for key in ROW_FIELDS} for name, row in candidate.rows.items()}
    data = {"index": int(candidate.index), "seconds": float(candidate.seconds), "rows": rows}
    text = json.dumps(data, allow_nan=True)  # repr-exact floats; NaN and Infinity as JS literals
    path = scored_file(run_dir, candidate.index)
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def read_scored(run_dir: str | Path, names: Sequence[str]) -> list[ScoredCandidate]:
    """The saved candidates ``0, 1, ..., k - 1`` of a run: up to the first one missing or unreadable.

    ``names`` are the sampling's layers (parameter names, in order); a file
    whose layers differ does not belong to this sampling and ends the run of files.
    """
    folder = Path(run_dir) / SCORED_DIR
    if not folder.is_dir():
        return []
    indices = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _FILE.fullmatch(p.name)))
    found: list[ScoredCandidate] = []
    for expected, index in enumerate(indices):
        candidate = _read(scored_file(run_dir, index), index, list(names)) if index == expected else None
        if candidate is None:
            break
        found.append(candidate)
    return found


def _read(path: Path, index: int, names: list[str]) -> ScoredCandidate | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = {
            name: {key: float(row[key]) for key in ROW_FIELDS} for name, row in dict(data["rows"]).items()
        }
        seconds = float(data["seconds"])
        same = int(data["index"]) == index and list(rows) == names
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        return None
    return ScoredCandidate(index, rows, seconds) if same and math.isfinite(seconds) else None


def discard_scored(run_dir: str | Path) -> None:
    """Remove the saved candidates (once the population table holds them all)."""
    shutil.rmtree(Path(run_dir) / SCORED_DIR, ignore_errors=True)
