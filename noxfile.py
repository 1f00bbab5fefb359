"""Test targets, in the environment you already have (``nox`` makes no virtual environment here).

    .venv/bin/nox -s fast      # ruff, lint-imports, core suite + doctests, 2 workers (about 95 s idle)
    .venv/bin/nox -s slow      # the tests marked slow (real processes, long trainings, UMAP)
    .venv/bin/nox -s browser   # the headless-Chromium tests (skip without /usr/bin/chromium)
    .venv/bin/nox -s gpu       # the CUDA tests (skip without a CUDA device)
    .venv/bin/nox -s full      # everything from a fresh virtual environment: scripts/test.sh

Every session runs the tools of the interpreter nox runs under (the project's ``.venv`` when
started as ``.venv/bin/nox``). Arguments after ``--`` go to pytest (to ``scripts/test.sh`` for
``full``), e.g. ``nox -s fast -- -k spectrum -x``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.sessions = ["fast"]
nox.options.default_venv_backend = "none"  # every session reuses the running environment

BIN = Path(sys.executable).parent  # ruff, lint-imports and pytest installed beside this interpreter
FORMATTED = ("fullspectrum", "app", "analysis", "benchmarks", "tests")  # as scripts/test.sh checks
FAST = "not slow and not browser and not gpu"


def _pytest(session: nox.Session, *args: str) -> None:
    session.run(sys.executable, "-m", "pytest", "-q", *args, *session.posargs, external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and the import-layering contracts."""
    session.run(str(BIN / "ruff"), "check", ".", external=True)
    session.run(str(BIN / "ruff"), "format", "--check", *FORMATTED, external=True)
    session.run(str(BIN / "lint-imports"), external=True)


@nox.session(python=False)
def fast(session: nox.Session) -> None:
    """The inner loop: lint, then every test not marked slow/browser/gpu, plus the doctests."""
    lint(session)
    _pytest(session, "-n", "2", "-m", FAST)


@nox.session(python=False)
def slow(session: nox.Session) -> None:
    """The tests marked ``slow``."""
    _pytest(session, "-n", "2", "-m", "slow and not browser and not gpu")


@nox.session(python=False)
def browser(session: nox.Session) -> None:
    """The browser tests, one worker: each module starts one app server and one Chromium."""
    _pytest(session, "-m", "browser")


@nox.session(python=False)
def gpu(session: nox.Session) -> None:
    """The CUDA tests."""
    _pytest(session, "-m", "gpu")


@nox.session(python=False)
def full(session: nox.Session) -> None:
    """The README's command: a fresh virtual environment, ruff, lint-imports, the whole suite."""
    session.run("bash", "scripts/test.sh", *session.posargs, external=True)
