"""Whether a run computes its snapshot spectra inline or in a worker process beside the loop.

* **CUDA**: a worker; the GPU trains on while a CPU core computes spectra.
* **CPU, fully-connected models, two or more torch threads**: a worker, and the
  loop keeps one thread fewer. Each weight of such a net is used once per
  sample, so an iteration is short next to a snapshot (MLP on digits: under
  1 ms against about 6 ms), and torch gains nothing from its second thread there
  (measured: 0.77 s on 1 thread, 0.85 s on 2 for the digits preset).
* **Otherwise** (convnets on CPU, one core): inline. A convnet reuses each weight
  across positions, its iterations dwarf its snapshots (ResNet-18 at ΔT = 1500:
  overhead 1.004 inline) and it needs every core.

The choice depends on the config and the machine, never on timings, so a
seeded run keeps its thread count and stays reproducible. The worker itself is
:class:`fullspectrum.spectrum.worker.SpectraProcess`.

**Where a CUDA run's spectra are solved**: on its own GPU (:func:`spectra_device`),
by the engine's torch backend, in the worker process, which imports torch only
then, when its first request arrives. In the worker, because the engine's
Lanczos run is a Python loop that waits on the GPU at every convergence test:
in the training process it would hold the loop for the whole snapshot, while
beside it the loop goes on and only the GPU is shared (plus a second CUDA
context, some hundreds of MB of GPU memory). On the GPU rather than the
worker's CPU core, because a CPU falls behind on big layers (a 4096×4096
projection takes seconds there) and the snapshots would queue up. A CUDA run
that asks for no worker (``spectra_worker=False``) solves inline on the same GPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch


def use_worker(requested: bool | None, device: torch.device, weights: Mapping[str, torch.Tensor]) -> bool:
    """Whether a run on ``device`` computes spectra in a worker (``requested``: ``config.spectra_worker``)."""
    if os.name != "posix":  # the worker hands its pipes over as inherited descriptors (POSIX)
        return False
    if requested is not None:
        return bool(requested)
    if device.type == "cuda":
        return True
    fully_connected = all(weight.dim() == 2 for weight in weights.values())
    return fully_connected and torch.get_num_threads() >= 2


def loop_threads(worker: bool, device: torch.device) -> int:
    """torch threads for the training loop: one fewer beside a CPU run's worker."""
    threads = torch.get_num_threads()
    return max(1, threads - 1) if worker and device.type == "cpu" else threads


def spectra_device(device: torch.device) -> str | None:
    """Where a run on ``device`` solves its snapshot spectra: its GPU (``cuda:N``) for a CUDA run,
    else None (numpy on the CPU)."""
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index}"
