"""A spectra worker process: layer spectra computed beside a training loop.

The parent (a trainer) submits each snapshot's masks and weights as numpy
arrays; the worker answers with every layer's ``LayerSpectrum`` fields, in
submission order. It is a fresh interpreter that imports only numpy, scipy and
this engine, never torch: it starts in about 0.4 s (a multiprocessing "spawn"
worker re-imports the parent's ``__main__`` and torch, seconds), it is safe
beside CUDA (nothing is forked), and it shares no memory the loop writes (a
forked one makes every page the loop touches a copy-on-write fault: measured
+50 ms over an 0.8 s run).

A worker started with a device (``SpectraProcess(device="cuda:0")``, what a
CUDA training run asks for) solves on that GPU: the engine's torch backend, and
torch with it, is imported when its first request arrives, in the worker, while
the loop trains on. Without one it runs numpy on its CPU core and never imports torch.

It runs in its own session, so a Ctrl-C at the terminal reaches only the
trainer, which decides what to do with pending snapshots; it inherits no
descriptor but its two pipes (never the run's writer lock), and exits at the
end of file on its request pipe, which is also what a killed trainer leaves it.
Messages are pickles between this package's own two processes, never from files.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum.layer import layer_spectra

LayerJob = tuple[str, str, np.ndarray, np.ndarray]
"""``(key, layer name, mask, masked weight)`` of one layer."""


def compute_layers(jobs: Sequence[LayerJob], *, device: str | None = None) -> dict[str, dict]:
    """``layer_spectrum`` of every layer as a dict of fields, keyed by ``key``: one ``layer_spectra``
    call for all of them (which solves them in its own batches).

    ``device`` as for ``layer_spectra`` (None: numpy on the CPU).
    """
    spectra = layer_spectra([(mask, weight, name) for _, name, mask, weight in jobs], device=device)
    return {key: spectrum.as_dict() for (key, *_), spectrum in zip(jobs, spectra, strict=True)}


class PendingSpectra:
    """The answer to one submission (``done()`` / ``result()``, like a Future)."""

    def __init__(self, worker: SpectraProcess) -> None:
        self._worker = worker
        self._outcome: tuple[bool, object] | None = None

    def done(self) -> bool:
        self._worker.collect(block=False)
        return self._outcome is not None

    def result(self) -> dict[str, dict]:
        while self._outcome is None:
            self._worker.collect(block=True)
        ok, value = self._outcome
        if not ok:
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]


class SpectraProcess:
    """The parent's handle on one worker process; ``device``: where it solves (None: numpy on its CPU)."""

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        package_root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1",  # one BLAS thread, as in the parent's engine calls
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fullspectrum.spectrum.worker",
                    str(request_read),
                    str(result_write),
                    *([device] if device is not None else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(request_read, result_write),
                start_new_session=True,
                env=env,
            )
        finally:
            os.close(request_read)  # only the child holds these ends now
            os.close(result_write)
        self._requests = Connection(request_write, readable=False)
        self._results = Connection(result_read, writable=False)
        self._waiting: deque[PendingSpectra] = deque()
        # A request (~200 kB for a small MLP) outgrows the pipe, and the worker reads the next one
        # only when done with the last (or, at first, its imports): a thread sends, the loop never waits.
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, name="spectra-sender", daemon=True)
        self._sender.start()

    def submit(self, jobs: Sequence[LayerJob]) -> PendingSpectra:
        """Queue one snapshot's layers; the answer arrives in submission order."""
        if self._process.poll() is not None:
            raise self._died()
        pending = PendingSpectra(self)
        self._outbox.put(list(jobs))
        self._waiting.append(pending)
        return pending

    def _send_loop(self) -> None:
        while (jobs := self._outbox.get()) is not None:
            try:
                self._requests.send(jobs)
            except OSError:  # the worker is gone; collect() reports it
                return

    def collect(self, *, block: bool) -> None:
        """Hand arrived answers to their submissions (wait for one if ``block``)."""
        while self._waiting and (block or self._results.poll()):
            try:
                outcome = self._results.recv()
            except (EOFError, OSError):
                raise self._died() from None
            self._waiting.popleft()._outcome = outcome
            block = False

    def shutdown(self) -> None:
        """Stop the worker: it exits at the end of its request pipe (killed if answers are still owed)."""
        if self._waiting:  # dropped work (a crash or Ctrl-C path): no reason to wait for it
            self._process.kill()
        self._outbox.put(None)
        self._sender.join()
        self._requests.close()
        self._results.close()
        self._process.wait()  # prompt: an idle worker exits at the end of file (a polling wait adds ~15 ms)

    def _died(self) -> FullSpectrumError:
        try:
            code = self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        return FullSpectrumError(f"the spectra worker process ended unexpectedly (exit code {code})")


def serve(requests: Connection, results: Connection, device: str | None = None) -> None:
    """The worker's loop: answer each request until the parent closes its end (or dies)."""
    while True:
        try:
            jobs = requests.recv()
        except (EOFError, OSError):
            return
        try:
            outcome: tuple[bool, object] = (True, compute_layers(jobs, device=device))
        except Exception as error:  # handed to the parent, which raises it
            outcome = (False, error)
        try:
            results.send(outcome)
        except OSError:  # the parent is gone
            return
        except Exception as error:  # an error that cannot be pickled: send its text
            results.send((False, FullSpectrumError(f"spectra worker: {outcome[1]!r} ({error})")))


def main(argv: Sequence[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # belt and braces: the session already isolates it
    device = argv[2] if len(argv) > 2 else None
    serve(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False), device)
    sys.stderr.flush()
    os._exit(0)  # nothing left to clean up: skip tearing the interpreter down (~0.1 s)


if __name__ == "__main__":
    main(sys.argv[1:])
