"""Compare masks' whole-network tables: two unrolled views and two NTK summaries side by side."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.compare_views import layers_side_by_side, metrics_side_by_side, ntk_side_by_side
from analysis.unrolled_view import unrolled_view
from fullspectrum.ntk import ntk_spectrum


def _masks(density: float, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = {"features.1.weight": (256, 64), "features.3.weight": (128, 256), "classifier.weight": (10, 128)}
    return {name: torch.rand(shape, generator=generator) < density for name, shape in shapes.items()}


@pytest.fixture(scope="module")
def views():
    return tuple(unrolled_view(_masks(d, s), {}, "mlp", "digits") for d, s in ((0.05, 0), (0.2, 1)))


def test_the_metrics_of_both_masks_line_up_with_their_difference(views):
    a, b = views
    table = metrics_side_by_side(a.metrics, b.metrics).set_index("metric")
    assert (
        table.loc["edges", "A"] == a.topometrics["edges"]
        and table.loc["edges", "B"] == b.topometrics["edges"]
    )
    assert table.loc["edges", "B − A"] == b.topometrics["edges"] - a.topometrics["edges"]
    assert (table["meaning"] != "").all()


def test_per_layer_effective_shares(views):
    a, b = views
    table = layers_side_by_side(a.layers, b.layers).set_index("layer")
    kept = a.layers.set_index("layer")
    for layer in kept.index:
        assert table.loc[layer, "kept A"] == kept.loc[layer, "kept"]
        assert table.loc[layer, "share A"] == pytest.approx(
            kept.loc[layer, "effective"] / kept.loc[layer, "kept"]
        )
    assert ((table["share A"] <= 1) & (table["share B"] <= 1)).all()
    assert table["share B"].mean() > table["share A"].mean()  # denser masks strand fewer weights


def test_ntk_rows_are_the_two_summaries():
    spectra = [ntk_spectrum(np.diag(values)) for values in ([4.0, 2.0, 1.0], [1.0, 1.0, 1.0])]
    table = ntk_side_by_side(*spectra).set_index("mask")
    assert table.loc["A", "lambda_max"] == 4.0 and table.loc["B", "condition"] == 1.0
    assert table.loc["B", "effective_rank"] == pytest.approx(3.0)
