"""One table of definitions for every symbol and word the app shows, with which direction is better.

The app's hover texts, column help, expanders and its Glossary page are all
generated from :data:`GLOSSARY`, so a symbol is explained the same way wherever
it appears. Metric symbols come from :mod:`fullspectrum.spectrum.symbols`
(the papers' spelling); the meanings follow SPEC §2–5 and the papers cited.

>>> term("f_c").meaning.startswith("Cheeger-style size factor")
True
>>> help_text("delta_r")  # by code column too
'Ramanujan gap (R23, FS23): how far the layer graph is inside the bipartite Ramanujan bound, sqrt(d_left − 1) + sqrt(d_right − 1) − σ2; a larger gap is a better expander. Higher is better.'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fullspectrum.errors import UnknownNameError, unknown_name
from fullspectrum.spectrum.symbols import metric_symbol


@dataclass(frozen=True)
class Term:
    """One entry of the glossary."""

    name: str
    """What the app shows (``Δr``, ``d_c``, ``PAGS score``)."""
    meaning: str
    """What it is, in one or two sentences, with its formula where it has one."""
    better: str = ""
    """``"higher"``, ``"lower"`` or ``""`` (neither: a description, not a quality)."""
    column: str = ""
    """The code's column name (``delta_r``) when it has one."""
    source: str = ""
    """Where it is defined (paper, SPEC section)."""

    def help(self) -> str:
        """The meaning and, when there is one, the better direction: a hover text."""
        return f"{self.meaning} {self.better.capitalize()} is better." if self.better else self.meaning


_TERMS = (
    Term(metric_symbol("delta_r"), "Ramanujan gap (R23, FS23): how far the layer graph is inside the bipartite "
         "Ramanujan bound, sqrt(d_left − 1) + sqrt(d_right − 1) − σ2; a larger gap is a better expander.",
         "higher", "delta_r", "SPEC §2"),
    Term(metric_symbol("delta_s"), "Canonical spectral gap from the trivial eigenvalue (R23): 2·sqrt(σ1 − 1) − σ2.",
         "higher", "delta_s", "SPEC §2"),
    Term(metric_symbol("lambda_w"), "Weighted spectral gap (FS23): ω1 − ω2 of the layer's weight magnitudes; "
         "connectivity once weights count. Needs weights (blank without them).", "higher", "lambda_w", "SPEC §2"),
    Term(metric_symbol("delta_r_imdb"), "Iterative mean difference of bound (FS23): mean over qualifying degree "
         "classes of f_c·Δr_c. FS23's PAGS rule keeps a layer only if this does not drop.", "higher",
         "delta_r_imdb", "SPEC §3"),
    Term(metric_symbol("lambda_imsg"), "Iterative mean weighted spectral gap (FS23): mean over qualifying "
         "classes of f_c·λ_c.", "higher", "lambda_imsg", "SPEC §3"),
    Term("u", "The 4-D full-spectrum vector (Δr, λ, Δr_imdb, λ_imsg) of a layer, NaN entries set to 0; the 3-D "
         "charts plot its first three.", "", "", "SPEC §4"),
    Term("ℓ2-moving distance", "‖u(t) − u(0)‖ of a layer; for a network the mean over layers. FS23 report the "
         "final distance tracks final accuracy under ITOP; MGE24 warn both move with density.", "", "moving_distance",
         "SPEC §4"),
    Term("B − A", "A comparison's difference per layer; for Δr, λ, Δr_imdb, λ_imsg a positive value means B is "
         "the better expander in that layer (each metric's own direction says which way is better).", "", "",
         "analysis.compare"),
    Term("exploration rate", "Fraction of a layer's weights that have been kept at least once so far (ITOP21).",
         "", "exploration_rate", "SPEC §6"),
    Term("density", "Fraction of weights kept: edges / weights.", "", "density", "SPEC §2"),
    Term("requested density", "The density a run asked for, to 3 significant digits: a static run from a mask "
         "file records its mask's exact 0.0500079, which is the requested 0.05.", "", "", "analysis.correlation"),
    Term("in_regime", "d_left ≥ 3 and d_right ≥ 3: the Ramanujan reading of Δr applies (defined for degree ≥ 3).",
         "", "in_regime", "SPEC §2"),
    Term("d_left, d_right", "Mean degree of the live input / output units of the layer graph.", "", "", "SPEC §1"),
    Term("σ1, σ2", "Largest and second singular values of the 0/1 biadjacency matrix.", "", "", "SPEC §2"),
    Term("ω1, ω2", "Largest and second singular values of the |weights| biadjacency matrix.", "", "", "SPEC §2"),
    Term("dead input units", "Input units (columns; a conv's kernel taps) with no kept weight.", "lower",
         "dead_left", "SPEC §1"),
    Term("dead output units", "Output units (rows; a conv's channels) with no kept weight: they emit a constant.",
         "lower", "dead_right", "SPEC §1"),
    Term("dead input channels", "Input channels of a layer none of whose weights is kept.", "lower",
         "dead_in_channels", "SPEC §1"),
    Term("N:M", "N:M sparsity: in every group of M consecutive input weights of an output unit exactly N are "
         "kept (the smallest M ≤ 16 that fits, so a 2:4 mask reads 2:4, not 4:8; empty when no N:M holds). Every "
         "output unit's inputs come in fixed-size groups: the pattern sparse tensor cores run fast.", "",
         "nm_pattern", "SPEC §1"),
    Term("block", "The transformer block (decoder layer) a layer belongs to, read from its parameter name "
         "(model.layers.3.mlp.down_proj is block 3); empty outside blocks.", "", "block", "SPEC §1"),
    Term("projection", "A transformer layer's role in its block (q_proj, k_proj, v_proj, o_proj, gate_proj, "
         "up_proj, down_proj, ...), so all layers of one kind can be seen together.", "", "projection", "SPEC §1"),
    Term("degree class", "The live input units of one degree d_c, with every edge leaving them: a d_c-left-regular "
         "subgraph (FS23's nested regular subgraphs).", "", "", "SPEC §3"),
    Term("d_c", "The input degree shared by every unit of degree class c.", "", "d_c", "SPEC §3"),
    Term("n_c", "How many input units class c holds.", "", "n_c", "SPEC §3"),
    Term("l_c", "Input units of the class subgraph.", "", "l_c", "SPEC §3"),
    Term("r_c", "Output units the class reaches (isolated ones dropped).", "", "r_c", "SPEC §3"),
    Term("f_c", "Cheeger-style size factor of class c (FS23): max(l_c, r_c) / (l_c + r_c − 1); it weighs each "
         "class in Δr_imdb and λ_imsg.", "", "f_c", "SPEC §3"),
    Term("Δr_c", "Δr computed on the subgraph of class c.", "higher", "delta_r_c", "SPEC §3"),
    Term("λ_c", "λ computed on the subgraph of class c.", "higher", "lambda_c", "SPEC §3"),
    Term("qualifies", "A class qualifies when d_c ≥ 3, n_c ≥ 2 and its mean right degree > 1 (FS23); only "
         "qualifying classes enter Δr_imdb and λ_imsg.", "", "qualifies", "SPEC §3"),
    Term("qualifying classes", "How many degree classes of a layer qualify.", "higher", "n_classes", "SPEC §3"),
    Term("PAGS score", "‖u‖ of a layer (its distance from the origin; from the base mask's u when asked). PAGS "
         "replaces layer j by a candidate's when both its Δr_imdb and its ‖u‖ are ≥ the kept ones (FS23's rule). "
         "The 3-D population chart shades candidates by their score.", "higher", "score", "SPEC §5"),
    Term("base mask", "The generator's own mask (SNIP, ERK, ...) on its full data budget; its per-layer counts are "
         "every candidate's budget.", "", "", "SPEC §5"),
    Term("assembled mask", "Layer j from the candidate that won layer j under the PAGS rule.", "", "", "SPEC §5"),
    Term("PEGS", "PAGS after a short dense warm-up; the mask trains from the warmed-up weights.", "", "", "SPEC §5"),
    Term("IoU", "Intersection over union of two masks' kept weights. With equal budgets a share "
         "2·IoU/(1+IoU) of each mask's weights is shared (IoU 0.41 = 58% shared).", "", "iou", "analysis.compare"),
    Term("dead paths", "Kept weights that carry nothing across consecutive layers: weights reading a dead output "
         "of the layer before, and weights into an output the next layer never reads.", "lower", "",
         "analysis.dead_paths"),
    Term("at chance", "Final test accuracy no better than guessing (≤ 1.25 / classes): the run learned nothing. "
         "Cross-run views leave such runs out unless asked.", "", "at_chance", "analysis.chance"),
    Term("density-only baseline", "Density vs accuracy over the same runs (MGE24): what density alone explains.",
         "", "", "analysis.correlation"),
    Term("Pearson ρ", "Linear correlation over runs, with its 95% bootstrap interval (2000 resamples).", "", "",
         "analysis.correlation"),
    Term("Spearman", "Rank correlation over runs (monotone, not only linear).", "", "", "analysis.correlation"),
    Term("95% CI", "Bootstrap percentile interval of a correlation; Student-t interval of a mean over seeds.", "",
         "", "analysis.evidence"),
    # the unrolled view (MGE24): counts and topometrics of the whole network as one graph
    Term("unrolled nodes", "Units of the unrolled graph: every (channel, position) of every feature map a "
         "prunable layer reads or writes, the input included (MGE24's multipartite encoding).", "", "",
         "SPEC §7"),
    Term("unrolled edges", "Prunable edges of the unrolled graph: one per kept Linear weight, one per kept conv "
         "weight and output position whose tap does not fall on padding.", "", "", "SPEC §7"),
    Term("identity edges", "Fixed weight-1 edges (c, p) → (c, p) of identity shortcuts; not prunable, counted "
         "apart (0 with skips = none, MGE24's graph).", "", "identity_edges", "SPEC §7"),
    Term("total edges", "Edges the topometrics read: prunable plus identity, parallel ones merged.", "",
         "total_edges", "SPEC §7"),
    Term("kept weights", "Weights the mask keeps in a layer.", "", "", "SPEC §7"),
    Term("effective weights", "Kept weights with at least one unrolled edge whose both ends are live: they can "
         "carry information from the input to the output (Vysogorets & Kempe 2021).", "higher",
         "effective_weights", "SPEC §7"),
    Term("ineffective weights", "Kept weights none of whose unrolled edges lies on an input → output path: "
         "budget spent on nothing (with biases they may still shift a unit's constant output).", "lower",
         "ineffective", "SPEC §7"),
    Term("effective edges", "Prunable unrolled edges whose both ends are live.", "higher", "effective_edges",
         "SPEC §7"),
    Term("effective density", "Effective weights / all prunable weights; comparable with the density, and at "
         "most it.", "higher", "effective_density", "SPEC §7"),
    Term("live units", "Units reachable from the input that reach the output; the others hold constants.",
         "higher", "", "SPEC §7"),
    Term("source nodes", "Units with in-degree 0 and out-degree > 0, the input partition excluded (MGE24).",
         "lower", "source_nodes", "SPEC §7"),
    Term("sink nodes", "Units with out-degree 0 and in-degree > 0, the output partition excluded (MGE24).",
         "lower", "sink_nodes", "SPEC §7"),
    Term("disconnected nodes", "Units with neither in- nor out-edges, input and output partitions included.",
         "lower", "disconnected_nodes", "SPEC §7"),
    Term("r-in", "Removable edges out of source nodes: they carry nothing that came from the input (MGE24).",
         "lower", "removable_in", "SPEC §7"),
    Term("r-out", "Removable edges into sink nodes: what they carry never reaches the output (MGE24).", "lower",
         "removable_out", "SPEC §7"),
    Term("out-neighbourhood 1", "Mean number of distinct units reachable in one step (the unit excluded).", "",
         "out_neighbourhood_1", "SPEC §7"),
    Term("out-neighbourhood 2", "Mean number of distinct units reachable in at most two steps.", "",
         "out_neighbourhood_2", "SPEC §7"),
    Term("strength", "Mean unit strength: the sum of |w| over a unit's incident edges.", "", "strength",
         "SPEC §7"),
    Term("coreness", "Mean k-core number of the undirected graph: how deeply a unit sits in densely linked "
         "parts.", "", "coreness", "SPEC §7"),
    Term("cut edges", "Bridges of the undirected graph: edges whose removal disconnects it.", "", "cut_edges",
         "SPEC §7"),
    Term("cut nodes", "Articulation points of the undirected graph: units whose removal disconnects it.", "",
         "cut_nodes", "SPEC §7"),
    Term("components", "Weakly connected components (1: every unit hangs together).", "", "components",
         "SPEC §7"),
    Term("mean component size", "Units per weakly connected component.", "", "mean_component_size", "SPEC §7"),
    Term("spectral gap (weighted)", "|μ1| − |μ3| of the symmetric adjacency of |w| (MGE24's definition).", "",
         "spectral_gap_w", "SPEC §7"),
    Term("Laplacian radius", "Largest eigenvalue of the weighted Laplacian D − A.", "", "laplacian_radius_w",
         "SPEC §7"),
    Term("4-motifs", "Estimated count of 4-unit motifs (sampled from 0.1% of the units; optional, slow).", "",
         "motifs_4", "SPEC §7"),
    Term("normalised", "A count divided by the number of unrolled nodes (node counts) or of total edges (edge "
         "counts), as MGE24 report them.", "", "", "SPEC §7"),
    Term("cross-validated R²", "1 − residual / total sum of squares of out-of-fold predictions of accuracy "
         "(5-fold, seeded); 0 is no better than the mean, with its bootstrap 95% interval over runs.", "higher",
         "r2", "analysis.predictors"),
    # G25: graphons and the NTK
    Term("graphon estimate", "Units of both sides sorted by degree, split into K equal blocks, each block's "
         "edge density (G25's sorting-and-smoothing). K = 64 is this project's default, not G25's.", "", "",
         "SPEC §7b"),
    Term("successive distance", "Mean absolute difference of block densities between the fingerprints of two "
         "successive widths; G25's hypothesis says it falls as the width grows.", "lower", "",
         "SPEC §7b"),
    Term("λ_max", "Largest eigenvalue of the NTK Gram matrix.", "", "lambda_max", "SPEC §7b"),
    Term("condition number", "λ_max / λ_min over the eigenvalues above 1e-12·λ_max.", "", "condition",
         "SPEC §7b"),
    Term("effective rank", "exp of the entropy of the normalised NTK spectrum λ/Σλ: how many eigenvalues "
         "carry the energy.", "", "effective_rank", "SPEC §7b"),
    Term("top-5 energy", "Share of the NTK's trace in its five largest eigenvalues (G25: more concentration, "
         "faster early descent).", "", "top5_energy", "SPEC §7b"),
    Term("decay α", "Minus the least-squares slope of log λ_k on log k over k = 1..N/2: how fast the NTK "
         "spectrum falls.", "", "decay_alpha", "SPEC §7b"),
    Term("early descent", "Validation loss at step 0 minus its mean over the early window of static sparse "
         "training: higher is faster early learning.", "higher", "descent", "analysis.trainability"),
)  # fmt: skip

GLOSSARY: Mapping[str, Term] = MappingProxyType({t.name: t for t in _TERMS})
"""Shown name -> :class:`Term`, in reading order."""
_BY_COLUMN = {t.column: t for t in _TERMS if t.column}


def term(name: str) -> Term:
    """The entry for a shown name (``Δr``) or a code column (``delta_r``); unknown names list the known ones."""
    if name in GLOSSARY:
        return GLOSSARY[name]
    if name in _BY_COLUMN:
        return _BY_COLUMN[name]
    raise unknown_name("glossary term", name, list(GLOSSARY))


def help_text(name: str) -> str:
    """The hover text of a shown name or a column; empty for a name the glossary does not have."""
    try:
        return term(name).help()
    except UnknownNameError:
        return ""


def rows(names: Iterable[str] | None = None) -> list[dict]:
    """The glossary (or the entries ``names``) as rows ``term``, ``meaning``, ``better``, ``column``, ``source``."""
    chosen = [term(n) for n in names] if names is not None else list(GLOSSARY.values())
    return [{"term": t.name, "meaning": t.meaning, "better": t.better or "—", "column": t.column,
             "source": t.source} for t in chosen]  # fmt: skip
