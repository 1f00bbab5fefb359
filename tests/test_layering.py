"""The import layering holds: ``lint-imports`` keeps every contract of ``[tool.importlinter]``.

The contracts (``pyproject.toml``): ``app -> analysis -> fullspectrum``; the library and
``analysis`` never import Streamlit or Plotly; the library's own packages in layers from the
command line down to ``errors``. CONTRIBUTING.md says where a new module goes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports() -> str:
    """The ``lint-imports`` script of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.is_file() else shutil.which("lint-imports")
    assert found, "lint-imports not found: install the test extra (pip install -e '.[test]')"
    return found


def test_import_contracts_are_kept():
    # From the repository root: import-linter finds `app` and `analysis` on the current directory.
    done = subprocess.run([lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"lint-imports exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
