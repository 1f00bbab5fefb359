#!/usr/bin/env bash
# The whole test suite in a fresh virtual environment (README's second command; CI runs it too).
# A missing install step fails here, not only on a developer's machine. Everything runs: ruff, the
# import-layering contracts, every test (slow ones too; browser tests skip without Chromium, GPU
# tests without CUDA) and the docstring examples of fullspectrum/ and analysis/ (pyproject.toml's
# testpaths). The inner loop in the existing environment is `nox -s fast` (CONTRIBUTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv-test"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch is pinned to the CPU wheel; see README for GPU installs.
"$venv/bin/python" -m pip install --quiet "torch==2.13.0" -e ".[test,ray]"
# The browser tests drive Debian's Chromium; install it when we may (root, as in CI).
if [ "$(id -u)" = "0" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium install failed: browser tests will skip"
fi
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check fullspectrum app analysis benchmarks tests
"$venv/bin/lint-imports"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
