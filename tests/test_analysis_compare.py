"""Tests for analysis.compare: two masks compared layer by layer, with a summary from the numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.compare import CLASS_COLUMNS, METRIC_FIELDS, compare_masks, describe_layer
from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectrum, regular_subgraphs


def _random(shape, density, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density


def _network(seed=0):
    return {
        "conv1.weight": _random((16, 8, 3, 3), 0.3, seed),
        "fc.weight": _random((10, 32), 0.5, seed + 1),
    }


def test_identical_masks_have_iou_one_and_zero_deltas():
    masks = _network()
    result = compare_masks(masks, {k: v.clone() for k, v in masks.items()})
    assert (result.table["iou"] == 1.0).all()
    for field in METRIC_FIELDS:
        deltas = result.table[f"{field}_delta"].astype(float)
        assert ((deltas == 0) | deltas.isna()).all(), field
    assert result.summary[0] == "A and B are the same mask in all 2 layers."
    assert len(result.summary) == 1


def test_table_matches_layer_spectrum_and_classes_match_regular_subgraphs():
    a, b = _network(0), _network(5)
    weights = {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(3)) for k, v in a.items()}
    result = compare_masks(a, b, weights_a=weights, weights_b=weights)
    assert result.table["layer"].tolist() == ["conv1", "fc"]  # module paths, no ".weight"
    for side, masks in (("a", a), ("b", b)):
        for name, row in result.table.set_index("layer").iterrows():
            expected = layer_spectrum(masks[f"{name}.weight"], weights[f"{name}.weight"]).as_dict()
            for field in SPECTRUM_FIELDS:
                got, want = row[f"{field}_{side}"], expected[field]
                assert got == pytest.approx(want, nan_ok=True), (name, field)
            classes = regular_subgraphs(masks[f"{name}.weight"])
            mine = result.classes.query("layer == @name and mask == @side.upper()")
            assert len(mine) == len(classes) == row[f"classes_{side}"]
            assert mine["qualifies"].sum() == row[f"n_classes_{side}"]
    assert list(result.classes.columns) == list(CLASS_COLUMNS)
    lambda_delta = result.table["lambda_w_b"] - result.table["lambda_w_a"]
    np.testing.assert_allclose(result.table["lambda_w_delta"], lambda_delta)


def test_iou_closed_form():
    a = {"fc.weight": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)}
    b = {"fc.weight": torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1]], dtype=torch.bool)}
    row = compare_masks(a, b).table.iloc[0]
    assert row["shared_edges"] == 2
    assert row["iou"] == pytest.approx(2 / 5)
    assert row["edges_delta"] == 1


def test_dead_input_channels_and_lost_classes_are_named_in_the_summary():
    a = _network()
    b = {k: v.clone() for k, v in a.items()}
    b["conv1.weight"][:, :3] = False  # 3 dead input channels in B
    result = compare_masks(a, b)
    row = result.table.set_index("layer").loc["conv1"]
    assert row["dead_in_channels_delta"] == 3
    assert row["dead_left_delta"] == 27
    assert any(s.startswith("conv1: B has 3 more dead input channels (0 vs 3)") for s in result.summary)
    assert not any(s.startswith("fc:") for s in result.summary)  # fc is identical

    # B: every input unit of degree 1 -> no class can qualify (d_c >= 3)
    c = {"fc.weight": torch.eye(10, 32, dtype=torch.bool)}
    result = compare_masks({"fc.weight": a["fc.weight"]}, c)
    assert result.table.loc[0, "n_classes_b"] == 0 and result.table.loc[0, "n_classes_a"] > 0
    text = describe_layer(result.table.iloc[0])
    assert "has no qualifying degree class (A has" in text
    assert "Δr_imdb is undefined in B" in text


def test_summary_ranks_layers_by_spectral_distance():
    a = {"l1.weight": _random((20, 20), 0.5, 1), "l2.weight": _random((20, 20), 0.5, 2)}
    b = {"l1.weight": a["l1.weight"].clone(), "l2.weight": _random((20, 20), 0.15, 3)}
    b["l1.weight"][0, :5] = ~b["l1.weight"][0, :5]  # a small change in l1, a big one in l2
    result = compare_masks(a, b, top=2)
    dist = result.table.set_index("layer")["u_distance"]
    assert dist["l2"] > dist["l1"] > 0
    named = [s.split(":")[0] for s in result.summary[1:]]
    assert named == ["l2", "l1"]
    assert "lower in B" in result.summary[1]  # sparser B: smaller gaps
    assert len(compare_masks(a, b, top=1).summary) == 2


def test_layer_names_normalise_and_mismatches_are_skipped():
    a = {
        "module.fc.weight": torch.ones(3, 4, dtype=torch.bool),
        "conv.weight": torch.ones(2, 2, 3, 3, dtype=torch.bool),
    }
    b = {"fc": torch.ones(3, 4, dtype=torch.bool), "conv.weight": torch.ones(2, 3, 3, 3, dtype=torch.bool)}
    b["only_b.weight"] = torch.ones(2, 2, dtype=torch.bool)
    result = compare_masks(a, b)
    assert result.table["layer"].tolist() == ["fc"]
    reasons = dict(result.skipped)
    assert reasons["only_b"] == "only in mask B"
    assert reasons["conv"].startswith("shapes differ")
    assert any("conv not compared: shapes differ" in s for s in result.summary)


def test_errors_are_one_line_full_spectrum_errors():
    with pytest.raises(FullSpectrumError, match="share no layer"):
        compare_masks({"a.weight": torch.ones(2, 2)}, {"b.weight": torch.ones(2, 2)})
    with pytest.raises(FullSpectrumError, match=r"fc \(B\)"):
        compare_masks({"fc.weight": torch.ones(2, 2)}, {"fc.weight": torch.full((2, 2), 0.5)})


def test_long_form_and_progress():
    calls = []
    result = compare_masks(_network(0), _network(1), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    long = result.long(("delta_r", "edges"))
    assert list(long.columns) == ["layer", "metric", "a", "b", "delta"]
    assert len(long) == 4
    np.testing.assert_allclose(long["delta"], long["b"] - long["a"])
