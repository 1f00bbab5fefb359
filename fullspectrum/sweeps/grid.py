"""A sweep's grid file (TOML): which command runs, with which options, over which values.

The simplest file runs one command over the product of its ``[grid]`` lists::

    command = "train"          # train, pags, lottery, earlybird: any command that writes a run

    [fixed]                    # options every point gets, named as on the command line, _ for -
    model = "mlp"
    data = "digits"
    epochs = 1
    sparse_init = true         # a flag: true gives --sparse-init, false --no-sparse-init (or nothing)

    [grid]                     # lists: the sweep runs every combination (here 2 x 2 = 4 points)
    density = [0.05, 0.1]
    seed = [0, 1]

A **chain** runs commands one after another on each other's outputs: named ``[stage.NAME]``
tables, each with its own ``command``, ``[fixed]`` and ``[grid]``, and ``from = "EARLIER"`` for a
stage that runs once per point of an earlier stage (times its own grid). In its option values
``{EARLIER}`` is that point's run folder and ``{EARLIER.OPTION}`` the value it ran with::

    [stage.sample]
    command = "pags"
    fixed = { model = "mlp", data = "digits", density = 0.05, population = 8 }
    grid = { generator = ["snip", "random"], seed = [0, 1] }

    [stage.train]
    command = "train"
    from = "sample"                         # 4 training runs: one per PAGS run
    fixed = { method = "static", mask = "{sample}/pags_mask.pt", seed = "{sample.seed}", epochs = 1 }

A point of ``train`` starts when its PAGS point has finished; if that one failed, it is skipped.
:func:`load_grid` reads and checks the file's structure (what each option means is checked
against the command's parser by the command line, see :mod:`~fullspectrum.sweeps.points`).

>>> grid = parse_grid('command = "train"\\n[grid]\\nseed = [0, 1]', "g.toml")
>>> [(stage.name, stage.command, dict(stage.grid)) for stage in grid.stages]
[('train', 'train', {'seed': (0, 1)})]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fullspectrum.errors import FullSpectrumError

try:  # Python >= 3.11; tomli is the same parser for 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

Value = str | int | float | bool
"""An option's value in a grid file (TOML's string, integer, float or boolean)."""
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
"""Stage and option names: a letter, then letters, digits or ``_`` (so ``{name}`` can refer to them)."""
_TOP_KEYS = ("command", "fixed", "grid")
_STAGE_KEYS = ("command", "from", "fixed", "grid")


class GridError(FullSpectrumError):
    """A grid file that cannot be run: unreadable, malformed, or naming unknown commands or options."""


@dataclass(frozen=True)
class Stage:
    """One command of a sweep and the options of its points."""

    name: str
    """The stage's name (``[stage.NAME]``; the command's name in a one-command file)."""
    command: str
    """The ``fullspectrum`` command each point runs."""
    upstream: str | None
    """The earlier stage whose every point this stage runs on (``from``), or ``None``."""
    fixed: Mapping[str, Value] = field(default_factory=dict)
    """Options every point gets."""
    grid: Mapping[str, tuple[Value, ...]] = field(default_factory=dict)
    """Options swept: the stage's points are the product of these lists (in file order)."""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "command": self.command,
            "from": self.upstream,
            "fixed": dict(self.fixed),
            "grid": [{"option": key, "values": list(values)} for key, values in self.grid.items()],
        }


@dataclass(frozen=True)
class SweepGrid:
    """A whole grid file: its stages in run order."""

    stages: tuple[Stage, ...]
    """The stages; a stage's ``upstream`` is always an earlier one."""
    source: str
    """Where the grid came from (the file name), for messages."""

    @property
    def chained(self) -> bool:
        """Whether the file has named stages (its points' table then has a ``stage`` column)."""
        return len(self.stages) > 1 or any(stage.upstream for stage in self.stages)

    def as_dict(self) -> dict:
        """The grid as JSON (a sweep folder's ``run.json["config"]``: what makes two sweeps the same;
        ``[grid]`` lists in their order, which the points' order and names follow)."""
        return {"stages": [stage.as_dict() for stage in self.stages]}


def load_grid(path: str | Path) -> SweepGrid:
    """Read and check a grid file; anything wrong is one :class:`GridError` line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GridError(f"{path}: no such grid file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise GridError(f"{path}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    return parse_grid(text, str(path))


def parse_grid(text: str, source: str) -> SweepGrid:
    """The grid in TOML ``text`` (``source`` names it in messages)."""
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise GridError(f"{source}: reading TOML needs Python 3.11 or the tomli package (pip install tomli)")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GridError(f"{source}: not valid TOML ({' '.join(str(error).split())})") from None
    if "stage" in table:
        extra = sorted(set(table) - {"stage"})
        if extra:
            raise GridError(f"{source}: with [stage.NAME] tables, put {', '.join(extra)} inside a stage")
        stages = _stages(table["stage"], source)
    else:
        _known_keys(table, _TOP_KEYS, source, "the file")
        stages = (_stage(_command(table, source, "the file"), table, source, None),)
    return SweepGrid(stages=stages, source=source)


def _stages(tables, source: str) -> tuple[Stage, ...]:
    if not isinstance(tables, dict) or not tables:
        raise GridError(f"{source}: [stage] must hold named tables, e.g. [stage.train]")
    stages: list[Stage] = []
    for name, table in tables.items():
        where = f"stage {name!r}"
        if not NAME_PATTERN.match(name):
            raise GridError(
                f"{source}: stage name {name!r} must be a letter followed by letters, digits or _"
            )
        if not isinstance(table, dict):
            raise GridError(f"{source}: {where} must be a table ([stage.{name}])")
        _known_keys(table, _STAGE_KEYS, source, where)
        upstream = table.get("from")
        if upstream is not None:
            earlier = [stage.name for stage in stages]
            if not isinstance(upstream, str) or upstream not in earlier:
                shown = ", ".join(earlier) or "none (a first stage has no from)"
                raise GridError(f"{source}: {where}: from = {upstream!r} must name an earlier stage: {shown}")
        stages.append(_stage(_command(table, source, where), table, source, name, upstream))
    return tuple(stages)


def _command(table: dict, source: str, where: str) -> str:
    command = table.get("command")
    if not isinstance(command, str) or not command:
        raise GridError(f'{source}: {where} needs command = "NAME" (e.g. "train")')
    return command


def _stage(command: str, table: dict, source: str, name: str | None, upstream: str | None = None) -> Stage:
    where = f"stage {name!r}" if name else "the file"
    fixed = _table(table.get("fixed", {}), source, f"{where}: [fixed]")
    grid = _table(table.get("grid", {}), source, f"{where}: [grid]")
    for key, value in fixed.items():
        _check_value(value, source, f"{where}: fixed option {key}")
    lists: dict[str, tuple[Value, ...]] = {}
    for key, values in grid.items():
        what = f"{where}: grid option {key}"
        if not isinstance(values, list) or not values:
            raise GridError(f"{source}: {what} must be a non-empty list (a single value goes in [fixed])")
        for value in values:
            _check_value(value, source, what)
        if len({_identity(value) for value in values}) < len(values):
            raise GridError(f"{source}: {what} lists a value twice")
        if key in fixed:
            raise GridError(f"{source}: {where}: option {key} is in both [fixed] and [grid]")
        lists[key] = tuple(values)
    return Stage(name=name or command, command=command, upstream=upstream, fixed=fixed, grid=lists)


def _table(value, source: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise GridError(f"{source}: {what} must be a table of options")
    for key in value:
        if not NAME_PATTERN.match(key):
            raise GridError(
                f"{source}: {what}: option name {key!r} must be as on the command line, with _ for -"
            )
    return value


def _check_value(value, source: str, what: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise GridError(f"{source}: {what} must be a finite number, got {value}")
    if not isinstance(value, str | int | float | bool):
        kind = "a list (lists go in [grid])" if isinstance(value, list) else type(value).__name__
        raise GridError(f"{source}: {what} must be a string, number or true/false, got {kind}")


def _identity(value: Value) -> tuple:
    return (type(value).__name__, value)  # 1 and 1.0 and true are different values of an option


def _known_keys(table: dict, known: tuple[str, ...], source: str, where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise GridError(f"{source}: {where} has unknown key(s) {', '.join(unknown)}; use {', '.join(known)}")
