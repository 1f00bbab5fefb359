"""A command run as a child process that dies with the process that started it.

A sweep's driver starts one ``python -m fullspectrum COMMAND ...`` per point. If the driver is
killed (SIGKILL, a lost terminal), a child left running would go on writing its run while the
next invocation of the sweep resumes that same run; on Linux each child therefore asks the
kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so a killed sweep leaves
killed runs, which resume. The child's output (stdout and stderr together) goes to a log file,
or is returned by :func:`run_process` (a Ray task has no folder of its own to write to).

>>> import sys
>>> outcome = run_process([sys.executable, "-c", "import sys; print('a'); sys.exit('no luck')"])
>>> outcome.returncode, outcome.last_line
(1, 'no luck')
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class ProcessOutcome:
    """How a child process ended."""

    returncode: int
    """Its exit status (negative: killed by that signal)."""
    output: str
    """What it wrote to stdout and stderr (the end of it, at most ``OUTPUT_KEPT`` characters)."""

    @property
    def last_line(self) -> str:
        """The last non-empty line of the output (a progress bar's carriage returns split lines too)."""
        return last_line(self.output)


OUTPUT_KEPT = 20_000
"""Characters of a child's output a :class:`ProcessOutcome` keeps (its end: where the error is)."""


def last_line(text: str) -> str:
    """The last non-empty line of ``text``, lines split at ``\\n`` and ``\\r``.

    >>> last_line("step 1\\rstep 2\\nfullspectrum: error: bad\\n\\n")
    'fullspectrum: error: bad'
    """
    for line in reversed(text.replace("\r", "\n").split("\n")):
        if line.strip():
            return line.strip()
    return ""


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(137)


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(env or {})}


def start_process(
    argv: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None
) -> subprocess.Popen:
    """Start ``argv`` with its output appended to ``log``; the child dies with this process.

    The child has a session of its own, so a Ctrl-C in the terminal reaches only this process,
    which decides what to pass on. Call it from the main thread: Linux sends the death signal
    when the *thread* that started the child ends.
    """
    with open(log, "ab") as handle:  # the child holds its own descriptor
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=_environment(env),
            cwd=cwd,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            start_new_session=True,  # a Ctrl-C in the terminal is the parent's, which passes one on
        )


def run_process(
    argv: Sequence[str],
    *,
    python: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ProcessOutcome:
    """Run ``argv`` to its end and return its exit status and (the end of) its output.

    ``python``: ``argv`` are arguments of this process's Python interpreter (on a Ray node,
    the node's own, wherever it is installed there).
    """
    done = subprocess.run(
        [sys.executable, *argv] if python else list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_environment(env),
        cwd=cwd,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
        check=False,
    )
    output = done.stdout.decode("utf-8", errors="replace")
    return ProcessOutcome(done.returncode, output[-OUTPUT_KEPT:])
