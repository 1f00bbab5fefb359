"""The project's own files: Dockerfile lint, README commands, CI script, console entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest
import torch

import fullspectrum

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def instructions():
    return dockerfile.parse_file(str(ROOT / "Dockerfile"))


def _commands(instructions, name):
    return [i for i in instructions if i.cmd == name]


def test_dockerfile_is_minimal_and_standard(instructions):
    base = _commands(instructions, "FROM")
    assert len(base) == 1 and re.fullmatch(r"python:3\.\d+-slim", base[0].value[0])
    users = _commands(instructions, "USER")
    assert users and users[-1].value[0] not in ("root", "0"), "the app must run as a non-root user"
    assert _commands(instructions, "EXPOSE")[0].value == ("8501",)
    health = " ".join(_commands(instructions, "HEALTHCHECK")[0].value)
    assert "/_stcore/health" in health and "8501" in health
    cmd = _commands(instructions, "CMD")[-1]
    assert cmd.json and cmd.value[:2] == ("fullspectrum", "app")
    runs = [" ".join(i.value) for i in _commands(instructions, "RUN")]
    torch_step = next(n for n, r in enumerate(runs) if "torch==2.13.0" in r)
    project_step = next(n for n, r in enumerate(runs) if "pip install -e ." in r or "pip install ." in r)
    assert torch_step < project_step, "CPU torch must be installed before the project pulls a CUDA build"
    assert any("whl/cpu" in " ".join(i.value) for i in _commands(instructions, "ARG"))
    runs = " ".join(runs)
    assert "apt-get install" not in runs or "--no-install-recommends" in runs
    # Every RUN/COPY after USER would run unprivileged; the last instruction block sets user before CMD.
    assert [i.cmd for i in instructions].index("USER") < [i.cmd for i in instructions].index("CMD")


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 2
    first, second = blocks[0].strip(), blocks[1].strip()
    assert "torch==2.13.0" in first and "fullspectrum app" in first
    assert second == "bash scripts/test.sh"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "python3 -m venv" in script and "-m pytest" in script and re.search(r'ruff"? check', script)


@pytest.mark.slow  # a real process
def test_version_command():
    result = subprocess.run(
        [sys.executable, "-m", "fullspectrum", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"fullspectrum {fullspectrum.__version__}"


def test_every_public_name_resolves_lazily():
    missing = [
        name for name in fullspectrum.__all__ if name != "__version__" and not hasattr(fullspectrum, name)
    ]
    assert missing == []
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        fullspectrum.not_a_name  # noqa: B018


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs its checks")
def test_gpu_check_script_says_there_is_no_gpu_and_exits_3(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu-check.sh")],
        env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "no CUDA device here" in (tmp_path / "gpu-check.txt").read_text()
