"""analysis.unrolled_view: masks on their zoo network, unrolled (MGE24), against hand counts and the library."""

from __future__ import annotations

import pytest
import torch

from analysis.unrolled_view import TERMS, TOPOMETRICS, metric_table, network_graph, read_unrolled, zoo_network
from fullspectrum.errors import FullSpectrumError
from fullspectrum.topology import effective_paths, topometrics

# the zoo MLP on digits: 64 inputs -> 256 -> 128 -> 10
EYE = {"features.1.weight": torch.eye(256, 64, dtype=torch.bool)}


@pytest.fixture(scope="module")
def view():
    return read_unrolled(network_graph(EYE, {}, "mlp", "digits"))


def test_hand_counted_mlp(view):
    # features.1 keeps 64 weights (unit i of the input to unit i), so 64 of its 256 outputs are reached;
    # features.3 is dense: only the 64 x 128 weights out of reached units are effective
    layers = view.layers.set_index("layer")
    assert layers.loc["features.1", ["kept", "effective", "ineffective"]].tolist() == [64, 64, 0]
    assert layers.loc["features.3", ["kept", "effective", "ineffective"]].tolist() == [
        32768,
        64 * 128,
        32768 - 8192,
    ]
    assert layers.loc["classifier", ["kept", "effective"]].tolist() == [1280, 1280]
    assert (layers["effective"] + layers["ineffective"] == layers["kept"]).all()
    parts = view.partitions
    assert parts["partition"].tolist() == ["input", "features.1", "features.3", "classifier"]
    assert parts["units"].tolist() == [64, 256, 128, 10] and parts["live"].tolist() == [64, 64, 128, 10]
    assert parts["reached"].tolist() == [64, 64, 128, 10] and parts["reaching"].tolist() == [64, 256, 128, 10]
    assert view.counts["nodes"] == 458 and view.counts["edges"] == 64 + 32768 + 1280


def test_the_numbers_are_the_librarys_and_every_metric_is_explained(view):
    graph = network_graph(EYE, {}, "mlp", "digits")
    expected = topometrics(graph).as_dict()
    table = view.metrics.set_index("metric")
    for name in TOPOMETRICS:
        if name == "motifs_4":
            assert name not in table.index  # not computed unless asked
            continue
        assert table.loc[name, "value"] == pytest.approx(float(expected[name]))
        assert table.loc[name, "meaning"], name
    assert table.loc["source_nodes", "normalised"] == pytest.approx(expected["source_nodes_norm"])
    assert effective_paths(graph).as_dict()["layers"] == view.layers.to_dict("records")
    for name in TERMS:
        assert table.loc[name, "meaning"] if name in table.index else True


def test_weights_are_copied_and_a_wrong_one_is_named():
    weight = torch.full((256, 64), 0.5)
    net, shape = zoo_network("mlp", "digits", {"features.1.weight": weight})
    assert shape == (1, 8, 8) and torch.equal(
        dict(net.named_parameters())["features.1.weight"].detach(), weight
    )
    with pytest.raises(FullSpectrumError, match="weight features.1.weight") as error:
        zoo_network("mlp", "digits", {"features.1.weight": torch.ones(3, 3)})
    assert "\n" not in str(error.value)


def test_masks_of_another_network_and_bad_options_are_refused():
    with pytest.raises(FullSpectrumError, match="fc1.weight"):
        network_graph({"fc1.weight": torch.ones(4, 4, dtype=torch.bool)}, {}, "mlp", "digits")
    with pytest.raises(FullSpectrumError, match="skips 'all'"):
        network_graph(EYE, {}, "mlp", "digits", skips="all")


def test_metric_table_leaves_out_what_was_not_computed():
    table = metric_table(
        {"nodes": 3, "edges": 2, "sink_nodes": 1, "sink_nodes_norm": 1 / 3, "motifs_4": None}
    )
    assert table["metric"].tolist() == ["nodes", "edges", "sink_nodes"]
    assert table.set_index("metric").loc["sink_nodes", "normalised"] == pytest.approx(1 / 3)
