"""``fullspectrum app``: start the Streamlit lab on this machine.

Runs ``streamlit run app/streamlit_app.py`` headless, listening on
``127.0.0.1`` unless ``--address`` says otherwise; the run folders to show are
passed to the app in the ``FULLSPECTRUM_RUNS`` environment variable (folders
separated by ``os.pathsep``; default: the checkout's ``cached_runs/``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from fullspectrum.errors import FullSpectrumError

RUNS_ENV = "FULLSPECTRUM_RUNS"
"""Environment variable holding the app's default run folders (``os.pathsep``-separated)."""
UPLOAD_LIMIT_MB = 200
"""Largest checkpoint the app accepts for upload (Streamlit's ``server.maxUploadSize``)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "app",
        help="start the Streamlit app (runs, trajectories, graph inspector, PAGS lab, live training)",
        description="Start the fullspectrum Streamlit app; it listens on localhost unless --address is given.",
    )
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    parser.add_argument(
        "--runs", nargs="+", metavar="DIR", help="run folders to show (default: the checkout's cached_runs/)"
    )
    parser.set_defaults(handler=run)


def app_script() -> Path:
    """``app/streamlit_app.py`` of the checkout this package is installed from."""
    script = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    if not script.is_file():
        raise FullSpectrumError(
            f"{script}: the app files are missing; the app runs from a source checkout "
            "(git clone, then pip install -e .)"
        )
    return script


def streamlit_command(script: Path, address: str, port: int) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, upload cap."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.headless",
        "true",
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.maxUploadSize",
        str(UPLOAD_LIMIT_MB),
        "--browser.gatherUsageStats",
        "false",
    ]


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise FullSpectrumError(f"--port {args.port}: must be between 1 and 65535")
    script = app_script()
    env = dict(os.environ)
    if args.runs:
        missing = [folder for folder in args.runs if not Path(folder).is_dir()]
        if missing:
            raise FullSpectrumError(f"--runs {missing[0]}: no such folder")
        env[RUNS_ENV] = os.pathsep.join(str(Path(folder).resolve()) for folder in args.runs)
    print(f"fullspectrum: app on http://{args.address}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    sys.stderr.flush()
    command = streamlit_command(script, args.address, args.port)
    if os.name == "posix":  # become the server, so signals sent to this process reach it
        os.execve(command[0], command, env)
    return subprocess.call(command, env=env)  # pragma: no cover - Windows
