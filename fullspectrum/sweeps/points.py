"""A grid expanded into its points: one command, its options and its run folder each.

A stage's points are the product of its ``[grid]`` lists in file order (the last list varies
fastest), each with the ``[fixed]`` options; a chained stage (``from``) has that product once
per point of its upstream stage, and its ``{STAGE}`` / ``{STAGE.OPTION}`` references are
resolved here, so every point's whole command line is known, and checked, before any runs.

A point's folder name is readable and stable: the stage, the values it was swept over and a
hash of its command and resolved options (``train_density-0.05_seed-1_3f2a9c1e``), so the
same grid always names the same folders and a second invocation finds its runs again.

>>> from fullspectrum.sweeps.grid import parse_grid
>>> grid = parse_grid('command = "train"\\n[fixed]\\nepochs = 1\\n[grid]\\nseed = [0, 1]', "g.toml")
>>> [(p.name[:12], dict(p.options)) for p in expand_grid(grid, "/sweep")]
[('train_seed-0', {'epochs': 1, 'seed': 0}), ('train_seed-1', {'epochs': 1, 'seed': 1})]
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.sweeps.commands import CommandSpec
from fullspectrum.sweeps.grid import GridError, Stage, SweepGrid, Value

REFERENCE = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)(?:\.([A-Za-z][A-Za-z0-9_]*))?\}")
"""``{STAGE}`` (that point's run folder) or ``{STAGE.OPTION}`` (the value it ran with)."""
HASH_CHARS = 8
"""Hex digits of a point's hash in its folder name (4 billion names: collisions are checked anyway)."""
_NAME_VALUE_CHARS = 24  # a swept value's share of a folder name
_NAME_CHARS = 100  # the readable part of a folder name, before the hash


@dataclass(frozen=True)
class Point:
    """One run of a sweep."""

    stage: str
    """The stage it belongs to."""
    command: str
    """The command it runs."""
    options: Mapping[str, Value]
    """Its options, references resolved: ``[fixed]`` ones, then ``[grid]`` ones."""
    swept: tuple[str, ...]
    """Which of ``options`` came from the stage's ``[grid]`` (they name the folder)."""
    name: str
    """Its run folder's name inside the sweep folder."""
    upstream: str | None
    """The name of the point it runs on (a chained stage), else ``None``."""


def expand_grid(grid: SweepGrid, root: str | Path) -> tuple[Point, ...]:
    """Every point of ``grid`` in run order; ``root`` is the sweep folder ``{STAGE}`` paths lie in."""
    root = Path(root).absolute()
    by_stage: dict[str, list[Point]] = {}
    lineage: dict[str, Point] = {}  # point name -> point, to walk a point's ancestry
    points: list[Point] = []
    for stage in grid.stages:
        made = by_stage.setdefault(stage.name, [])
        for parent in by_stage[stage.upstream] if stage.upstream else [None]:
            for values in itertools.product(*stage.grid.values()):
                point = _point(stage, dict(zip(stage.grid, values, strict=True)), parent, lineage, root, grid)
                if point.name in lineage:
                    raise GridError(
                        f"{grid.source}: {_where(grid, stage)}two points are the same run "
                        f"({_describe(point)}); remove the duplicate"
                    )
                lineage[point.name] = point
                made.append(point)
                points.append(point)
    return tuple(points)


def check_points(
    grid: SweepGrid, points: tuple[Point, ...], commands: Mapping[str, CommandSpec], root: str | Path
) -> dict[str, list[str]]:
    """Each point's argv (``--out`` included), after checking it as its command would; else :class:`GridError`.

    ``commands``: the commands a sweep may run, by name.
    """
    stages = {stage.name: stage for stage in grid.stages}
    for stage in grid.stages:
        if stage.command not in commands:
            error = unknown_name("command", stage.command, commands)
            raise GridError(f"{grid.source}: {_where(grid, stage)}{error} (commands that write a run)")
    argvs: dict[str, list[str]] = {}
    for point in points:
        spec, where = commands[point.command], _where(grid, stages[point.stage])
        try:
            argv = spec.argv(point.options)
        except FullSpectrumError as error:
            raise GridError(f"{grid.source}: {where}{error}") from None
        argv = [point.command, *argv, "--out", str(Path(root).absolute() / point.name)]
        problem = spec.check(argv[1:]) if spec.check is not None else None
        if problem:
            raise GridError(f"{grid.source}: {where}point {_describe(point)}: {problem}")
        argvs[point.name] = argv
    return argvs


def _point(
    stage: Stage,
    swept: dict[str, Value],
    parent: Point | None,
    lineage: dict[str, Point],
    root: Path,
    grid: SweepGrid,
) -> Point:
    ancestors: dict[str, Point] = {}
    walker = parent
    while walker is not None:
        ancestors.setdefault(walker.stage, walker)
        walker = lineage.get(walker.upstream) if walker.upstream else None
    raw = {**stage.fixed, **swept}
    options = {key: _resolve(value, ancestors, root, grid, stage, key) for key, value in raw.items()}
    identity = json.dumps({"command": stage.command, "options": options}, sort_keys=True)
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:HASH_CHARS]
    readable = "_".join(f"{key}-{_name_part(options[key])}" for key in swept)
    if parent is not None and not readable:
        readable = parent.name.rsplit("_", 1)[0]  # one point per upstream one: say which
    name = "_".join(part for part in (stage.name, readable[:_NAME_CHARS].rstrip("_-.")) if part)
    return Point(
        stage=stage.name,
        command=stage.command,
        options=options,
        swept=tuple(swept),
        name=f"{name}_{digest}",
        upstream=None if parent is None else parent.name,
    )


def _resolve(value: Value, ancestors: dict[str, Point], root: Path, grid: SweepGrid, stage: Stage, key: str):
    if not isinstance(value, str) or "{" not in value:
        return value

    def lookup(match: re.Match):
        name, option = match.group(1), match.group(2)
        if name not in ancestors:
            shown = ", ".join(ancestors) or "none (a stage refers to earlier ones through from)"
            raise GridError(
                f"{grid.source}: {_where(grid, stage)}option {key} = {value!r}: {{{name}}} is not an "
                f"upstream stage of this one; upstream stages: {shown}"
            )
        point = ancestors[name]
        if option is None:
            return str(root / point.name)
        if option not in point.options:
            raise GridError(
                f"{grid.source}: {_where(grid, stage)}option {key} = {value!r}: stage {name!r} has no "
                f"option {option}; it has {', '.join(point.options) or 'none'}"
            )
        return point.options[option]

    whole = REFERENCE.fullmatch(value)
    if whole:  # the value is one reference: keep its type ({sample.seed} stays an integer)
        return lookup(whole)
    return REFERENCE.sub(lambda match: str(lookup(match)), value)


def _name_part(value) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, str) and "/" in value:
        text = "-".join(Path(value).parts[-2:])  # a path: its last two parts say enough
    text = re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-.")
    return text[:_NAME_VALUE_CHARS] or "x"


def _describe(point: Point) -> str:
    shown = {key: point.options[key] for key in point.swept} or dict(point.options)
    return ", ".join(f"{key}={value}" for key, value in shown.items()) or point.command


def _where(grid: SweepGrid, stage: Stage) -> str:
    return f"stage {stage.name!r}: " if grid.chained else ""
