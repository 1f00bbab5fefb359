"""The lab's web server: the pages of ``streamlit_app.py`` behind a Host allow-list.

``fullspectrum app`` runs ``streamlit run app/server.py``; Streamlit finds the
``st.App`` below and serves it with uvicorn. Before Streamlit sees a request,
:class:`HostAllowList` answers 403 to every HTTP request and websocket upgrade
whose ``Host`` header is not one of the app's names: Streamlit's
``server.allowedHosts``, which the launcher sets to ``localhost``,
``127.0.0.1``, ``::1``, its ``--address`` and each ``--allow-host``
(:func:`fullspectrum.cli.app.allowed_hosts`; the first three when it is empty).
A page on another site whose name was made to resolve to this machine (DNS
rebinding) therefore cannot load the app, open its websocket, upload files or
start jobs. ``/_stcore/health`` answers under any name, for container probes;
it tells nothing but "ok". Streamlit's own checks (XSRF tokens, the websocket's
Origin and ``server.allowedHosts``) stay on behind it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st
from starlette.middleware import Middleware
from streamlit import config

from fullspectrum.cli.app import LOCAL_HOSTS, host_allowed

PAGES_SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"
OPEN_PATHS = ("/_stcore/health",)
"""Paths answered whatever the Host (GET only): they reveal nothing."""


def app_hosts() -> tuple[str, ...]:
    """The host names the server answers to (``server.allowedHosts``, else :data:`LOCAL_HOSTS`)."""
    return tuple(config.get_option("server.allowedHosts") or LOCAL_HOSTS)


def refusal(host: str | None) -> str:
    """The one line a refused request gets."""
    try:
        name = urlsplit(f"//{host}").hostname if host else None
    except ValueError:
        name = None
    return (
        f"403: this fullspectrum app does not answer to the host name {host or '(none)'!r}; if you reach "
        f"it by that name on purpose, start it with `fullspectrum app --allow-host {name or 'NAME'}`\n"
    )


class HostAllowList:
    """ASGI middleware: 403 for a request (HTTP or websocket) whose ``Host`` is not one of :func:`app_hosts`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((value.decode("latin-1") for key, value in scope["headers"] if key == b"host"), None)
        is_open = scope["type"] == "http" and scope.get("method") == "GET" and scope["path"] in OPEN_PATHS
        if is_open or host_allowed(host, app_hosts()):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return
        body = refusal(host).encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})


app = st.App(PAGES_SCRIPT, middleware=[Middleware(HostAllowList)])
