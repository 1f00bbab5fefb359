"""A tracker for any PyTorch training loop: an ordinary run folder, snapshots off the loop's thread.

``Tracker(model, run_dir, masks=..., every=500, config=vars(args))`` writes the run folder of
SPEC §8 (``kind`` ``train``) beside a loop this package does not drive: full-spectrum
snapshots (FS23) computed in the trainer's spectra worker, mask-update events, the loop's
losses and accuracies, a heartbeat while it runs. ``fullspectrum runs``, ``export`` and every
page of the app read it like a run of ``fullspectrum train``.

Modules:

* :mod:`~fullspectrum.tracking.tracker`: :class:`Tracker` (the snapshot schedule, the run's
  status on success, error, Ctrl-C and a script that ends early) and ``run_config``;
* :mod:`~fullspectrum.tracking.sources`: the three forms the masks come in (a dict, a
  callable, the model's own ``torch.nn.utils.prune`` buffers or non-zeros) and the cheap check
  that tells when they changed;
* :mod:`~fullspectrum.tracking.scalars`: logged scalars as ``evals`` rows, committed in batches;
* :mod:`~fullspectrum.tracking.background`: the writer thread that commits rows and writes snapshots
  in order beside the loop.
"""

from __future__ import annotations

from fullspectrum.tracking.scalars import SCALARS
from fullspectrum.tracking.sources import MaskSource
from fullspectrum.tracking.tracker import DEFAULT_EVERY, Tracker, run_config

__all__ = ["DEFAULT_EVERY", "SCALARS", "MaskSource", "Tracker", "run_config"]
