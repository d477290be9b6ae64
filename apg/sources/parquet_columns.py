"""A Parquet file source read a column, or a batch of rows, at a time: the input of a streamed
run (``apg.streamed_run``), for tables larger than memory.

A whole-table read holds every column at once. :class:`ParquetColumns` instead gives each
column whole (one column of every row fits where the table does not) and the rows in batches,
converted exactly as the whole-table read (``FileSource.read`` then ``finish``) converts them:

* the source's ``rename:`` and ``id:`` are applied to the names, with the same errors;
* ids are checked, and ``dedupe:`` applied, by the same code on the id column alone;
* a batch gets each column's whole-table dtype (an integer column with a missing value
  somewhere is float64 in the whole table, even in a batch that has none).

Only a plain Parquet file source streams: one ``kind: file`` source (a path or a glob of
Parquet files) with no ``options`` other than ``columns``. :func:`stream_plan` decides.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from apg.errors import ConfigError
from apg.sources.base import SourceContext
from apg.sources.combine import SourceTable
from apg.sources.file import FileSource, format_of
from apg.sources.fingerprint import TableFingerprint

# Bytes a cell takes once a whole-table run holds it (pandas frame, then the matrix and its
# temporaries): measured ~0.8 KB a user over 21 columns at 1M rows, so 40 is on the safe side.
NUMERIC_CELL_BYTES = 40
TEXT_CELL_BYTES = 100


class ParquetColumns:
    """``apg.prepare.features.Columns`` over the Parquet file(s) of one file source."""

    def __init__(self, spec: FileSource, ctx: SourceContext) -> None:
        self.spec, self.ctx = spec, ctx
        self.label = spec.label(ctx)
        self.files = spec.paths(ctx)
        wanted = spec.options.get("columns")
        headers = [self._header(path, wanted) for path in self.files]
        for path, header in zip(self.files[1:], headers[1:], strict=True):
            if list(header.columns) != list(headers[0].columns):
                raise spec.error(
                    ctx,
                    f"{str(path)!r} has columns {list(header.columns)} but the first file "
                    f"has {list(headers[0].columns)}; files matched by one pattern must share "
                    "columns",
                )
        file_names = [str(c) for c in headers[0].columns]
        # The renames and the key checks of a whole-table read, on the columns alone.
        finished = spec.finish(headers[0], ctx)
        self.names: list[str] = [str(c) for c in finished.columns]
        self._in_file = dict(zip(self.names, file_names, strict=True))
        self._file_rows = [pq.ParquetFile(p).metadata.num_rows for p in self.files]
        self._keep, ids = self._check_ids()
        self._positions = None if self._keep is None else np.flatnonzero(self._keep)
        self.num_rows = int(sum(self._file_rows) if self._keep is None else self._keep.sum())
        self.dtypes: dict[str, object] = {ctx.id_column: ids.dtype}  # filled by column()
        # The ids are kept: every run needs them whole, so they are read once.
        self.ids = ids if self._keep is None else ids[self._keep].reset_index(drop=True)

    def _header(self, path: Path, wanted: list[str] | None) -> pd.DataFrame:
        try:
            header = pq.read_schema(path).empty_table().to_pandas()
        except Exception as exc:  # pyarrow raises its own types for corrupt files
            text = str(exc).strip().splitlines()
            raise self.spec.error(
                self.ctx, f"cannot read {str(path)!r} as parquet: {(text or ['?'])[0][:300]}"
            ) from None
        if wanted is not None:
            missing = [c for c in wanted if c not in header.columns]
            if missing:
                raise self.spec.error(
                    self.ctx,
                    f"cannot read {str(path)!r} as parquet: options.columns {missing} are not "
                    f"in the file",
                )
            header = header[list(wanted)]
        if len(header.columns) == 0 or pq.ParquetFile(path).metadata.num_rows == 0:
            raise self.spec.error(
                self.ctx, f"{str(path)!r} has no rows; check the file and its separator"
            )
        return header

    def _check_ids(self) -> tuple[np.ndarray | None, pd.Series]:
        """Run the whole-table read's id checks on the id column; the rows ``dedupe:``
        keeps (None: all) and every id."""
        id_column = self.ctx.id_column
        key = self.spec.id or id_column
        ids = self._read(id_column)
        # The id column under its pre-``id:`` name, so messages name it as a whole read does.
        bare = self.spec.model_copy(update={"rename": {}})
        bare.finish(pd.DataFrame({key: ids}), self.ctx)
        if self.spec.dedupe is None or not ids.duplicated().any():
            return None, ids
        return ~ids.duplicated(keep=self.spec.dedupe).to_numpy(), ids

    def _read(self, name: str) -> pd.Series:
        parts = [
            pq.read_table(path, columns=[self._in_file[name]])
            .to_pandas(self_destruct=True, split_blocks=True)
            .iloc[:, 0]
            for path in self.files
        ]
        whole = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        return whole.reset_index(drop=True).rename(name)

    def column(self, name: str) -> pd.Series:
        """Every row of one column, as the whole-table read holds it."""
        if name == self.ctx.id_column:
            return self.ids
        whole = self._read(name)
        self.dtypes[name] = whole.dtype
        if self._keep is not None:
            whole = whole[self._keep].reset_index(drop=True)
        return whole

    def _dtype(self, name: str) -> object:
        if name not in self.dtypes:
            self.column(name)
        return self.dtypes[name]

    def _convert(self, table: pa.Table, columns: list[str]) -> pd.DataFrame:
        frame = table.to_pandas(self_destruct=True, split_blocks=True)
        frame.columns = columns
        for name in columns:
            dtype = self._dtype(name)
            if frame[name].dtype != dtype:
                frame[name] = frame[name].astype(dtype)
        return frame.reset_index(drop=True)

    def batches(
        self, columns: list[str], batch_rows: int, keep: np.ndarray | None = None
    ) -> Iterator[pd.DataFrame]:
        """The rows of ``columns`` in order, ``batch_rows`` at a time (the last: fewer);
        ``keep`` (a mask over this table's rows) leaves rows out."""
        in_file = [self._in_file[c] for c in columns]
        pending: list[pd.DataFrame] = []
        held = 0
        row = 0  # position among the file rows read so far
        kept = 0  # position among this table's rows (after dedupe)
        for path in self.files:
            pf = pq.ParquetFile(path, pre_buffer=False)
            for batch in pf.iter_batches(batch_size=batch_rows, columns=in_file):
                frame = self._convert(pa.Table.from_batches([batch]), columns)
                mask = None
                if self._keep is not None:
                    mask = self._keep[row : row + len(frame)]
                row += len(frame)
                if keep is not None:
                    inner = keep[
                        kept : kept + (int(mask.sum()) if mask is not None else len(frame))
                    ]
                    kept += len(inner)
                    if mask is None:
                        mask = inner
                    else:
                        mask = mask.copy()
                        mask[mask] = inner
                elif mask is not None:
                    kept += int(mask.sum())
                if mask is not None:
                    frame = frame[mask].reset_index(drop=True)
                pending.append(frame)
                held += len(frame)
                while held >= batch_rows:
                    whole = (
                        pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
                    )
                    yield whole.iloc[:batch_rows].reset_index(drop=True)
                    rest = whole.iloc[batch_rows:]
                    pending, held = ([rest] if len(rest) else []), len(rest)
        if held:
            yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]

    def rows(self, indices: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The rows at ``indices`` (positions among this table's rows), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        wanted = indices if self._positions is None else self._positions[indices]
        in_file = [self._in_file[c] for c in columns]
        parts: list[pd.DataFrame] = []
        order: list[np.ndarray] = []
        offset = 0
        for path, n_file in zip(self.files, self._file_rows, strict=True):
            pf = pq.ParquetFile(path, pre_buffer=False)
            starts = np.cumsum(
                [0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            )
            for g in range(pf.num_row_groups):
                lo, hi = offset + starts[g], offset + starts[g + 1]
                hit = np.flatnonzero((wanted >= lo) & (wanted < hi))
                if not hit.size:
                    continue
                group = pf.read_row_group(g, columns=in_file)
                parts.append(self._convert(group.take(pa.array(wanted[hit] - lo)), columns))
                order.append(hit)
            offset += n_file
        if not parts:
            return self._convert(
                pq.read_schema(self.files[0]).empty_table().select(in_file), columns
            )
        joined = pd.concat(parts, ignore_index=True)
        back = np.empty(len(indices), dtype=np.int64)
        back[np.concatenate(order)] = np.arange(len(indices))
        return joined.iloc[back].reset_index(drop=True)

    def estimated_bytes(self, n_features: int) -> int:
        """What a whole-table run would hold for this table, from the schema alone."""
        schema = pq.read_schema(self.files[0])
        per_row = 0
        for name in self._in_file.values():
            kind = schema.field(name).type
            numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
            numeric = numeric or pa.types.is_boolean(kind)
            per_row += NUMERIC_CELL_BYTES if numeric else TEXT_CELL_BYTES
        return sum(self._file_rows) * (per_row + 8 * n_features)


@dataclass
class StreamedTable(SourceTable):
    """A :class:`SourceTable` whose frame holds only the ids; ``columns`` reads the rest."""

    columns: ParquetColumns | None = field(default=None, repr=False)


def streamable(specs: list[object]) -> tuple[FileSource | None, str]:
    """The one plain Parquet file source of a config, or None and why it cannot stream."""
    if len(specs) != 1:
        return None, f"the run has {len(specs)} sources; only a single source streams"
    spec = specs[0]
    if not isinstance(spec, FileSource):
        return None, f"only file sources stream, not {getattr(spec, 'kind', '?')} sources"
    formats = {spec.format or format_of(Path(spec.path.replace("*", "x")))}
    if formats != {"parquet"}:
        return None, "only Parquet files stream (CSV, TSV and JSON lines are read whole)"
    if set(spec.options) - {"columns"}:
        return None, "only the `columns` option streams; other reader options need a whole read"
    if spec.row_id is not None:
        return None, "`row_id:` numbers the rows of a whole read; give the table an id column"
    return spec, ""


def available_bytes() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def stream_plan(
    specs: list[object],
    base_dir: Path,
    id_column: str,
    mode: str,
    budget_mib: int | None,
    n_features: int,
) -> ParquetColumns | None:
    """The columns to stream, or None for a whole-table run.

    ``mode`` is ``search.stream``: ``off`` never streams, ``on`` always does (and says why it
    cannot), ``auto`` streams a Parquet source whose whole-table run would need more than
    ``budget_mib`` (default: half the memory available now).
    """
    if mode == "off":
        return None
    spec, why = streamable(specs)
    if spec is None:
        if mode == "on":
            raise ConfigError(f"search.stream is on, but {why}; set search.stream: auto or off")
        return None
    columns = ParquetColumns(
        spec, SourceContext(base_dir=base_dir, id_column=id_column, position=1)
    )
    if mode == "on":
        return columns
    budget = budget_mib * 2**20 if budget_mib is not None else (available_bytes() or 0) // 2
    return columns if budget and columns.estimated_bytes(n_features) > budget else None


def load_streamed(columns: ParquetColumns) -> StreamedTable:
    """The table of a streamed run: ids in memory, the fingerprint of every column (read one
    at a time), each column's whole-table dtype recorded for the batches."""
    names = sorted(columns.names, key=str)
    digest = TableFingerprint(columns.num_rows, len(names))
    for name in names:
        digest.add(name, columns.column(name))
    frame = pd.DataFrame({columns.ctx.id_column: columns.ids})
    return StreamedTable(
        frame=frame,
        rows_per_source=[columns.num_rows],
        labels=[columns.label],
        columns_per_source=[[c for c in columns.names if c != columns.ctx.id_column]],
        fingerprint=digest.hexdigest(),
        columns=columns,
    )
