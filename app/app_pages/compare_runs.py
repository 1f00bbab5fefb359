"""Compare runs: one metric over steps across several runs, as experiment trackers draw it — smoothing,
log axes, mean ± spread per configuration — and a parallel-coordinates view of the finished runs
(``analysis.run_curves``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.run_curves import (
    EVAL_METRICS,
    NETWORK_METRICS,
    config_group,
    group_curves,
    parallel_table,
    run_curve,
)
from app import cache, export, glossary, widgets
from app.charts.curves import overlay_figure, parallel_figure
from fullspectrum.errors import FullSpectrumError

GROUP_KEYS = ("method", "density", "data", "model")
# Configuration keys a user may group runs by (seeds of one configuration form a band).

st.title("Compare runs")
runs = widgets.load_runs()
training = runs[(runs["kind"] == "train") & (runs["status"] != "corrupt")] if not runs.empty else runs
if training.empty:
    st.info("No training runs yet: train one on **Live training** or with `fullspectrum train`.")
    st.stop()

selected = st.session_state.get("selected_run")
mine = training[training["path"] == selected]
if "cr_runs" not in st.session_state:  # start with the selected run's dataset and model
    like = training
    if len(mine):
        row = mine.iloc[0]
        like = training[(training["data"] == row["data"]) & (training["model"] == row["model"])]
    st.session_state["cr_runs"] = like["path"].tolist()
labels = {row["path"]: widgets.run_label(row) for row in training.to_dict("records")}
picked = st.multiselect("Runs", list(labels), format_func=labels.get, key="cr_runs")
if not picked:
    st.info("Pick one or more runs.")
    st.stop()
mixed = training[training["path"].isin(picked)][["data", "model"]].drop_duplicates()
if len(mixed) > 1:
    st.warning(
        f"These runs span {len(mixed)} dataset/model pairs: their accuracies are not comparable on one axis."
    )

c1, c2, c3, c4 = st.columns([2, 1, 2, 2])
metric = c1.selectbox("Metric", [*EVAL_METRICS, *NETWORK_METRICS], key="cr_metric",
                      help=glossary.help_text("ℓ2-moving distance"))  # fmt: skip
split = c2.selectbox("Split", ["val", "test", "train"], key="cr_split", disabled=metric not in EVAL_METRICS)
smoothing = c3.slider("Smoothing (TensorBoard's EMA weight)", 0.0, 0.99, 0.0, 0.01, key="cr_smooth")
group_by = c4.multiselect("Group by (mean ± std over the rest)", GROUP_KEYS, key="cr_group")
log_x = c1.checkbox("log step axis", key="cr_logx")
log_y = c2.checkbox("log value axis", key="cr_logy")

frames, unreadable = [], []
for path in picked:
    stamp = cache.run_stamp(path)
    try:
        curve = run_curve(metric, evals=cache.run_evals(path, stamp), network=cache.network_means(path, stamp),
                          split=split)  # fmt: skip
    except FullSpectrumError:
        unreadable.append(Path(path).name)
        continue
    row = training[training["path"] == path].iloc[0]
    group = config_group(row, group_by) if group_by else Path(path).name
    frames.append(curve.assign(run=Path(path).name, group=group))
if unreadable:
    st.caption(f"Not readable, left out: {', '.join(unreadable)}")
curves = (
    pd.concat(frames, ignore_index=True)
    if frames
    else pd.DataFrame(columns=["run", "group", "step", "value"])
)
if curves.empty or curves["value"].notna().sum() == 0:
    st.info(f"None of these runs recorded {metric}" + (f" on {split}." if metric in EVAL_METRICS else "."))
else:
    grouped = group_curves(curves) if group_by else None
    export.chart(
        overlay_figure(curves, grouped, metric=metric, smoothing=smoothing, log_x=log_x, log_y=log_y),
        f"{metric} across runs",
        key="cr_overlay",
    )
    st.download_button("curves.csv", curves.to_csv(index=False).encode(), file_name=f"{metric}_curves.csv",
                       mime="text/csv", key="cr_csv")  # fmt: skip

st.subheader("Parallel coordinates: density → method → distance → accuracy")
finished = [p for p in picked if p in set(training.loc[training["final_accuracy"].notna(), "path"])]
if len(finished) < 2:
    st.info("Pick at least two finished runs.")
else:
    study = cache.correlation_studies(
        tuple(finished), tuple(cache.run_stamp(p) for p in finished), include_chance=True
    )
    points = pd.concat([group.points for group in study.groups], ignore_index=True)
    table = parallel_table(points)
    export.chart(parallel_figure(table), "parallel coordinates", key="cr_parallel")
    export.table(
        table,
        "runs by density and method",
        hide_index=True,
        column_config=glossary.column_help(list(table.columns)),
    )
