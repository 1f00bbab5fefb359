"""Errors the library raises for bad input.

Every error is one readable line that names the input (file, layer) and the
problem, so the command line can print it as is and exit with status 2, and the
app can show it with ``st.error``. All are ``ValueError`` subclasses so callers
that already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class FullSpectrumError(ValueError):
    """Base class: bad input the user can fix (exit status 2 on the command line)."""


class MaskError(FullSpectrumError):
    """A mask or weight tensor is unusable (non-binary, wrong shape, NaN/Inf weights)."""


class CheckpointError(FullSpectrumError):
    """A checkpoint file is missing, corrupt, unsafe to load, or holds no layers."""


class TopologyError(FullSpectrumError):
    """A model cannot be encoded as an unrolled graph (an operation the tracer cannot encode, untraceable code)."""


class UnknownNameError(FullSpectrumError):
    """A registry lookup (model, dataset, generator, method...) used an unknown name."""


def unknown_name(kind: str, name: str, valid) -> UnknownNameError:
    """The one message every registry uses: ``unknown model 'x'; choose from a, b, c``."""
    return UnknownNameError(f"unknown {kind} {name!r}; choose from {', '.join(sorted(valid))}")
