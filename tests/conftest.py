"""Suite-wide fixtures: tiny runs built once per test process and shared read-only."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from app_fixtures import make_pags_run

# A suite started in the background of a shell without job control (nohup, some CI runners)
# inherits SIGINT as ignored, and so would every process the Ctrl-C tests start: they would never
# see the Ctrl-C they test. Python's own handler here makes exec'd children start with the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def restore_main_module():
    """Streamlit's AppTest runs page scripts as ``__main__`` and leaves them there; worker processes
    started later (spawn/forkserver) would re-run that page on start-up. Put the real one back."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def tiny_pags_run(tmp_path_factory) -> Path:
    """A real, tiny finished PAGS run (``app_fixtures.make_pags_run``), built once per test process.

    Shared read-only: a test that writes into a run copies it first (``shutil.copytree``).
    """
    return make_pags_run(tmp_path_factory.mktemp("shared") / "pags")
