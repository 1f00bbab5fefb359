"""What a sweep knows of a command: its options, how each is spelled, and how its argv is checked.

The sweep runs ``python -m fullspectrum COMMAND ...`` per point and knows commands only through
a :class:`CommandSpec`, which the command line builds from the command's own argument parser
(:mod:`fullspectrum.cli.sweep`), so every command, present or future, is swept the same way and
a grid is checked against exactly what the command accepts.

>>> spec = CommandSpec("train", {"seed": OptionSpec("--seed"), "sparse_init": OptionSpec("--sparse-init", "toggle")})
>>> spec.argv({"seed": 3, "sparse_init": False})
['--seed', '3', '--no-sparse-init']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fullspectrum.errors import FullSpectrumError

OPTION_KINDS = ("value", "switch", "toggle")
"""``value``: ``--flag VALUE``; ``switch``: ``--flag`` when true (``store_true``); ``toggle``:
``--flag`` / ``--no-flag`` (``BooleanOptionalAction``)."""
SWEEP_OPTIONS = ("out", "resume", "allow_nonempty")
"""Options the sweep sets itself (each point's folder, resuming), which a grid may not set."""
Checker = Callable[[list[str]], str | None]
"""``check(argv)``: why the command would refuse ``argv`` (one line), or ``None``."""


@dataclass(frozen=True)
class OptionSpec:
    """One option of a command."""

    flag: str
    """As on the command line, e.g. ``--batch-size``."""
    kind: str = "value"
    """One of :data:`OPTION_KINDS`."""

    def __post_init__(self) -> None:
        if self.kind not in OPTION_KINDS:
            raise ValueError(f"option kind must be one of {OPTION_KINDS}, got {self.kind!r}")

    def argv(self, value) -> list[str]:
        """The arguments that give this option ``value``; a value of the wrong kind is a :class:`ValueError`."""
        if self.kind == "value":
            if isinstance(value, bool):
                raise ValueError(f"{self.flag} takes a value, not true/false")
            return [self.flag, format_value(value)]
        if not isinstance(value, bool):
            raise ValueError(f"{self.flag} is a flag: give true or false, got {value!r}")
        if self.kind == "switch":
            return [self.flag] if value else []
        return [self.flag] if value else ["--no-" + self.flag.removeprefix("--")]


@dataclass(frozen=True)
class CommandSpec:
    """A command as the sweep sees it."""

    name: str
    """The command (``train``, ``pags``, ...)."""
    options: Mapping[str, OptionSpec]
    """Its options by grid name (``batch_size`` for ``--batch-size``), without :data:`SWEEP_OPTIONS`."""
    resumable: bool = True
    """Whether ``COMMAND --resume DIR`` continues an unfinished run of it."""
    check: Checker | None = field(default=None, compare=False)
    """Checks a point's whole argv as the command's parser would (``None``: no check)."""

    def argv(self, options: Mapping[str, object]) -> list[str]:
        """The command's arguments for ``options`` (in their order); an unknown option is bad input."""
        argv: list[str] = []
        for name, value in options.items():
            if name in SWEEP_OPTIONS:
                raise FullSpectrumError(f"option {name} is set by the sweep itself (each point's own folder)")
            if name not in self.options:
                raise FullSpectrumError(
                    f"unknown option {name} of {self.name}; choose from {', '.join(sorted(self.options))}"
                )
            try:
                argv += self.options[name].argv(value)
            except ValueError as error:
                raise FullSpectrumError(f"option {name}: {error}") from None
        return argv


def format_value(value) -> str:
    """An option's value as its command-line text (floats in their shortest exact form).

    >>> format_value(0.1), format_value(3), format_value("snip")
    ('0.1', '3', 'snip')
    """
    return repr(value) if isinstance(value, float) else str(value)
