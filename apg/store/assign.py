"""Assign new users to the personas of a stored run, with that run's stored model.

The table is read like a ``file`` source (same readers, id checks and text handling), passed
through the stored preprocessing and placed with the winner's rule (see ``apg.search.model_io``):
nearest centre or centroid, or for DBSCAN the nearest core sample within eps, else outlier.

:func:`assign_file_to_csv` (``apg assign``) streams CSV, TSV and Parquet input batch by batch
(``apg.search.streaming``; with ``dask=ADDRESS``, Parquet partitions on a Dask cluster, see
``apg.search.scaleout``) and writes the same bytes as the in-memory path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from apg.errors import ApgError, ConfigError, DataError
from apg.search.model_io import StoredModel
from apg.search.streaming import (
    DEFAULT_BATCH_ROWS,
    StreamingUnsupported,
    assign_stream,
    labels_frame,
    ordered_counts,
    write_labels_chunk,
)
from apg.sources.base import SourceContext
from apg.sources.file import FileSource, format_of
from apg.store.store import Store


@dataclass
class Assignment:
    run_id: str
    id_column: str
    frame: pd.DataFrame  # id, cluster (-1: outlier), persona_id ("" for outliers)

    def counts(self) -> dict[str, int]:
        """Users per persona id, largest first (ties by id); outliers (``""``) last."""
        counts = self.frame["persona_id"].value_counts()
        return ordered_counts({str(k): int(v) for k, v in counts.items()})


@dataclass
class Written:
    """What :func:`assign_file_to_csv` wrote."""

    run_id: str
    rows: int
    counts: dict[str, int]  # as ``Assignment.counts``
    mode: str  # "memory", "stream" or "dask"


def read_users(path: Path, id_column: str, sep: str | None = None) -> pd.DataFrame:
    ctx = SourceContext(base_dir=Path.cwd(), id_column=id_column)
    spec = FileSource(path=str(path), options={"sep": sep} if sep else {})
    return spec.finish(spec.read(ctx), ctx)


def assign_table(store: Store, table: pd.DataFrame, run: str | None = None) -> Assignment:
    """Assign the rows of ``table`` with the model of ``run`` (default: the latest run)."""
    return _assign(store.model(run), table)


def assign_file(
    store: Store, path: Path, run: str | None = None, sep: str | None = None
) -> Assignment:
    """Read ``path`` and assign its users; the id column is the one the run used."""
    stored = store.model(run)
    return _assign(stored, read_users(path, stored[3], sep))


def _assign(
    stored: tuple[str, StoredModel, dict[int, str], str], table: pd.DataFrame
) -> Assignment:
    run_id, model, persona_of, id_column = stored
    if id_column not in table.columns:
        raise DataError(
            f"the table has no id column {id_column!r} (the id column of run "
            f"{run_id}); columns are {list(table.columns)}"
        )
    if table.empty:
        raise DataError("the table has no rows to assign")
    labels = model.assign(table)
    return Assignment(
        run_id, id_column, labels_frame(table[id_column], labels, persona_of, id_column)
    )


def write_labels(frame: pd.DataFrame, out: Path) -> None:
    """Write an assignment as the labels CSV (UTF-8, ``\\n`` line ends, header)."""
    try:
        with open(out, "w", encoding="utf-8") as fh:
            write_labels_chunk(frame, fh, header=True)
    except OSError as exc:
        raise ApgError(f"cannot write {str(out)!r}: {exc.strerror}") from None


def assign_file_to_csv(
    store: Store,
    path: Path,
    out: Path,
    run: str | None = None,
    sep: str | None = None,
    *,
    batch_rows: int | None = None,
    dask: str | None = None,
) -> Written:
    """Assign the users of ``path`` and write ``out``: streamed for CSV, TSV and Parquet
    (memory bounded by ``batch_rows``), on the Dask scheduler at ``dask`` for Parquet when
    given, else read whole. Every way writes the same bytes."""
    run_id, model, persona_of, id_column = stored = store.model(run)
    if dask is not None:
        from apg.search.scaleout import assign_parquet_dask_to_csv

        if format_of(path) != "parquet":
            raise ConfigError(f"--dask assigns Parquet input; {str(path)!r} is not .parquet")

        done = assign_parquet_dask_to_csv(path, model, id_column, out, dask, persona_of=persona_of)
        return Written(run_id, done.rows, done.counts, "dask")
    try:
        done = assign_stream(
            path,
            model,
            id_column,
            out,
            sep=sep,
            persona_of=persona_of,
            batch_rows=batch_rows or DEFAULT_BATCH_ROWS,
        )
        return Written(run_id, done.rows, done.counts, "stream")
    except StreamingUnsupported:
        pass
    result = _assign(stored, read_users(path, id_column, sep))
    write_labels(result.frame, out)
    return Written(run_id, len(result.frame), result.counts(), "memory")
