"""What a ``torch.save`` file's pickles ask for, read without unpickling them.

``torch.load(..., weights_only=True)`` refuses a file that needs a global it does not allow or
an opcode its unpickler lacks, but it says so in a paragraph, and for a legacy (non-zip) file it
names only the first global. A legacy file is also trusted with the size of each storage: the
loader allocates what the pickle claims before it reads the data. This module reads the pickles
with :func:`pickletools.genops`, which decodes opcodes and never builds an object, and reports
what a file asks for (:class:`PickleFacts`):

* the globals it names (``GLOBAL``, and protocol 4's ``STACK_GLOBAL``), so that every one the
  loader would refuse can be named;
* the pickle protocol it was written with: protocols 4 and 5 frame their data (``FRAME``), which
  torch's weights-only unpickler cannot read;
* in a legacy file, the element count each storage claims, so that a 1 kB file claiming a
  40 GB storage is refused before ``torch.load`` allocates it.

A zip file (``torch.save``'s format since PyTorch 1.6) keeps its pickle in ``<name>/data.pkl``;
a legacy file is a sequence of pickles (magic number, protocol, system info, the object, the
storage keys) followed by the raw storages.

>>> import io, torch
>>> buffer = io.BytesIO()
>>> torch.save({"w": torch.zeros(2, 3)}, buffer, _use_new_zipfile_serialization=False)
>>> facts = scan_pickles(io.BytesIO(buffer.getvalue()), count=4)
>>> facts.protocol, "torch._utils._rebuild_tensor_v2" in facts.globals, [n for _, n in facts.storages]
(2, True, [6])
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ZIP_MAGIC = b"PK\x03\x04"
"""The first bytes of a zip file: ``torch.save``'s format since PyTorch 1.6 (anything else is legacy)."""
LEGACY_PICKLES = 4
"""Pickles of a legacy file up to and including the saved object (magic, protocol, system info, object)."""


@dataclass(frozen=True)
class PickleFacts:
    """What a file's pickles ask for (empty when they could not be read)."""

    protocol: int = 0
    """The pickle protocol (``PROTO``) of the object's pickle; 0 when it has none or was not read."""
    globals: tuple[str, ...] = ()
    """Every global the pickles name, ``module.name``, in file order, without repeats."""
    storages: tuple[tuple[str, int], ...] = ()
    """``(storage key, claimed element count)`` of each storage a legacy file's pickle names."""
    zip_format: bool = False
    """True for a zip file (torch checks its storages' sizes against the archive itself)."""


def is_zip_file(path: str | Path) -> bool:
    """True when ``path`` starts like a zip file, as ``torch.load`` decides it."""
    with open(path, "rb") as handle:
        return handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC


def scan_torch_file(path: str | Path) -> PickleFacts:
    """The :class:`PickleFacts` of a ``torch.save`` file, zip or legacy; empty facts if unreadable."""
    try:
        if is_zip_file(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
                facts = scan_pickles(io.BytesIO(archive.read(name)), count=1)
            return PickleFacts(facts.protocol, facts.globals, facts.storages, zip_format=True)
        with open(path, "rb") as handle:
            return scan_pickles(handle, count=LEGACY_PICKLES)
    except (OSError, StopIteration, zipfile.BadZipFile, ValueError, EOFError):
        return PickleFacts()


def scan_pickles(stream: IO[bytes], *, count: int) -> PickleFacts:
    """Scan up to ``count`` consecutive pickles of ``stream``; stops quietly at the first unreadable one."""
    protocols: list[int] = []
    found: list[str] = []
    storages: list[tuple[str, int]] = []
    for _ in range(count):
        try:
            protocol = _scan_one(stream, found, storages)
        except Exception:  # a damaged pickle: report what was read before it
            break
        protocols.append(protocol)
    return PickleFacts(
        protocol=protocols[-1] if protocols else 0,
        globals=tuple(dict.fromkeys(found)),
        storages=tuple(storages),
    )


_MARK = object()  # a MARK on the simulated stack
_INTEGER_OPS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _scan_one(stream: IO[bytes], found: list[str], storages: list[tuple[str, int]]) -> int:
    """Follow one pickle's stack (values only where they name globals or storages); returns its protocol."""
    protocol = 0
    stack: list = []
    memo: dict = {}
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name == "PROTO":
            protocol = int(arg)
            continue
        if name == "MARK":
            stack.append(_MARK)
            continue
        before = list(opcode.stack_before)
        sliced: list = []
        if pickletools.markobject in before:  # TUPLE, APPENDS, SETITEMS...: everything above the mark
            start = max((i for i, item in enumerate(stack) if item is _MARK), default=-1)
            sliced, stack = stack[start + 1 :], stack[: max(start, 0)]
            before = [item for item in before if item not in (pickletools.markobject, pickletools.stackslice)]
        popped = stack[len(stack) - len(before) :] if before else []
        del stack[len(stack) - len(popped) :]
        value = None
        if isinstance(arg, str | bytes) and name not in ("GLOBAL", "INST"):
            value = arg.decode("latin-1") if isinstance(arg, bytes) else arg
        elif name in _INTEGER_OPS:
            value = arg
        elif name in ("GLOBAL", "INST"):
            value = ".".join(str(arg).split(" ", 1))
            found.append(value)
        elif name == "STACK_GLOBAL" and all(isinstance(part, str) for part in popped):
            value = ".".join(popped)
            found.append(value)
        elif name == "TUPLE":
            value = tuple(sliced)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3", "MEMOIZE", "DUP"):
            value = tuple(popped) if name.startswith("TUPLE") else popped[0]
        elif name in _GET_OPS:
            value = memo.get(arg)
        elif name == "BINPERSID":
            _note_storage(popped[0] if popped else None, storages)
        if name in _PUT_OPS and stack:
            memo[arg] = stack[-1]
        if name == "MEMOIZE":
            memo[len(memo)] = value
        stack.extend([value] * len(opcode.stack_after))
    return protocol


def _note_storage(pid, storages: list[tuple[str, int]]) -> None:
    """A legacy persistent id: ``("storage", storage_type, key, location, numel[, view_metadata])``."""
    if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int):
        storages.append((str(pid[2]), pid[4]))
