"""The prepare stage of a run, whole or streamed, and the clustering matrix it hands on.

:func:`prepare_table` checks the roles and fits the preprocessing on a table read whole
(a DataFrame) or one column at a time (a Parquet source too large for memory); both give the
same :class:`~apg.prepare.preprocessing.Prepared`, to the bit. :func:`matrix_of` then gives the
later stages one way to read the clustering matrix, whichever the table was:

* :class:`WholeMatrix`: X is in memory;
* :class:`StreamedMatrix`: X is never built; rows are read and transformed when asked for
  (``preload`` keeps the few thousand rows the search needs), and ``batches`` gives every row
  in order, a batch at a time (the search sizes them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from apg.config import Config
from apg.prepare.features import LazyRaw, select_features, select_features_by_column
from apg.prepare.preprocessing import Prepared, prepare, prepare_by_column, transform
from apg.sources.combine import SourceTable
from apg.sources.parquet_columns import StreamedTable


class Matrix(Protocol):
    """The clustering matrix of a run's ``n`` rows, however it is held."""

    @property
    def n(self) -> int: ...

    @property
    def in_memory(self) -> bool: ...

    def all(self) -> np.ndarray:
        """Every row (a streamed matrix reads them all: only for small tables)."""
        ...

    def preload(self, rows: np.ndarray) -> None:
        """Keep these sorted rows at hand for :meth:`rows` (a whole matrix has them all)."""
        ...

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """X at the sorted positions ``rows``."""
        ...

    def batches(self, batch_rows: int) -> Iterator[np.ndarray]:
        """Every row in order, ``batch_rows`` at a time (a whole matrix: one batch)."""
        ...


class WholeMatrix:
    def __init__(self, X: np.ndarray) -> None:
        self.X = X

    @property
    def n(self) -> int:
        return len(self.X)

    @property
    def in_memory(self) -> bool:
        return True

    def all(self) -> np.ndarray:
        return self.X

    def preload(self, rows: np.ndarray) -> None:
        pass

    def rows(self, rows: np.ndarray) -> np.ndarray:
        return self.X[rows]

    def batches(self, batch_rows: int) -> Iterator[np.ndarray]:
        yield self.X


class StreamedMatrix:
    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self._rows = np.empty(0, dtype=np.intp)  # sorted positions of the rows kept in _X
        self._X = prepared.X

    @property
    def n(self) -> int:
        return len(self.prepared.frame.ids)

    @property
    def in_memory(self) -> bool:
        return False

    def all(self) -> np.ndarray:
        self.preload(np.arange(self.n))
        return self._X

    def preload(self, rows: np.ndarray) -> None:
        self._rows = np.asarray(rows, dtype=np.intp)
        self._X = self._read(self._rows)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self._rows, rows)
        held = len(self._rows) and np.array_equal(
            self._rows[np.minimum(at, len(self._rows) - 1)], rows
        )
        return self._X[at] if held else self._read(rows)

    def batches(self, batch_rows: int) -> Iterator[np.ndarray]:
        frame = self.prepared.frame
        for batch in frame.raw.batches(frame.features, batch_rows):
            yield transform(self.prepared, batch)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        frame = self.prepared.frame
        return transform(self.prepared, frame.raw.rows(rows, frame.features))


def prepare_table(table: SourceTable, config: Config) -> Prepared:
    """Roles checked and preprocessing fitted: on the whole frame, or a column at a time."""
    labels = getattr(table, "labels", [])
    origin = labels[0] if len(labels) == 1 else "the joined sources"
    streamed = table.columns if isinstance(table, StreamedTable) else None
    roles: dict[str, Any] = {
        "degenerate": config.preprocessing.degenerate_columns,
        "origin": origin,
        "preprocessing": config.preprocessing,
    }
    fit: dict[str, Any] = {
        "seed": config.search.seed,
        "min_cluster_share": config.search.min_cluster_share,
    }
    if streamed is not None:
        lazy = select_features_by_column(streamed, config.id_column, config.features, **roles)
        return prepare_by_column(lazy, config.preprocessing, **fit)
    frame = select_features(table.frame, config.id_column, config.features, **roles)
    return prepare(frame, config.preprocessing, **fit)


def matrix_of(prepared: Prepared) -> Matrix:
    """The matrix of ``prepared``: in memory, or read from its lazily held table."""
    if isinstance(prepared.frame.raw, LazyRaw):
        return StreamedMatrix(prepared)
    return WholeMatrix(prepared.X)
