"""The per-graph gap formulas of SPEC §2, shared by layers and degree classes."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from fullspectrum.errors import unknown_name
from fullspectrum.spectrum.singular import matrix_singular_values

NAN = float("nan")
CONVENTIONS = ("fs23", "r23")


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise unknown_name("convention", convention, CONVENTIONS)
    return convention


def safe_sqrt(value: float) -> float:
    """``sqrt`` that gives NaN (never an exception, never 0) for a negative or NaN input."""
    return math.sqrt(value) if value >= 0 else NAN


def top_two(matrix: sp.spmatrix | np.ndarray | None) -> tuple[float, float]:
    """``(s1, s2)`` of a live biadjacency; ``s2 = 0`` with one unit on a side; NaN if absent."""
    if matrix is None or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        return NAN, NAN
    values = matrix_singular_values(matrix, 2)
    return float(values[0]), float(values[1]) if values.size > 1 else 0.0


def ramanujan_gap(d_left: float, d_right: float, sigma2: float) -> float:
    """``delta_r = sqrt(d_left - 1) + sqrt(d_right - 1) - sigma2`` (R23, FS23 "Δr")."""
    return safe_sqrt(d_left - 1) + safe_sqrt(d_right - 1) - sigma2


def canonical_gap(sigma1: float, sigma2: float) -> float:
    """``delta_s = 2 sqrt(sigma1 - 1) - sigma2`` (R23 "Δs")."""
    return 2 * safe_sqrt(sigma1 - 1) - sigma2


def size_factor(l_units: int, r_units: int) -> float:
    """FS23's Cheeger-style factor ``f = max(l, r) / (l + r - 1)``."""
    denominator = l_units + r_units - 1
    return max(l_units, r_units) / denominator if denominator > 0 else NAN


def nan_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else NAN
