"""The ``metrics.sqlite`` database of a run directory (SPEC §8): schema, writes, typed reads.

Four tables hold a run's time series: ``layers`` (the full-spectrum metrics of
every layer at every snapshot, FS23 §4 tracks their movement during sparse
training), ``evals`` (loss and accuracy per split), ``events`` (mask updates:
weights pruned and grown per layer, ITOP21) and ``population`` (the scored PAGS
candidates of FS23 §5). Their columns are the pinned ``*_COLUMNS`` tuples, which
the exports reuse unchanged.

Concurrency: one writer keeps a connection in WAL mode and commits each
snapshot in one ``BEGIN IMMEDIATE`` transaction, so any number of readers in
other processes see whole snapshots only. Readers open short-lived read-only
connections (``mode=ro``; ``immutable=1`` for a finished run in a folder they
cannot write), because a long-lived reader would block the switch back to a
rollback journal that ends every run.
"""

from __future__ import annotations

import math
import sqlite3
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from fullspectrum.errors import CheckpointError, FullSpectrumError
from fullspectrum.spectrum import SPECTRUM_FIELDS, VECTOR_AXES, LayerSpectrum

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
"""How long a connection waits for another one's lock before giving up (readers and the writer)."""


class RunError(CheckpointError):
    """A run directory is missing, corrupt, unreadable, or was opened read-only for a write."""


def _spectrum_dtypes() -> dict[str, str]:
    hints = typing.get_type_hints(LayerSpectrum)
    kinds = {int: "int64", float: "float64", bool: "bool"}
    return {name: kinds[hints[name]] for name in SPECTRUM_FIELDS}


LAYER_COLUMNS: tuple[str, ...] = (
    "step",
    "layer",
    *SPECTRUM_FIELDS,
    "moving_distance",
    "exploration_rate",
    "effective_weights",
    "network_effective_density",
)
"""``effective_weights``: the layer's kept weights on an input-output path of the unrolled graph
(SPEC §7, effective paths); ``network_effective_density``: effective weights / all prunable
weights of the network at that step (the same on every row of a step). NaN where not recorded:
a model the unrolled-graph tracer cannot encode, or a run from before these columns."""
ADDED_LAYER_COLUMNS = ("effective_weights", "network_effective_density")
"""Columns that databases of older runs lack: a writer adds them, a reader fills them with NaN."""
EVAL_COLUMNS: tuple[str, ...] = ("step", "split", "loss", "accuracy", "exploration_rate")
EVENT_COLUMNS: tuple[str, ...] = ("step", "layer", "pruned", "grown")
POPULATION_COLUMNS: tuple[str, ...] = (
    "candidate",
    "layer",
    *VECTOR_AXES,
    "score",
    "won",
)
EVAL_SPLITS: tuple[str, ...] = ("train", "val", "test")

# table -> column -> pandas dtype of the typed readers ("str" is pandas' string dtype)
DTYPES: dict[str, dict[str, str]] = {
    "layers": {
        "step": "int64",
        "layer": "str",
        **_spectrum_dtypes(),
        "moving_distance": "float64",
        "exploration_rate": "float64",
        "effective_weights": "float64",
        "network_effective_density": "float64",
    },
    "evals": {
        "step": "int64",
        "split": "str",
        "loss": "float64",
        "accuracy": "float64",
        "exploration_rate": "float64",
    },
    "events": {"step": "int64", "layer": "str", "pruned": "int64", "grown": "int64"},
    "population": {
        "candidate": "int64",
        "layer": "str",
        "delta_r": "float64",
        "lambda_w": "float64",
        "delta_r_imdb": "float64",
        "lambda_imsg": "float64",
        "score": "float64",
        "won": "bool",
    },
}
COLUMNS: dict[str, tuple[str, ...]] = {
    "layers": LAYER_COLUMNS,
    "evals": EVAL_COLUMNS,
    "events": EVENT_COLUMNS,
    "population": POPULATION_COLUMNS,
}
# columns a row must give; every other float column defaults to NaN, "won" to False
REQUIRED: dict[str, tuple[str, ...]] = {
    "layers": ("layer", *SPECTRUM_FIELDS),
    "evals": ("split",),
    "events": ("layer", "pruned", "grown"),
    "population": ("candidate", "layer"),
}
STEP_TABLES = ("layers", "evals", "events")
_SQL_TYPES = {"int64": "INTEGER", "bool": "INTEGER", "float64": "REAL", "str": "TEXT"}


def _create_statements() -> Iterator[str]:
    for table, dtypes in DTYPES.items():
        columns = ", ".join(f'"{name}" {_SQL_TYPES[dtype]}' for name, dtype in dtypes.items())
        yield f"CREATE TABLE IF NOT EXISTS {table} ({columns})"
    for table in STEP_TABLES:
        yield f"CREATE INDEX IF NOT EXISTS {table}_step ON {table} (step)"


def connect_writer(path: Path, *, create: bool) -> sqlite3.Connection:
    """The run's single writing connection: WAL mode, full fsync per commit.

    ``create`` makes the tables; otherwise the database must already hold them
    (:class:`RunError`, or ``sqlite3.DatabaseError`` for a file that is no database).
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not create:
            check_schema(conn, path)
            _add_missing_columns(conn)
    except BaseException:
        conn.close()
        raise
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        conn.close()
        raise RunError(
            f"{path}: cannot switch to WAL mode (journal_mode={mode}); is the folder on a network drive?"
        )
    conn.execute("PRAGMA synchronous = FULL")
    with transaction(conn):
        for statement in _create_statements():
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


def _is_wal(path: Path) -> bool:
    """Whether the database header says WAL mode (file format bytes 18-19 equal 2)."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    return len(header) == 20 and header[18] == 2


def connect_reader(path: Path, *, folder_writable: bool) -> sqlite3.Connection:
    """A read-only connection that creates and changes no file.

    A finished run (rollback journal) in a folder this process cannot write is
    opened ``immutable``: no locks, no journal look-up, so it works from
    read-only mounts. Otherwise ``mode=ro``, which also reads a live WAL.
    """
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    if not folder_writable and not _is_wal(path):
        uri += "&immutable=1"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Raise :class:`RunError` unless every table of the schema is present."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [table for table in COLUMNS if table not in tables]
    if missing:
        raise RunError(f"{path}: not a run database (missing table {', '.join(missing)})")


def _table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring an older run's tables up to the schema (a resumed run then writes every column)."""
    for table, dtypes in DTYPES.items():
        present = _table_columns(conn, table)
        for column in (c for c in dtypes if c not in present):
            conn.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {_SQL_TYPES[dtypes[column]]}')


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: everything inside commits together or not at all."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _convert(value, dtype: str, table: str, column: str):
    try:
        if dtype == "float64":
            if value is None:
                return None
            number = float(value)
            return None if math.isnan(number) else number
        if dtype == "int64":
            return int(value)
        if dtype == "bool":
            return int(bool(value))
        return str(value)
    except (TypeError, ValueError) as error:
        raise FullSpectrumError(f"{table} row: column {column!r} has bad value {value!r} ({error})") from None


def row_values(table: str, row: dict, step: int | None = None) -> tuple:
    """One row as a tuple in column order, checked against the schema of ``table``."""
    dtypes = DTYPES[table]
    unknown = set(row) - set(dtypes)
    if unknown:
        raise FullSpectrumError(f"{table} row: unknown column(s) {', '.join(sorted(unknown))}")
    missing = [column for column in REQUIRED[table] if column not in row]
    if missing:
        raise FullSpectrumError(f"{table} row: missing column(s) {', '.join(missing)}")
    if table == "evals" and row["split"] not in EVAL_SPLITS:
        raise FullSpectrumError(f"evals row: split {row['split']!r}; choose from {', '.join(EVAL_SPLITS)}")
    values = []
    for column, dtype in dtypes.items():
        if column == "step":
            values.append(int(step))
        else:
            default = False if dtype == "bool" else None
            values.append(_convert(row.get(column, default), dtype, table, column))
    return tuple(values)


def insert_rows(conn: sqlite3.Connection, table: str, rows: Iterable[dict], step: int | None = None) -> None:
    """Insert rows (call inside :func:`transaction`); ``step`` overrides any ``step`` key of a row."""
    values = [row_values(table, row, step) for row in rows]
    if not values:
        return
    marks = ", ".join("?" for _ in DTYPES[table])
    names = ", ".join(f'"{name}"' for name in DTYPES[table])
    conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)


def read_table(conn: sqlite3.Connection, table: str) -> pd.DataFrame:
    """The whole table with its pinned columns and dtypes (also when empty), in step order."""
    columns = COLUMNS[table]
    order = "step, rowid" if table in STEP_TABLES else "rowid"
    present = _table_columns(conn, table)  # an older run, opened read-only, may lack added columns
    names = ", ".join(f'"{name}"' if name in present else f'NULL AS "{name}"' for name in columns)
    rows = conn.execute(f"SELECT {names} FROM {table} ORDER BY {order}").fetchall()
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    return frame.astype(DTYPES[table])


def max_step(conn: sqlite3.Connection) -> int | None:
    """The largest step recorded in any step table, or ``None`` for an empty run."""
    union = " UNION ALL ".join(f"SELECT MAX(step) FROM {table}" for table in STEP_TABLES)
    steps = [row[0] for row in conn.execute(union) if row[0] is not None]
    return max(steps) if steps else None


def delete_after(conn: sqlite3.Connection, step: int) -> None:
    """Delete every row with a step after ``step`` from every step table, in one transaction."""
    with transaction(conn):
        for table in STEP_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE step > ?", (int(step),))


def switch_to_rollback_journal(
    conn: sqlite3.Connection, path: Path, timeout_s: float = BUSY_TIMEOUT_S
) -> None:
    """Checkpoint the WAL into the database and leave WAL mode, removing ``-wal``/``-shm``.

    SQLite refuses the switch while another connection is open, so retry until
    readers have let go (they hold connections only for one query).
    """
    deadline = time.monotonic() + timeout_s
    conn.execute(f"PRAGMA busy_timeout = {int(min(timeout_s, 1.0) * 1000)}")  # short waits, many tries
    try:
        while True:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
                if mode.lower() == "delete":
                    return
            except sqlite3.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RunError(f"{path}: could not leave WAL mode, another process keeps the database open")
            time.sleep(0.05)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
