"""``fullspectrum app``: start the Streamlit lab on this machine, and the limits it runs under.

Runs ``streamlit run app/server.py`` headless, listening on ``127.0.0.1`` unless
``--address`` says otherwise. ``app/server.py`` serves the pages
(``app/streamlit_app.py``) behind a Host allow-list: a request whose ``Host``
header is not one of the app's names (:func:`allowed_hosts`: ``localhost``,
``127.0.0.1``, ``::1``, the ``--address`` and each ``--allow-host``) is
answered 403, so a web page elsewhere cannot reach the app by making its own
name resolve to this machine (DNS rebinding). The names travel to the server
as Streamlit's ``server.allowedHosts``, which also guards its websocket.

What the app may open travels in environment variables: the run folders to
show in ``FULLSPECTRUM_RUNS`` (folders separated by ``os.pathsep``; default: the
checkout's ``cached_runs/``), and ``FULLSPECTRUM_ANY_FOLDER=1`` when
``--allow-any-folder`` lets the sidebar's "Add a folder" open folders outside
the workspace and those run folders (:func:`folder_allowed`).

>>> hosts = allowed_hosts("127.0.0.1", ["lab.example"])
>>> hosts
('localhost', '127.0.0.1', '::1', 'lab.example')
>>> host_allowed("localhost:8501", hosts), host_allowed("[::1]:8501", hosts)
(True, True)
>>> host_allowed("evil.example:8501", hosts)
False
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from fullspectrum.errors import FullSpectrumError

RUNS_ENV = "FULLSPECTRUM_RUNS"
"""Environment variable holding the app's default run folders (``os.pathsep``-separated)."""
ANY_FOLDER_ENV = "FULLSPECTRUM_ANY_FOLDER"
"""Set to ``1`` (by ``--allow-any-folder``): "Add a folder" may open any folder of this machine."""
UPLOAD_LIMIT_MB = 200
"""Largest checkpoint the app accepts for upload (Streamlit's ``server.maxUploadSize``)."""
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names the app always answers to."""
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")
"""``--address`` values that mean every interface: they name no host."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "app",
        help="start the Streamlit app (runs, trajectories, graph inspector, PAGS lab, live training)",
        description=(
            "Start the fullspectrum Streamlit app; it listens on localhost unless --address is given, "
            "and answers only to localhost, 127.0.0.1, ::1, the --address and each --allow-host."
        ),
    )
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    parser.add_argument(
        "--runs", nargs="+", metavar="DIR", help="run folders to show (default: the checkout's cached_runs/)"
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further host name browsers may reach the app by (repeatable; e.g. the machine's name "
        "when --address 0.0.0.0); requests under any other name get 403",
    )
    parser.add_argument(
        "--allow-any-folder",
        action="store_true",
        help='let the sidebar\'s "Add a folder" open any folder, not only those under the workspace '
        "and the --runs folders",
    )
    parser.set_defaults(handler=run)


# -- the limits the app runs under --------------------------------------------------------------------


def _host_name(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def allowed_hosts(address: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The host names the app answers to: :data:`LOCAL_HOSTS`, ``address`` unless it is a wildcard
    (``0.0.0.0``), then ``extra``; lower case, without brackets or a trailing dot, each once."""
    names = [*LOCAL_HOSTS, *([] if address.strip() in WILDCARD_ADDRESSES else [address]), *extra]
    return tuple(dict.fromkeys(_host_name(name) for name in names if _host_name(name)))


def host_allowed(header: str | None, hosts: Iterable[str]) -> bool:
    """Whether a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names one of ``hosts``.

    Anything that is not a plain host and port (user info, a path, a bad port) is refused.
    """
    if not header:
        return False
    try:
        parts = urlsplit(f"//{header}")
        name, _ = parts.hostname, parts.port  # .port raises on a port that is not a number in range
    except ValueError:
        return False
    if name is None or "@" in header or parts.path or parts.query or parts.fragment:
        return False
    return _host_name(name) in {_host_name(host) for host in hosts}


def _is_host_name(name: str) -> bool:
    bare = name.strip().strip("[]")
    header = f"[{bare}]" if ":" in bare else bare  # an IPv6 address is written in brackets in a Host header
    try:
        return bool(bare) and host_allowed(header, [bare]) and urlsplit(f"//{header}").port is None
    except ValueError:
        return False


def any_folder_allowed(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the app was started with ``--allow-any-folder``."""
    return environ.get(ANY_FOLDER_ENV, "") == "1"


def folder_allowed(folder: str | Path, roots: Iterable[str | Path]) -> bool:
    """Whether ``folder``, links resolved, is one of ``roots`` or lies under one of them."""
    target = Path(folder).expanduser().resolve()
    for root in roots:
        base = Path(root).expanduser().resolve()
        if target == base or base in target.parents:
            return True
    return False


# -- the server -----------------------------------------------------------------------------------------


def _checkout_file(*parts: str) -> Path:
    path = Path(__file__).resolve().parents[2].joinpath(*parts)
    if not path.is_file():
        raise FullSpectrumError(
            f"{path}: the app files are missing; the app runs from a source checkout "
            "(git clone, then pip install -e .)"
        )
    return path


def app_script() -> Path:
    """``app/streamlit_app.py`` of the checkout this package is installed from: the pages."""
    return _checkout_file("app", "streamlit_app.py")


def server_script() -> Path:
    """``app/server.py`` of the checkout: the pages behind the Host allow-list, what ``app`` runs."""
    app_script()
    return _checkout_file("app", "server.py")


def streamlit_command(script: Path, address: str, port: int, hosts: Iterable[str] = LOCAL_HOSTS) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, upload cap, XSRF and CORS
    protection on, no post-rerun garbage collection or file watching, and ``hosts`` as
    ``server.allowedHosts``."""
    command = [
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
        "--server.enableXsrfProtection",
        "true",
        "--server.enableCORS",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # A served lab needs neither: a full gc.collect after every rerun and a watcher of its own
        # source files were most of the server's CPU per widget move (py-spy, the step slider).
        "--runner.postScriptGC",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    for host in hosts:
        command += ["--server.allowedHosts", host]
    return command


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise FullSpectrumError(f"--port {args.port}: must be between 1 and 65535")
    bad = [name for name in args.allow_host if not _is_host_name(name)]
    if bad:
        raise FullSpectrumError(
            f"--allow-host {bad[0]!r}: not a host name (give the name alone: no port, no path)"
        )
    script = server_script()
    env = dict(os.environ)
    if args.runs:
        missing = [folder for folder in args.runs if not Path(folder).is_dir()]
        if missing:
            raise FullSpectrumError(f"--runs {missing[0]}: no such folder")
        env[RUNS_ENV] = os.pathsep.join(str(Path(folder).resolve()) for folder in args.runs)
    if args.allow_any_folder:
        env[ANY_FOLDER_ENV] = "1"
    else:
        env.pop(ANY_FOLDER_ENV, None)
    hosts = allowed_hosts(args.address, args.allow_host)
    print(
        f"fullspectrum: app on http://{args.address}:{args.port} for the host names {', '.join(hosts)} "
        "(--allow-host adds one; Ctrl-C stops it)",
        file=sys.stderr,
    )
    sys.stderr.flush()
    command = streamlit_command(script, args.address, args.port, hosts)
    if os.name == "posix":  # become the server, so signals sent to this process reach it
        os.execve(command[0], command, env)
    return subprocess.call(command, env=env)  # pragma: no cover - Windows
