"""The settings of FS23's table reproduction: ``quick`` to try it, ``cpu`` to run here, ``paper`` for a GPU.

FS23 (Hoang et al., NeurIPS 2023, Tables 2–3) compare at 99% sparsity on CIFAR-100 with
ResNet-18/34: the generators' masks (Random, ERK, SNIP, GraSP, SynFlow), PAGS over each, PEGS
after 100 and 500 dense iterations, IMP (the lottery ticket, with and without rewinding) and
Early-Bird. ``paper`` is that setting (CIFAR-100 read from ``--data-dir``); ``cpu`` keeps every
method on the built-in datasets with an MLP so it finishes on a 2-core machine; ``quick`` is
``cpu`` cut to one dataset, one density and two seeds.

Besides the table, each preset trains ITOP runs (random growth, ITOP21) over several densities
for FS23's Figure-3 correlation between the ℓ2-moving distance and accuracy.

>>> PRESETS["quick"].seeds, PRESETS["cpu"].densities
((0, 1), (0.01, 0.05))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fullspectrum.errors import FullSpectrumError

GENERATORS = ("random", "erk", "snip", "grasp", "synflow")
"""FS23's generators, in their tables' order."""


@dataclass(frozen=True)
class Preset:
    """Everything a reproduction runs; each trained network uses the ``train`` presets otherwise."""

    name: str
    model: str
    datasets: tuple[str, ...]
    densities: tuple[float, ...]
    seeds: tuple[int, ...]
    generators: tuple[str, ...] = GENERATORS
    pegs_generators: tuple[str, ...] = ("snip",)
    """Generators PEGS runs over (FS23 report PEGS for SNIP at least)."""
    warmups: tuple[int, ...] = (100, 500)
    """PEGS warm-up iterations (FS23: PEGS@100 and PEGS@500)."""
    population: int = 100
    rewind_iters: int = 20
    """IMP's ``k`` for the rewinding variant (rewind 0 is the original LTH)."""
    epochs: int | None = None
    """Epochs of every training (None: the dataset's preset)."""
    itop_densities: tuple[float, ...] = ()
    """Densities of the ITOP runs for the distance-accuracy correlation."""
    device: str = "auto"

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        model="mlp",
        datasets=("digits",),
        densities=(0.05,),
        seeds=(0, 1),
        population=10,
        rewind_iters=20,
        itop_densities=(0.02, 0.05, 0.1),
        device="cpu",
    ),
    "cpu": Preset(
        name="cpu",
        model="mlp",
        datasets=("digits", "mnist1d"),
        densities=(0.01, 0.05),
        seeds=(0, 1, 2, 3, 4),
        population=20,
        rewind_iters=20,
        itop_densities=(0.01, 0.02, 0.05, 0.1, 0.2),
        device="cpu",
    ),
    "paper": Preset(
        name="paper",
        model="resnet18",
        datasets=("cifar100",),
        densities=(0.01,),
        seeds=(0, 1, 2, 3, 4),
        population=100,
        rewind_iters=1000,
        itop_densities=(0.01, 0.02, 0.05),
        device="cuda",
    ),
}
PRESET_NAMES = tuple(PRESETS)


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise FullSpectrumError(
            f"--preset {name!r}: unknown; choose one of {', '.join(PRESET_NAMES)}"
        ) from None
