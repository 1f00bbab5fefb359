"""Tests for analysis.embedding: the PAGS population map (UMAP, PCA fallback)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.embedding import (
    EMBEDDING_COLUMNS,
    EMBEDDING_FILE,
    MIN_UMAP_CANDIDATES,
    embed_population,
    embedding_table,
    layer_winners,
    load_embedding,
    network_points,
    population_matrix,
    save_embedding,
)
from fullspectrum.errors import FullSpectrumError
from fullspectrum.sampling import ASSEMBLED, BASE

LAYERS = ("conv1", "fc1", "fc2")


def _population(n: int, *, seed: int = 0, clusters: bool = False) -> pd.DataFrame:
    """Candidates 0..n-1 plus base (-1) and assembled (-2); two far-apart clusters if asked."""
    rng = np.random.default_rng(seed)
    rows = []
    for candidate in [-2, -1, *range(n)]:
        offset = 50.0 if clusters and candidate >= 0 and candidate % 2 else 0.0
        for layer in LAYERS:
            u = rng.normal(size=4) + offset
            rows.append(
                {
                    "candidate": candidate,
                    "layer": layer,
                    "delta_r": u[0],
                    "lambda_w": u[1],
                    "delta_r_imdb": u[2],
                    "lambda_imsg": u[3],
                    "score": float(np.linalg.norm(u)),
                    "won": False,
                }
            )
    return pd.DataFrame(rows)


def test_matrix_is_layer_major_concatenation_with_nan_as_zero():
    population = _population(3)
    population.loc[(population.candidate == 1) & (population.layer == "fc1"), "lambda_w"] = np.nan
    candidates, matrix, layers = population_matrix(population)
    assert layers == list(LAYERS)
    assert candidates.tolist() == [-2, -1, 0, 1, 2]
    assert matrix.shape == (5, 4 * len(LAYERS))
    row = population[population.candidate == 1].set_index("layer")
    expected = np.concatenate(
        [
            row.loc[layer, ["delta_r", "lambda_w", "delta_r_imdb", "lambda_imsg"]].to_numpy(float)
            for layer in LAYERS
        ]
    )
    expected[~np.isfinite(expected)] = 0.0
    np.testing.assert_array_equal(matrix[candidates.tolist().index(1)], expected)
    assert matrix[3, 5] == 0.0  # fc1's lambda_w of candidate 1


def test_small_population_falls_back_to_pca_and_says_so():
    population = _population(MIN_UMAP_CANDIDATES - 5)
    emb = embed_population(population, seed=3)
    assert emb.method == "pca"
    assert "PCA" in emb.note and "too few" in emb.note
    assert emb.frame["candidate"].tolist() == sorted(population["candidate"].unique())
    assert np.isfinite(emb.frame[["x", "y"]].to_numpy()).all()
    again = embed_population(population, seed=3)
    pd.testing.assert_frame_equal(emb.frame, again.frame)


def test_pca_matches_numpy_principal_components():
    population = _population(8)
    _, matrix, _ = population_matrix(population)
    emb = embed_population(population, method="pca")
    centred = matrix - matrix.mean(axis=0)
    eigenvalues = np.sort(np.linalg.eigvalsh(centred.T @ centred))[::-1]
    coords = emb.frame[["x", "y"]].to_numpy()
    # the variance along each PCA axis is the corresponding eigenvalue of the scatter matrix
    np.testing.assert_allclose((coords**2).sum(axis=0), eigenvalues[:2], rtol=1e-8)
    assert abs(coords[:, 0] @ coords[:, 1]) < 1e-8  # uncorrelated axes


def test_pca_separates_two_clusters():
    emb = embed_population(_population(10, clusters=True), method="pca")
    pcs = emb.frame.set_index("candidate")["x"]
    odd = pcs[[c for c in range(10) if c % 2]]
    even = pcs[[c for c in range(10) if not c % 2]]
    assert odd.min() > even.max() or odd.max() < even.min()


def test_degenerate_populations():
    one = _population(0).query("candidate == -1")
    emb = embed_population(one)
    assert emb.frame[["x", "y"]].to_numpy().tolist() == [[0.0, 0.0]]
    empty = embed_population(_population(0).iloc[:0])
    assert len(empty.frame) == 0
    with pytest.raises(FullSpectrumError, match="missing columns"):
        embed_population(pd.DataFrame({"candidate": [0]}))
    with pytest.raises(FullSpectrumError, match="unknown embedding method 'tsne'"):
        embed_population(_population(2), method="tsne")


def test_save_load_round_trip(tmp_path):
    emb = embed_population(_population(5))
    save_embedding(tmp_path, emb)
    back = load_embedding(tmp_path)
    assert back.method == emb.method and back.note == emb.note
    pd.testing.assert_frame_equal(back.frame, emb.frame, check_exact=False, rtol=1e-12)
    assert load_embedding(tmp_path / "nowhere") is None


@pytest.mark.slow
def test_umap_for_large_population_separates_clusters():
    population = _population(MIN_UMAP_CANDIDATES + 5, clusters=True)
    emb = embed_population(population, seed=0)
    assert emb.method == "umap" and "UMAP" in emb.note
    xy = emb.frame.set_index("candidate")[["x", "y"]]
    odd = xy.loc[[c for c in range(20) if c % 2]].to_numpy()
    even = xy.loc[[c for c in range(20) if not c % 2]].to_numpy()
    within = max(np.ptp(odd, axis=0).max(), np.ptp(even, axis=0).max())
    between = np.linalg.norm(odd.mean(axis=0) - even.mean(axis=0))
    assert between > within


def test_embedding_table_round_trips_through_a_plain_csv(tmp_path):
    population = _population(5)
    table = embedding_table(population, seed=1)
    assert list(table.columns) == ["candidate", "x", "y", "method", "note"]
    table.to_csv(tmp_path / "embedding.csv", index=False)  # what run_pags does with it
    back = load_embedding(tmp_path)
    assert back.method == "pca" and back.note.startswith("PCA of 7 masks")
    np.testing.assert_allclose(back.frame[["x", "y"]].to_numpy(), table[["x", "y"]].to_numpy())


def test_network_points_and_layer_winners():
    population = _population(3)
    population.loc[(population.candidate == 2) & (population.layer == "fc1"), "won"] = True
    population.loc[(population.candidate == -1) & (population.layer.isin(["conv1", "fc2"])), "won"] = True
    population.loc[(population.candidate == 0) & (population.layer == "fc2"), "delta_r"] = np.nan
    points = network_points(population)
    assert points["candidate"].tolist() == [-2, -1, 0, 1, 2]
    mine = population[population.candidate == 0]
    assert points.set_index("candidate").loc[0, "delta_r"] == pytest.approx(mine["delta_r"].dropna().mean())
    assert points.set_index("candidate")["layers_won"].to_dict() == {-2: 0, -1: 2, 0: 0, 1: 0, 2: 1}
    winners = layer_winners(population)
    assert winners["layer"].tolist() == list(LAYERS)
    assert winners["winner"].tolist() == [-1, 2, -1]
    won_row = population[(population.candidate == 2) & (population.layer == "fc1")].iloc[0]
    assert winners.loc[1, "score"] == pytest.approx(won_row["score"])


def test_embedding_to_csv_is_what_the_pags_hook_stores(tmp_path):
    emb = embed_population(_population(4))
    emb.to_csv(
        tmp_path / "embedding.csv", index=False
    )  # run_pags: embed(population).to_csv(path, index=False)
    back = load_embedding(tmp_path)
    assert back.method == emb.method and back.note == emb.note
    np.testing.assert_allclose(back.frame[["x", "y"]].to_numpy(), emb.frame[["x", "y"]].to_numpy())


# -- embedding.csv: one writer, one reader, one format ------------------------------------------------------


def test_save_embedding_writes_the_documented_columns_from_an_embedding_or_its_table(tmp_path):
    emb = embed_population(_population(3))
    for given in (emb, emb.table()):
        path = save_embedding(tmp_path, given)
        assert path == tmp_path / EMBEDDING_FILE
        table = pd.read_csv(path)
        assert tuple(table.columns) == EMBEDDING_COLUMNS
        assert set(table["method"]) == {emb.method} and set(table["note"]) == {emb.note}
        assert table["candidate"].tolist() == emb.frame["candidate"].tolist()


def test_load_embedding_names_a_file_of_another_format(tmp_path):
    (tmp_path / EMBEDDING_FILE).write_text("candidate,x\n0,1.0\n")
    with pytest.raises(FullSpectrumError, match="missing columns"):
        load_embedding(tmp_path)


@pytest.mark.slow  # a real process
def test_the_library_maps_the_population_without_importing_analysis(tmp_path):
    code = (
        "import sys\n"
        "from fullspectrum.cli import main\n"
        f"assert main(['pags', '--model', 'mlp', '--data', 'digits', '--generator', 'erk', '--density', '0.1',"
        f" '--population', '3', '--out', {str(tmp_path / 'run')!r}]) == 0\n"
        "assert not [m for m in sys.modules if m == 'analysis' or m.startswith('analysis.')], 'analysis imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True, timeout=300)
    back = load_embedding(tmp_path / "run")
    assert back is not None and back.method == "pca"
    assert tuple(pd.read_csv(tmp_path / "run" / EMBEDDING_FILE).columns) == EMBEDDING_COLUMNS
    assert sorted(back.frame["candidate"]) == [ASSEMBLED, BASE, 0, 1, 2]
