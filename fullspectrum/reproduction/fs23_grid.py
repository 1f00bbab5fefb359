"""FS23's comparison as one chained sweep grid (the TOML of :mod:`fullspectrum.sweeps.grid`).

Stages, each point a run folder of the sweep:

* ``sample``: ``pags`` with no warm-up over every dataset, density, generator and seed; it
  writes the generator's own mask (``base_mask.pt``, SPEC §5 step 1) and PAGS's (``pags_mask.pt``);
* ``pegs``: ``pags`` after ``warmup`` dense iterations, for the PEGS generators;
* ``generator``, ``pags``, ``pegs_train``: static training from those masks, with the seed of the
  sampling that made them (so differences pair by seed);
* ``lottery``: IMP with rewind 0 and rewind ``k``; ``earlybird``: Early-Bird;
* ``itop``: ITOP runs over several densities for the distance-accuracy correlation.

>>> from fullspectrum.reproduction.presets import PRESETS
>>> text = fs23_grid_text(PRESETS["quick"])
>>> [line for line in text.splitlines() if line.startswith("[stage.") and "." not in line[7:-1]]
['[stage.sample]', '[stage.pegs]', '[stage.generator]', '[stage.pags]', '[stage.pegs_train]', \
'[stage.lottery]', '[stage.earlybird]', '[stage.itop]']
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fullspectrum.reproduction.presets import Preset

STAGE_METHODS = {"generator": "generator", "pags": "pags", "lottery": "lottery", "earlybird": "earlybird"}
"""Training stages whose points give one row of ``results.csv`` each (``pegs_train`` and
``lottery`` are split by warm-up and rewind, see :mod:`~fullspectrum.reproduction.collect`)."""


def fs23_grid_text(preset: Preset, *, data_dir: str | None = None, device: str | None = None) -> str:
    """The grid file of ``preset`` (``data_dir``/``device`` override the preset's for every run)."""
    common: dict = {"model": preset.model, "device": device or preset.device}
    if data_dir:
        common["data_dir"] = data_dir
    training = dict(common)
    if preset.epochs is not None:
        training["epochs"] = preset.epochs
    sampled = {"data": list(preset.datasets), "density": list(preset.densities), "seed": list(preset.seeds)}
    stages = [
        _stage(
            "sample",
            "pags",
            fixed={**common, "population": preset.population, "warmup_iters": 0},
            grid={**sampled, "generator": list(preset.generators)},
        ),
        _stage(
            "pegs",
            "pags",
            fixed={**common, "population": preset.population},
            grid={**sampled, "generator": list(preset.pegs_generators), "warmup_iters": list(preset.warmups)},
        ),
    ]
    for name, upstream, mask in (
        ("generator", "sample", "base_mask.pt"),
        ("pags", "sample", "pags_mask.pt"),
        ("pegs_train", "pegs", "pags_mask.pt"),
    ):
        fixed = {
            **training,
            "method": "static",
            "data": f"{{{upstream}.data}}",
            "mask": f"{{{upstream}}}/{mask}",
            "seed": f"{{{upstream}.seed}}",
        }
        stages.append(_stage(name, "train", fixed=fixed, upstream=upstream))
    stages.append(
        _stage(
            "lottery", "lottery", fixed=training, grid={**sampled, "rewind_iters": [0, preset.rewind_iters]}
        )
    )
    stages.append(_stage("earlybird", "earlybird", fixed=training, grid=sampled))
    if preset.itop_densities:
        grid = {
            "data": list(preset.datasets),
            "density": list(preset.itop_densities),
            "seed": list(preset.seeds),
        }
        stages.append(_stage("itop", "train", fixed={**training, "method": "itop"}, grid=grid))
    return "\n".join(stages)


def _stage(
    name: str, command: str, *, fixed: Mapping, grid: Mapping | None = None, upstream: str | None = None
) -> str:
    lines = [f"[stage.{name}]", f"command = {_value(command)}"]
    if upstream:
        lines.append(f"from = {_value(upstream)}")
    lines += [f"[stage.{name}.fixed]", *(f"{key} = {_value(value)}" for key, value in fixed.items())]
    if grid:
        lines += [f"[stage.{name}.grid]", *(f"{key} = {_value(value)}" for key, value in grid.items())]
    return "\n".join(lines) + "\n"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value) if isinstance(value, str) else str(value)
