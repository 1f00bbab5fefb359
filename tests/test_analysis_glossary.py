"""analysis.glossary: one table of definitions behind every hover text, expander and the Glossary page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.glossary import GLOSSARY, help_text, rows, term
from app.glossary import column_text
from fullspectrum.errors import UnknownNameError
from fullspectrum.spectrum.symbols import COUNT_LABELS, SYMBOLS

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


def test_every_symbol_and_count_the_app_names_is_defined():
    for column, symbol in SYMBOLS.items():
        assert term(symbol) is term(column)  # by symbol and by column: the same entry
    for column, words in COUNT_LABELS.items():
        assert term(words).column == column
    for name in (
        "d_c",
        "n_c",
        "l_c",
        "r_c",
        "f_c",
        "qualifies",
        "PAGS score",
        "IoU",
        "dead paths",
        "at chance",
    ):
        assert term(name).meaning


def test_entries_say_which_direction_is_better_and_the_rules():
    assert {t.better for t in GLOSSARY.values()} <= {"higher", "lower", ""}
    assert term("delta_r").better == "higher" and term("dead paths").better == "lower"
    assert "d_c ≥ 3, n_c ≥ 2" in term("qualifies").meaning  # SPEC §3's rule
    assert "max(l_c, r_c) / (l_c + r_c − 1)" in term("f_c").meaning
    assert "‖u‖" in term("PAGS score").meaning and "Δr_imdb and its ‖u‖" in term("PAGS score").meaning
    assert help_text("delta_r").endswith("Higher is better.") and help_text("no such thing") == ""
    with pytest.raises(UnknownNameError, match="unknown glossary term 'x'"):
        term("x")
    assert len(rows()) == len(GLOSSARY) and rows(["f_c"])[0]["term"] == "f_c"


def test_the_glossary_page_shows_the_whole_table(tmp_path, monkeypatch):
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(tmp_path))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/glossary.py")
    at.run()
    assert not at.exception
    assert list(at.dataframe[0].value["term"]) == list(GLOSSARY)


def test_comparison_columns_get_their_metrics_help():
    assert column_text("delta_r_delta").startswith("B − A of: Ramanujan gap")
    assert column_text("lambda_w_a").startswith("Mask A's value of: Weighted spectral gap")
    assert column_text("base_score").startswith("The base mask's value of: ‖u‖")
    assert column_text("shape") == ""
