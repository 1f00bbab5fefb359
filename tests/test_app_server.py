"""The app's web server from outside: a real ``fullspectrum app`` on a free localhost port, spoken to
with plain HTTP and websocket upgrades (no browser).

A page on another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) reaches the
server with its own name in ``Host`` (and the same in ``Origin``); the server must answer such
requests 403, on every path and on the websocket, while the names the app listens under
(``localhost``, ``127.0.0.1``, ``::1``, ``--address``, ``--allow-host``) work as before.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from fullspectrum.cli.app import allowed_hosts, host_allowed
from tests.app_fixtures import app_server, make_runs

EXTRA_HOST = "lab.example"
"""The name the test server is told to accept with ``--allow-host``."""

pytestmark = pytest.mark.slow  # a real app server per module


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    make_runs(root / "runs")
    with app_server(root / "runs", root / "workspace", "--allow-host", EXTRA_HOST) as (url, port):
        yield port


def _get(port: int, path: str, host: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _websocket_status(port: int, host: str, origin: str | None = None) -> int:
    """The status line's code of a websocket upgrade of ``/_stcore/stream`` (101: accepted)."""
    key = base64.b64encode(os.urandom(16)).decode()
    origin = origin or f"http://{host}"
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize("name", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example"])
def test_a_foreign_host_gets_403_on_every_path_but_the_health_check_and_on_the_websocket(server, name):
    host = f"{name}:{server}"
    for path in ("/", "/compare_masks", "/_stcore/host-config", "/_stcore/upload_file/x/y"):
        status, body = _get(server, path, host)
        assert status == 403, (path, status)
        assert b"--allow-host" in body  # says how to allow a name the owner means
    assert _websocket_status(server, host) == 403
    assert _get(server, "/_stcore/health", host)[0] == 200  # container probes use whatever name they have


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::1]", EXTRA_HOST])
def test_the_apps_own_names_work(server, name):
    host = f"{name}:{server}"
    status, body = _get(server, "/", host)
    assert status == 200 and b"<html" in body.lower()
    assert _get(server, "/_stcore/health", host)[0] == 200
    assert _websocket_status(server, host) == 101


def test_the_health_check_of_the_docker_image_works(server):
    # The Dockerfile's HEALTHCHECK: urllib on http://127.0.0.1:8501/_stcore/health (Host 127.0.0.1:PORT).
    status, body = _get(server, "/_stcore/health", f"127.0.0.1:{server}")
    assert status == 200 and body.strip() == b"ok"


def test_an_allowed_host_from_a_foreign_origin_is_still_refused_on_the_websocket(server):
    assert _websocket_status(server, f"localhost:{server}", origin="http://evil.example") == 403


def _script_run(port: int, page: str) -> tuple[list[str], list[str]]:
    """Run ``page`` over the websocket as a browser does; the headings it drew and its exceptions."""
    url = f"ws://127.0.0.1:{port}/_stcore/stream"
    with connect(url, subprotocols=["streamlit"], origin=f"http://127.0.0.1:{port}", open_timeout=30) as ws:
        message = BackMsg()
        message.rerun_script.page_name = page
        ws.send(message.SerializeToString())
        headings, exceptions = [], []
        while True:
            forward = ForwardMsg()
            forward.ParseFromString(ws.recv(timeout=60))
            if forward.WhichOneof("type") == "script_finished":
                return headings, exceptions
            if forward.WhichOneof("type") == "delta" and forward.delta.WhichOneof("type") == "new_element":
                element = forward.delta.new_element
                if element.WhichOneof("type") == "heading":
                    headings.append(element.heading.body)
                elif element.WhichOneof("type") == "exception":
                    exceptions.append(element.exception.message)


@pytest.mark.parametrize(("page", "title"), [("", "Runs"), ("compare_masks", "Compare masks")])
def test_the_pages_run_behind_the_host_check(server, page, title):
    headings, exceptions = _script_run(server, page)
    assert headings[:1] == [title] and exceptions == []


def test_allowed_hosts_and_the_host_header_check():
    assert allowed_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert allowed_hosts("0.0.0.0", ["Lab.Example."]) == ("localhost", "127.0.0.1", "::1", "lab.example")
    assert allowed_hosts("192.168.1.5")[-1] == "192.168.1.5"
    hosts = allowed_hosts("127.0.0.1", ["lab.example"])
    for header in (
        "localhost",
        "localhost:8501",
        "127.0.0.1:1",
        "[::1]:8501",
        "LAB.example:80",
        "lab.example.",
    ):
        assert host_allowed(header, hosts), header
    for header in (None, "", "evil.example", "localhost.evil.example:8501", "user@localhost", "localhost:x",
                   "localhost/x", "[::2]:8501", "127.0.0.2"):  # fmt: skip
        assert not host_allowed(header, hosts), header
