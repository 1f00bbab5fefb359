"""fullspectrum: sparse neural networks as graphs.

Every layer's mask is a bipartite graph; its Ramanujan gap ``delta_r``, weighted
spectral gap ``lambda_w`` and the gap of its nested regular subgraphs
``delta_r_imdb`` form the full-spectrum coordinate of Hoang et al. (NeurIPS
2023), whose movement during sparse training tracks accuracy and which drives
PAGS/PEGS mask sampling. Definitions: ``SPEC.md`` (shared with the project).

Where things are (each package's docstring maps its modules):

* :mod:`fullspectrum.spectrum`: the engine (Δr, λ, Δr_imdb of one layer, SPEC §1–4), the
  analysis of a whole network (``analyze``) and the graphon estimate (G25);
* :mod:`fullspectrum.layers`: which tensors of a network are layers, and their names;
* :mod:`fullspectrum.checkpoints`: users' checkpoints read safely, the mask checkpoint file,
  atomic writes;
* :mod:`fullspectrum.pruning`: the pruning-at-initialisation generators and their registry;
* :mod:`fullspectrum.training`: dense, static and dynamic sparse training (ITOP, RigL);
* :mod:`fullspectrum.sampling`: PAGS/PEGS mask sampling (FS23);
* :mod:`fullspectrum.ntk`: empirical and graphon NTKs of sparse networks and their spectral
  summary (G25);
* :mod:`fullspectrum.topology`: the unrolled multipartite graph of a whole network, its
  topometrics and effective paths (MGE24);
* :mod:`fullspectrum.fingerprints`: graphon fingerprints of pruning methods over seeds and widths (G25);
* :mod:`fullspectrum.tickets`: lottery tickets (IMP with rewinding) and Early-Bird tickets;
* :mod:`fullspectrum.tracking`: ``Tracker``, a run folder for any PyTorch training loop;
* :mod:`fullspectrum.sweeps`, :mod:`fullspectrum.reproduction`: grids of commands run locally or
  on Ray, and the papers' tables reproduced through them with statistics;
* :mod:`fullspectrum.distributed`: Ray as an optional engine for sweep points and PAGS candidates;
* :mod:`fullspectrum.runs`: the run store (``run.json``, the ``metrics.sqlite`` schema, mask
  snapshots), exports, and the job processes the app starts;
* :mod:`fullspectrum.models`, :mod:`fullspectrum.data`: the model zoo and the offline datasets;
* :mod:`fullspectrum.cli`: the ``fullspectrum`` command, one module per subcommand;
* shared by all: :mod:`fullspectrum.errors`, :mod:`fullspectrum.devices`, :mod:`fullspectrum.seeds`.

Public names are imported lazily, so ``import fullspectrum`` stays light until a name is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "LayerSpectrum": "fullspectrum.spectrum",
    "DegreeClass": "fullspectrum.spectrum",
    "SPECTRUM_FIELDS": "fullspectrum.spectrum",
    "layer_spectrum": "fullspectrum.spectrum",
    "layer_spectra": "fullspectrum.spectrum",
    "empirical_ntk": "fullspectrum.ntk",
    "graphon_ntk": "fullspectrum.ntk",
    "ntk_spectrum": "fullspectrum.ntk",
    "NTKSpectrum": "fullspectrum.ntk",
    "top_singular_values": "fullspectrum.spectrum",
    "regular_subgraphs": "fullspectrum.spectrum",
    "full_spectrum_vector": "fullspectrum.spectrum",
    "moving_distance": "fullspectrum.spectrum",
    "network_summary": "fullspectrum.spectrum",
    "graphon_estimate": "fullspectrum.spectrum.graphon",
    "Graphon": "fullspectrum.spectrum.graphon",
    "analyze": "fullspectrum.spectrum.network",
    "load_sparse_checkpoint": "fullspectrum.checkpoints",
    "SparseCheckpoint": "fullspectrum.checkpoints",
    "save_mask_checkpoint": "fullspectrum.checkpoints.mask_file",
    "load_mask_checkpoint": "fullspectrum.checkpoints.mask_file",
    "MaskCheckpoint": "fullspectrum.checkpoints.mask_file",
    "generate_masks": "fullspectrum.pruning",
    "apply_masks": "fullspectrum.pruning",
    "MaskResult": "fullspectrum.pruning",
    "erk_densities": "fullspectrum.pruning",
    "RunStore": "fullspectrum.runs",
    "list_runs": "fullspectrum.runs",
    "export_run": "fullspectrum.runs",
    "ingest_checkpoint": "fullspectrum.runs.ingest",
    "FullSpectrumError": "fullspectrum.errors",
    "MaskError": "fullspectrum.errors",
    "CheckpointError": "fullspectrum.errors",
    "train": "fullspectrum.training",
    "resume": "fullspectrum.training",
    "TrainConfig": "fullspectrum.training",
    "build_model": "fullspectrum.models",
    "MODEL_NAMES": "fullspectrum.models",
    "load_dataset": "fullspectrum.data",
    "make_loader": "fullspectrum.data",
    "DatasetSplits": "fullspectrum.data",
    "DATASET_NAMES": "fullspectrum.data",
    "run_pags": "fullspectrum.sampling",
    "SamplingConfig": "fullspectrum.sampling",
    "SamplingResult": "fullspectrum.sampling",
    "Tracker": "fullspectrum.tracking",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fullspectrum' has no attribute {name!r}")
