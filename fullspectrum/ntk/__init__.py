"""Neural tangent kernels of sparse networks and their spectra (G25, SPEC §7b).

G25 (Pham et al., NeurIPS 2025, *The Graphon Limit Hypothesis*) explain the
trainability of a pruned network by the spectrum of its NTK: an empirical one,
measured on a batch of inputs, or the infinite-width *graphon NTK* of a ReLU MLP
whose masks are drawn from block graphons.

Modules:

* :mod:`~fullspectrum.ntk.empirical`: ``empirical_ntk``, the Gram matrix of a model with
  its masks on ``N`` inputs (``torch.func``, float64, chunked);
* :mod:`~fullspectrum.ntk.graphon_kernel`: ``graphon_ntk``, the SPEC §7b recursion with
  ReLU's arc-cosine closed forms;
* :mod:`~fullspectrum.ntk.summary`: ``ntk_spectrum``, the spectral summary
  (``NTKSpectrum``) of either.

Zoo models use PyTorch's standard parameterisation, so the scale of their NTK is
not comparable with the graphon NTK's (NTK parameterisation): compare the shapes of
normalised spectra, not their values.
"""

from __future__ import annotations

from fullspectrum.ntk.empirical import empirical_ntk
from fullspectrum.ntk.graphon_kernel import graphon_ntk
from fullspectrum.ntk.summary import NTKSpectrum, ntk_spectrum

__all__ = ["NTKSpectrum", "empirical_ntk", "graphon_ntk", "ntk_spectrum"]
