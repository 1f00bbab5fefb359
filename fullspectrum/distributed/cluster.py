"""Ray, imported only when asked for: join a running cluster or start a local one.

``ray start --head`` on one machine and ``ray start --address HEAD:6379`` on the others make a
cluster; a driver joins it with ``address="HEAD:6379"`` (or ``"auto"`` on a node of it). Without
an address :func:`ray_session` starts a local Ray for the session, without a dashboard and
without copying the workers' logs to the terminal (the driver's progress bar is what the user
reads). A session that is already open (a test's, a notebook's) is used as it is and left open.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from collections.abc import Iterator

from fullspectrum.errors import FullSpectrumError

INSTALL_HINT = "install it with: pip install 'fullspectrum[ray]'"
CONNECT_TIMEOUT_S = 5.0
"""How long a cluster's address may take to answer before it is refused (Ray itself retries for minutes)."""


class RayMissingError(FullSpectrumError):
    """``--backend ray`` was asked for, but Ray is not installed."""


def require_ray():
    """The ``ray`` module, or :class:`RayMissingError` (one line) where it is not installed."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise RayMissingError(
            f"--backend ray needs the ray package, which is not installed; {INSTALL_HINT}"
        ) from None


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[object]:
    """Yield the ``ray`` module with a connected session, shut down at the end if this call made it.

    ``address``: a running cluster's (``HOST:PORT``, ``ray://HOST:10001`` or ``auto``); ``None``
    starts a local Ray with ``num_cpus`` CPUs (default: all). A cluster that cannot be reached is
    one line of bad input.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is not None:
        check_reachable(address)
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:  # "local": a new Ray of its own, never a cluster some `ray start` left running
        options.update(address="local", num_cpus=num_cpus)
    else:
        options["address"] = address
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")  # no phoning home from a lab machine
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        reason = " ".join(str(error).split()) or type(error).__name__
        raise FullSpectrumError(f"--address: cannot connect to {where} ({reason[:300]})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line, a ``HOST:PORT`` (or ``ray://HOST:PORT``) address nothing answers at.

    ``auto`` (the cluster this machine is a node of) is left to Ray, which finds it or says so at once.

    >>> check_reachable("localhost")
    Traceback (most recent call last):
      ...
    fullspectrum.errors.FullSpectrumError: --address localhost: give HOST:PORT (e.g. the head node's HOST:6379) or auto
    """
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise FullSpectrumError(
            f"--address {address}: give HOST:PORT (e.g. the head node's HOST:6379) or auto"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise FullSpectrumError(
            f"--address {address}: no Ray cluster answers there ({reason}); start one with "
            "`ray start --head` or check the address"
        ) from None
