"""A slow, obviously-right re-implementation of SPEC §1–3 used as the test oracle.

Everything goes through a float64 dense eigendecomposition of the full
``(m+n)×(m+n)`` bipartite adjacency, as the papers' code did (but exact), with
plain loops for the bookkeeping. It shares no code with the library.
"""

from __future__ import annotations

import math

import numpy as np

NAN = float("nan")


def adjacency_top_two(biadjacency: np.ndarray) -> tuple[float, float]:
    """1st and 3rd largest eigenvalue magnitudes of [[0,B],[B^T,0]] = sigma1, sigma2."""
    rows, cols = biadjacency.shape
    full = np.zeros((rows + cols, rows + cols))
    full[:rows, rows:] = biadjacency
    full[rows:, :rows] = biadjacency.T
    eigenvalues = np.sort(np.linalg.eigvalsh(full))[::-1]  # +sigma_i ... -sigma_i
    sigma1 = float(eigenvalues[0])
    sigma2 = float(eigenvalues[1]) if min(rows, cols) >= 2 else 0.0
    return sigma1, max(sigma2, 0.0)


def sqrt_or_nan(x: float) -> float:
    return math.sqrt(x) if x >= 0 else NAN


def gap(d_left, d_right, sigma2):
    return sqrt_or_nan(d_left - 1) + sqrt_or_nan(d_right - 1) - sigma2


def oracle_spectrum(mask: np.ndarray, weight: np.ndarray | None, convention: str) -> dict:
    out = mask.shape[0]
    flat = mask.reshape(out, -1).astype(float)
    in_channels = mask.shape[1]
    per_channel = mask.reshape(out, in_channels, -1)
    dead_in_channels = sum(1 for c in range(in_channels) if per_channel[:, c, :].sum() == 0)
    live_rows = [j for j in range(flat.shape[0]) if flat[j].sum() > 0]
    live_cols = [i for i in range(flat.shape[1]) if flat[:, i].sum() > 0]
    result = {
        "dead_left": flat.shape[1] - len(live_cols),
        "dead_right": flat.shape[0] - len(live_rows),
        "dead_in_channels": dead_in_channels,
        "edges": int(flat.sum()),
        "density": flat.sum() / flat.size,
        "n_left": len(live_cols),
        "n_right": len(live_rows),
    }
    if result["edges"] == 0:
        nan_fields = (
            "d_left d_right sigma1 sigma2 omega1 omega2 delta_r delta_s lambda_w delta_r_imdb lambda_imsg"
        )
        result.update({k: NAN for k in nan_fields.split()})
        result.update(n_classes=0, in_regime=False)
        return result
    b = flat[np.ix_(live_rows, live_cols)]
    a = None
    if weight is not None:
        a = np.abs(weight.reshape(out, -1) * flat)[np.ix_(live_rows, live_cols)]
    e = b.sum()
    d_left, d_right = e / b.shape[1], e / b.shape[0]
    s1, s2 = adjacency_top_two(b)
    w1, w2 = adjacency_top_two(a) if a is not None else (NAN, NAN)
    in_regime = d_left >= 3 and d_right >= 3
    delta_r = gap(d_left, d_right, s2)
    delta_s = 2 * sqrt_or_nan(s1 - 1) - s2
    if convention == "r23" and not in_regime:
        delta_r = delta_s = NAN
    class_terms, class_lambdas = [], []
    degrees = b.sum(axis=0)
    for d in sorted(set(degrees.tolist())):
        cols = [i for i in range(b.shape[1]) if degrees[i] == d]
        sub_rows = [j for j in range(b.shape[0]) if b[j, cols].sum() > 0]
        sub = b[np.ix_(sub_rows, cols)]
        l_c, r_c = len(cols), len(sub_rows)
        d_r = sub.sum() / r_c
        if convention == "r23":
            qualifies = d >= 3 and l_c >= 3 and d_r >= 3
        else:
            qualifies = d >= 3 and l_c >= 2 and d_r > 1
        if not qualifies:
            continue
        _, cs2 = adjacency_top_two(sub)
        f = 1.0 if convention == "r23" else max(l_c, r_c) / (l_c + r_c - 1)
        class_terms.append(f * gap(d, d_r, cs2))
        if a is not None:
            cw1, cw2 = adjacency_top_two(a[np.ix_(sub_rows, cols)])
            class_lambdas.append(f * (cw1 - cw2))
    result.update(
        d_left=d_left,
        d_right=d_right,
        sigma1=s1,
        sigma2=s2,
        omega1=w1,
        omega2=w2,
        delta_r=delta_r,
        delta_s=delta_s,
        lambda_w=w1 - w2,
        delta_r_imdb=float(np.mean(class_terms)) if class_terms else NAN,
        lambda_imsg=float(np.mean(class_lambdas)) if class_lambdas else NAN,
        n_classes=len(class_terms),
        in_regime=in_regime,
    )
    return result
