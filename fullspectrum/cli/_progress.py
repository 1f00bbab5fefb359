"""One overall progress bar for the commands that run many runs (``sweep``, ``reproduce``).

The bar appears with the first report that has work left (a second invocation with nothing
left to run shows none), and a command's one-line notices are written above it, so they are
not torn by the bar's redraws:

>>> with RunsProgress("points", unit="point", command="sweep") as bar:
...     bar.progress(0, 0)  # nothing to run: no bar
...     bar.started
False
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class RunsProgress:
    """``progress(done, total)`` and ``notify(line)`` callbacks over one tqdm bar on stderr."""

    def __init__(self, description: str, *, unit: str, command: str):
        self._description = description
        self._unit = unit
        self._command = command
        self._bar: tqdm | None = None

    @property
    def started(self) -> bool:
        return self._bar is not None

    def progress(self, done: int, total: int) -> None:
        if self._bar is None:
            if not total:
                return
            self._bar = tqdm(
                total=total, unit=self._unit, desc=self._description, file=sys.stderr, dynamic_ncols=True
            )
        self._bar.update(done - self._bar.n)

    def notify(self, line: str) -> None:
        tqdm.write(f"fullspectrum {self._command}: {line}", file=sys.stderr)

    def __enter__(self) -> RunsProgress:
        return self

    def __exit__(self, *_) -> None:
        if self._bar is not None:
            self._bar.close()
