"""The package layout keeps its promises: concept packages, a map in every package, imports on top.

* ``fullspectrum/`` holds at its root only what every package shares;
* every package's ``__init__`` docstring names each of its modules (a newcomer's map);
* imports of the project's own modules sit at the top of modules, unless a comment says why;
* docstrings and comments speak of the code and the papers, not of issue numbers.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import fullspectrum

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "fullspectrum"
SHARED_ROOT_MODULES = {"__init__", "__main__", "errors", "devices", "seeds"}
PROJECT_PACKAGES = ("fullspectrum", "analysis")


def _packages() -> list[str]:
    found = ["fullspectrum"]
    for info in pkgutil.walk_packages(fullspectrum.__path__, "fullspectrum."):
        if info.ispkg:
            found.append(info.name)
    return found


def _project_sources() -> list[Path]:
    return sorted(p for package in PROJECT_PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_package_root_holds_only_what_everything_shares():
    modules = {p.stem for p in LIBRARY.glob("*.py")}
    assert modules <= SHARED_ROOT_MODULES, f"modules at the root: {sorted(modules - SHARED_ROOT_MODULES)}"


@pytest.mark.parametrize("package", _packages())
def test_every_package_docstring_maps_its_modules(package):
    module = importlib.import_module(package)
    doc = module.__doc__ or ""
    children = [
        info.name
        for info in pkgutil.iter_modules(module.__path__)
        if not info.name.startswith("_") and package != "fullspectrum.cli"  # cli: one module per command
    ]
    if package == "fullspectrum":  # the root maps its packages
        children = [info.name for info in pkgutil.iter_modules(module.__path__) if info.ispkg]
    missing = [
        name for name in children if not re.search(rf"\b{package}\.{name}\b|~{package}\.{name}\b", doc)
    ]
    assert not missing, f"{package}'s docstring does not name: {missing}"


def _deferred_imports_without_reason(path: Path, root: Path = ROOT) -> list[str]:
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    top = {id(node) for node in tree.body}
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in top:
            continue
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        if node.__class__ is ast.ImportFrom and node.level:
            names = ["fullspectrum"]  # relative imports are the project's own
        if not any(name.split(".")[0] in PROJECT_PACKAGES for name in names):
            continue
        # a comment on the import line, or in the comment block just above the function-level imports
        above = node.lineno - 2
        while above >= 0 and re.match(r"\s*(from |import |$)", lines[above]) and "#" not in lines[above]:
            above -= 1
        context = lines[node.lineno - 1] + (lines[above] if above >= 0 else "")
        if "#" not in context:
            bad.append(f"{path.relative_to(root)}:{node.lineno}")
    return bad


def test_project_imports_sit_at_the_top_unless_a_comment_says_why():
    bad = [where for path in _project_sources() for where in _deferred_imports_without_reason(path)]
    assert not bad, f"function-level project imports without a reason: {bad}"


def test_docstrings_and_comments_do_not_cite_issue_numbers():
    pattern = re.compile(r"\bissues? ?#?\d+|\(issue\b", re.IGNORECASE)
    hits = []
    for path in [*_project_sources(), *(ROOT / "app").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "Synaptic-Flow" not in line and path.name != Path(__file__).name:
                hits.append(f"{path.relative_to(ROOT)}:{number}")
    assert not hits, f"issue numbers in code: {hits}"


def test_the_checker_flags_an_unexplained_deferred_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from fullspectrum.errors import MaskError\n    return MaskError\n\n"
        "def g():\n    # heavy: loaded when called\n    from fullspectrum.data import load_dataset\n"
        "    return load_dataset\n"
    )
    assert _deferred_imports_without_reason(sample, root=tmp_path) == ["sample.py:2"]
