"""Files in and out: users' checkpoints, the project's mask checkpoint, atomic writes (SPEC §8).

Modules:

* :mod:`~fullspectrum.checkpoints.reading`: read the sparse checkpoints users already have
  (``torch.nn.utils.prune`` state dicts, plain state dicts, sparselearning/ITOP files,
  ``.safetensors``), always with ``torch.load(..., weights_only=True)``;
* :mod:`~fullspectrum.checkpoints.sharded`: Hugging Face model folders (sharded ``.safetensors`` with
  ``model.safetensors.index.json``), their layers planned from the headers and read one weight at a time;
* :mod:`~fullspectrum.checkpoints.limits`: what a tensor read from a file may be (no bigger than its
  storage, dense, under ``FULLSPECTRUM_MAX_TENSOR_ELEMENTS``), checked before anything is made of it;
* :mod:`~fullspectrum.checkpoints.pickles`: what a ``torch.save`` file's pickles ask for (globals,
  protocol, claimed storage sizes), read without unpickling them;
* :mod:`~fullspectrum.checkpoints.mask_file`: SPEC §8's mask checkpoint
  (``{"masks", "state_dict", "meta"}``), written by ``prune``/``pags``, read by ``train --mask``;
* :mod:`~fullspectrum.checkpoints.mask_safetensors`: the mask checkpoint as a ``.safetensors`` file
  (``uint8`` masks, ``meta`` in the metadata), for language-model tooling;
* :mod:`~fullspectrum.checkpoints.atomic`: write-to-temporary-then-rename, so a crash never
  leaves a half-written file (run files, checkpoints, caches).
"""

from fullspectrum.checkpoints.atomic import json_safe, write_atomic, write_json_atomic
from fullspectrum.checkpoints.limits import MAX_TENSOR_ELEMENTS, MAX_TENSOR_ELEMENTS_ENV, max_tensor_elements
from fullspectrum.checkpoints.mask_file import MaskCheckpoint, load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.checkpoints.reading import (
    SparseCheckpoint,
    existing_file,
    interpret_checkpoint,
    load_sparse_checkpoint,
    safe_torch_load,
)

__all__ = [
    "MAX_TENSOR_ELEMENTS",
    "MAX_TENSOR_ELEMENTS_ENV",
    "MaskCheckpoint",
    "SparseCheckpoint",
    "existing_file",
    "interpret_checkpoint",
    "json_safe",
    "load_mask_checkpoint",
    "load_sparse_checkpoint",
    "max_tensor_elements",
    "safe_torch_load",
    "save_mask_checkpoint",
    "write_atomic",
    "write_json_atomic",
]
