#!/usr/bin/env bash
# The development environment `.venv` (CONTRIBUTING.md's fast loop, `nox -s fast`, the pre-commit
# hooks) made the way scripts/test.sh makes its fresh `.venv-test`: the same pinned CPU torch and the
# same extras, so the fast loop and CI test the same install. An existing `.venv` is kept and only
# brought up to date (pip installs nothing that is already satisfied); pass --fresh to rebuild it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv"
if [ "${1:-}" = "--fresh" ]; then
    rm -rf "$venv"
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch is pinned to the CPU wheel; see README for GPU installs.
"$venv/bin/python" -m pip install --quiet "torch==2.13.0" -e ".[test,ray]"
"$venv/bin/python" -c "import fullspectrum, torch; print('fullspectrum', fullspectrum.__version__, 'torch', torch.__version__, 'in $venv')"
