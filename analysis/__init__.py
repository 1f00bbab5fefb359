"""Studies that consume runs and masks; the app draws what these compute.

* :mod:`~analysis.compare`: two masks of one network compared layer by layer, with a plain summary.
* :mod:`~analysis.compare_views`: two masks' unrolled views (MGE24) and NTK summaries (G25) side by side.
* :mod:`~analysis.dead_paths`: dead units of one layer that make the next layer's kept weights useless.
* :mod:`~analysis.evidence`: the measured accuracy of a mask: the runs that trained it or made it, over seeds.
* :mod:`~analysis.verdict`: which of two masks should train better, by a registry of predictors, beside what
  the runs measured.
* :mod:`~analysis.run_curves`: one metric over steps across runs: smoothing, mean ± std per configuration,
  parallel coordinates.
* :mod:`~analysis.run_admin`: tag, rename and delete the app's own runs (never read-only ones).
* :mod:`~analysis.glossary`: one table of definitions for every symbol the app shows, with the better direction.
* :mod:`~analysis.correlation`: final ℓ2-moving distance vs final accuracy across runs, beside density (FS23 Fig. 3; MGE24),
  per dataset and model, by requested density, with bootstrap intervals.
* :mod:`~analysis.chance`: chance-level accuracy of each dataset; whether a run learned anything.
* :mod:`~analysis.embedding`: a PAGS population's network means and per-layer winners (its 2-D map is
  :mod:`fullspectrum.sampling.embedding`).
* :mod:`~analysis.mask_sources`: the masks of a run snapshot, a PAGS candidate or an uploaded checkpoint.
* :mod:`~analysis.predictors`: which metrics predict accuracy (MGE24 §4): cross-validated R² and ρ per
  feature set, beside the density-only baseline; :mod:`~analysis.run_features` builds its feature table.
* :mod:`~analysis.layer_view`: one layer of a set of masks, analysed for the graph inspector.
* :mod:`~analysis.width_limit`: G25's width limit: each generator's graphon estimates over a widening MLP,
  the distances between successive widths and to the widest, and whether each curve falls.
* :mod:`~analysis.trainability`: G25's trainability claim: NTK energy concentration at initialisation beside
  early descent of static sparse training, against Random and the density-only baseline, with intervals.
* :mod:`~analysis.unrolled_view`: one set of masks on its zoo network seen unrolled (MGE24): effective and
  ineffective weights per layer, live units per partition, the topometrics with their meanings.
* :mod:`~analysis.graphon_studies`: G25's cached width-limit and trainability studies read back, where they find
  the claims do not hold, fingerprints and NTK spectra of masks on demand.
* :mod:`~analysis.reproduction_view`: a reproduction folder of FS23 Tables 2–3 read back, whole or partial while
  it runs: results, paired claims and the distance–accuracy correlation per dataset.

Depends on `fullspectrum`; never on Streamlit or Plotly (the app imports this, not the reverse).
"""
