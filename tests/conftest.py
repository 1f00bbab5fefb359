"""Suite-wide fixtures."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def restore_main_module():
    """Streamlit's AppTest runs page scripts as ``__main__`` and leaves them there; worker processes
    started later (spawn/forkserver) would re-run that page on start-up. Put the real one back."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
