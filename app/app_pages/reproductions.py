"""Reproductions: FS23 Tables 2–3 reproduced through the sweep machinery (SPEC §9) — accuracy as mean ± 95%
CI per method and density, the cost of each method in training iterations, FS23's claims tested on
differences paired by seed (Holm-corrected), and the distance–accuracy correlation beside density.
A reproduction still running shows what has finished so far, and says so."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.glossary import help_text
from analysis.reproduction_view import correlation_verdict
from app import cache, export, glossary, widgets
from app.charts.reproduction import cost_accuracy_figure
from fullspectrum.errors import FullSpectrumError
from fullspectrum.reproduction.fs23_table import POINTS_FILE, REPORT_FILE, RESULTS_FILE, SWEEP_DIR

ERRORS = (FullSpectrumError, OSError, KeyError, ValueError)
WATCHED = (POINTS_FILE, RESULTS_FILE, REPORT_FILE, f"{SWEEP_DIR}/points.csv")
"""The files whose changes re-read a reproduction (the sweep's table grows as its runs finish)."""


def _file_stamp(path: Path) -> tuple:
    try:
        info = path.stat()
        return (info.st_mtime_ns, info.st_size)
    except OSError:
        return (None, None)


st.title("Reproductions")
st.caption(
    "`fullspectrum reproduce fs23-table` trains every method of FS23's Tables 2–3 the same way (static "
    "sparse training from its mask) over several seeds: the generators' masks, PAGS@0 over each, PEGS@100 "
    "and @500, IMP (rewind 0 and k) and Early-Bird. Results are per dataset, never pooled."
)
runs = widgets.load_runs()
folders = runs[runs["kind"] == "reproduction"] if not runs.empty else runs
if folders.empty:
    st.info(
        "No reproduction in the run folders yet. Run one with `fullspectrum reproduce fs23-table --preset "
        "quick --out DIR` (about 15 minutes) and add DIR's parent under **Run folders** in the sidebar."
    )
    st.stop()

path = widgets.run_picker(
    "Reproduction", folders, preferred=st.session_state.get("selected_run"), key="rp_run"
)
stamp = (cache.run_stamp(path), *(_file_stamp(Path(path) / name) for name in WATCHED))
try:
    view = cache.reproduction(path, stamp)
except ERRORS as error:
    widgets.error_box(error, what=f"The reproduction {Path(path).name} cannot be read")
    st.stop()

st.markdown(f"Preset **{view.preset}** · status **{view.status}**")
if view.notes:
    (st.warning if not view.complete else st.info)("\n".join(f"- {note}" for note in view.notes))
if view.expected:
    st.progress(
        min(1.0, len(view.points) / view.expected), text=f"{len(view.points)} of {view.expected} trained"
    )
if view.results.empty:
    st.info("No trained network has finished yet: the tables appear as the sweep's runs finish.")
    st.stop()


def _ci(low: float, high: float) -> str:
    return "— (one seed)" if math.isnan(low) else f"[{low:.4f}, {high:.4f}]"


for data, results in view.results.groupby("data", sort=True):
    st.header(f"{data}")
    st.subheader("Accuracy (mean ± 95% CI over seeds, Student's t) and cost")
    shown = pd.DataFrame(
        {
            "density": results["density"],
            "method": results["label"],
            "n (seeds)": results["n"],
            "accuracy": results["mean_accuracy"],
            "95% CI": [_ci(lo, hi) for lo, hi in zip(results["ci95_low"], results["ci95_high"], strict=True)],
            "iterations": results["iterations"],
        }
    )
    export.table(
        shown,
        f"reproduction results {data}",
        hide_index=True,
        width="stretch",
        column_config={
            "accuracy": st.column_config.NumberColumn(format="%.4f"),
            "iterations": st.column_config.NumberColumn(
                format="%,.0f", help="finding the mask (PEGS warm-up, every IMP level, the Early-Bird search; 0 "
                "for a generator and PAGS) plus the final training",
            ),
            "95% CI": st.column_config.TextColumn(help=help_text("95% CI")),
        },
    )  # fmt: skip
    export.chart(
        cost_accuracy_figure(results, title=f"Cost vs accuracy on {data}"),
        f"cost vs accuracy {data}",
        width="stretch",
        key=f"rp_cost_{data}",
    )
    st.subheader("FS23's claims (differences paired by seed, Holm-corrected)")
    claims = view.claims[view.claims["data"] == data]
    if claims.empty:
        st.info("No claim can be tested yet: each needs both methods trained on the same seeds.")
    else:
        for row in claims.itertuples():
            if row.holds:
                st.success(row.verdict)
            elif row.n >= 2 and row.p_holm < 0.05:  # significant, the other way
                st.error(row.verdict)
            else:
                st.warning(row.verdict)
        tested = claims["p_holm"].notna() & (claims["n"] >= 2)
        holding = int(claims["holds"].sum())
        opposite = int((tested & (claims["p_holm"] < 0.05) & ~claims["holds"]).sum())
        untested = int((~tested).sum())
        st.caption(
            f"Of {len(claims)} claims (Holm's correction over this dataset's claims): {holding} hold here with 95% "
            f"confidence, {opposite} are significant the other way, {len(claims) - holding - opposite - untested} "
            f"are not significant, {untested} could not be tested (too few paired seeds, or no spread between "
            "them). FS23's own figures are for ResNet-18/34 on CIFAR-100 at density 0.01; only the ordering of "
            "methods compares."
        )

st.header("ℓ2-moving distance vs accuracy (FS23 Fig. 3), with the density-only baseline")
if view.correlations.empty:
    st.info("No finished ITOP run yet: the correlation appears when the sweep's ITOP runs finish.")
else:
    table = view.correlations.assign(
        **{"Pearson r [95% CI]": [
            "n/a" if math.isnan(r) else f"{r:+.2f} [{lo:+.2f}, {hi:+.2f}]"
            for r, lo, hi in zip(view.correlations["pearson"], view.correlations["low"], view.correlations["high"],
                                 strict=True)
        ]}
    )[["data", "study", "n", "Pearson r [95% CI]"]]  # fmt: skip
    export.table(table, "reproduction correlations", hide_index=True, width="stretch")
    for line in correlation_verdict(view.correlations):
        (st.warning if "does NOT hold" in line else st.info)(line)
    glossary.expander(["ℓ2-moving distance", "density-only baseline", "Pearson ρ", "95% CI"])

if view.report:
    with st.expander("report.md", expanded=False):
        st.markdown(view.report)
