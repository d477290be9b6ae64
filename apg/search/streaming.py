"""Assignment streamed over CSV and Parquet files: memory bounded by a batch, not the file.

``apg assign`` reads CSV, TSV and Parquet input this way: batches of ``batch_rows`` rows
(Parquet: record batches of the needed columns, with pyarrow; CSV: pandas chunks) go through
the stored preprocessing and the winner's rule, and their ``id, cluster, persona_id`` rows are
appended to the output CSV. The file is the one the in-memory path (``apg.store.assign.assign_file``
+ ``write_labels``) writes, byte for byte:

* Values convert as in a whole-file read. There, an integer column with a missing value
  anywhere is float, so such categorical Parquet columns are made float in every batch (the
  category text is ``"1.0"``, not ``"1"``); CSV chunks whose categorical types disagree are
  reconciled the same way (restarting the output if integer chunks were written). A column
  mixing numbers and text (pandas' ``DtypeWarning``) raises :class:`StreamingUnsupported`, and
  ``apg assign`` reads that file whole.
* Batches are multiples of the block of ``ClusterModel.predict``, so every row meets the same
  arithmetic as in memory.
* Ids are checked as a source checks them, with the same errors: duplicates through 64-bit
  hashes of the ids (8 bytes a row), the message from re-reading the id column alone.
* The output appears only when complete (a temporary file, renamed at the end).

Distances stay float64: on 1M rows x 15 features with k=10, placing rows takes 0.2 s of the
~3.5 s of streaming (reading, preprocessing and writing CSV dominate). float32 took 0.08 s and
gave the same labels there, but saves 3% and could flip a near-tie or an eps comparison.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from apg.errors import ApgError, DataError
from apg.search.clusters import CHUNK_ROWS
from apg.search.model_io import StoredModel
from apg.sources.base import SourceContext
from apg.sources.file import FileSource, format_of, read_table

DEFAULT_BATCH_ROWS = 2 * CHUNK_ROWS  # 131,072 rows: measured ~300 MB over the idle process
STREAM_FORMATS = ("csv", "tsv", "parquet")


class StreamingUnsupported(ApgError):
    """This input cannot be streamed with output identical to a whole-file read."""


class _Restart(Exception):
    def __init__(self, casts: dict[str, str]) -> None:
        self.casts = casts


@dataclass
class StreamResult:
    rows: int
    counts: dict[str, int]  # users per persona id, ordered like ``Assignment.counts``
    batches: int


def ordered_counts(counts: dict[str, int]) -> dict[str, int]:
    """Largest first (ties by id); outliers (``""``) last."""
    order = sorted(counts.items(), key=lambda kv: (kv[0] == "", -kv[1], kv[0]))
    return {str(k): int(v) for k, v in order}


def labels_frame(
    ids: pd.Series | np.ndarray, labels: np.ndarray, persona_of: dict[int, str], id_column: str
) -> pd.DataFrame:
    """The output rows: id, cluster (-1: outlier), persona_id ("" for outliers)."""
    labels = np.asarray(labels, dtype=np.int64)
    # Labels run from -1 (outlier) up; one lookup per possible label, then one take.
    top = int(labels.max()) if len(labels) else -1
    names = np.array([persona_of.get(c, "") for c in range(-1, top + 1)], dtype=object)
    return pd.DataFrame(
        {
            id_column: np.asarray(ids.to_numpy() if isinstance(ids, pd.Series) else ids),
            "cluster": labels,
            "persona_id": names[labels + 1],
        }
    )


def write_labels_chunk(frame: pd.DataFrame, fh: TextIO, header: bool) -> None:
    frame.to_csv(fh, header=header, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def assign_parquet(
    path: Path | str,
    model: StoredModel,
    id_column: str,
    out_csv: Path | str,
    *,
    persona_of: dict[int, str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> StreamResult:
    """Assign the users of a Parquet file (or glob) batch by batch into ``out_csv``."""
    return assign_stream(
        path, model, id_column, out_csv, fmt="parquet", persona_of=persona_of, batch_rows=batch_rows
    )


def assign_stream(
    path: Path | str,
    model: StoredModel,
    id_column: str,
    out_csv: Path | str,
    *,
    fmt: str | None = None,
    sep: str | None = None,
    persona_of: dict[int, str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> StreamResult:
    """Assign every user of a CSV, TSV or Parquet file (or glob) into ``out_csv`` (format from
    the extension unless ``fmt``); raise :class:`StreamingUnsupported` for input that only a
    whole-file read handles (JSON lines, columns mixing numbers and text)."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    reader = FileReader(Path(path), fmt, sep, id_column, model)
    casts = reader.float_casts()
    for _ in range(len(model.preprocessing.categorical) + 2):
        harmonize = _Harmonizer(model.preprocessing.categorical, casts)
        source = reader.frames(batch_rows)
        try:
            with LabelsWriter(Path(out_csv), id_column, reader.raise_id_error) as out:
                for frame in _rechunk((harmonize(f) for f in source), batch_rows):
                    try:
                        labels = model.assign(frame)
                    except DataError:
                        reader.raise_id_error()  # a whole-file read reports bad ids first
                        raise
                    out.write(labels_frame(frame[id_column], labels, persona_of or {}, id_column))
            return out.result()
        except _Restart as again:
            casts = again.casts
        finally:
            source.close()  # closes the file now, also when restarting
    raise AssertionError("casts did not settle")  # each restart adds a column; unreachable


class LabelsWriter:
    """The labels CSV, written batch by batch, checking ids as a source does; it appears
    (renamed from a temporary file) only when complete. ``on_bad_ids`` raises the exact
    error of a whole-file read, or returns when the ids are fine after all."""

    def __init__(self, out: Path, id_column: str, on_bad_ids: Callable[[], None]) -> None:
        self.out, self.id_column, self.on_bad_ids = out, id_column, on_bad_ids
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
        self.hashes: list[np.ndarray] = []
        self.counts: dict[str, int] = {}
        self.rows = self.batches = 0
        try:
            self.fh = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
        except OSError as exc:
            raise ApgError(f"cannot write {str(out)!r}: {exc.strerror}") from None

    def __enter__(self) -> LabelsWriter:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        ids = frame[self.id_column]
        if ids.isna().any():
            self.on_bad_ids()
        # Duplicates: 64-bit hashes of every id (8 bytes a row), compared at the end.
        self.hashes.append(pd.util.hash_pandas_object(ids, index=False).to_numpy())
        write_labels_chunk(frame, self.fh, header=self.batches == 0)
        for key, n in frame["persona_id"].value_counts().items():
            self.counts[str(key)] = self.counts.get(str(key), 0) + int(n)
        self.rows += len(frame)
        self.batches += 1

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.fh.close()
        try:
            if exc_type is None:
                hashes = np.concatenate(self.hashes) if self.hashes else np.empty(0)
                self.hashes.clear()
                hashes.sort()
                if (hashes[1:] == hashes[:-1]).any():
                    self.on_bad_ids()
                os.replace(self.tmp, self.out)
        finally:
            self.tmp.unlink(missing_ok=True)

    def result(self) -> StreamResult:
        return StreamResult(self.rows, ordered_counts(self.counts), self.batches)


def _rechunk(frames: Iterable[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """The concatenated rows of ``frames`` in frames of exactly ``rows`` (the last: fewer)."""
    pending: list[pd.DataFrame] = []

    def joined() -> pd.DataFrame:
        return pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)

    for frame in frames:
        pending += [frame] if len(frame) else []
        while sum(len(f) for f in pending) >= rows:
            whole = joined()
            yield whole.iloc[:rows].reset_index(drop=True)
            pending = [whole.iloc[rows:]] if len(whole) > rows else []
    if pending:
        yield joined().reset_index(drop=True)


def _kind(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    return {"i": "i", "u": "i", "f": "f", "b": "b"}.get(kind, "O")


@dataclass
class _Harmonizer:
    """Gives each categorical column the type a whole-file read would give it (see module)."""

    columns: list[str]
    casts: dict[str, str]
    seen: dict[str, set[str]] = field(default_factory=dict)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        for col in self.columns:
            kind = _kind(frame[col].dtype)
            seen = self.seen.setdefault(col, set())
            if kind == "i" and (self.casts.get(col) == "float64" or seen == {"f"}):
                # Only float chunks so far: a whole-file read makes this one float too.
                self.casts[col] = "float64"
                frame[col] = frame[col].astype("float64")
                kind = "f"
            seen.add(kind)
            if len(seen) == 1 or seen == {"b", "O"}:
                continue
            if seen == {"i", "f"}:
                # Integer chunks were written as integers; a whole-file read makes them float.
                raise _Restart({**self.casts, col: "float64"})
            raise StreamingUnsupported(
                f"column {col!r} mixes numbers and text across the file; it is read whole"
            )
        return frame


class FileReader:
    """The files behind a path or glob, read as ``apg.store.assign.read_users`` reads them."""

    def __init__(
        self, path: Path, fmt: str | None, sep: str | None, id_column: str, model: StoredModel
    ) -> None:
        self.ctx = SourceContext(base_dir=Path.cwd(), id_column=id_column)
        spec = {"path": str(path), "format": fmt, "options": {"sep": sep} if sep else {}}
        self.spec = FileSource.model_validate(spec)
        self.id_column = id_column
        self.model = model
        self.files: list[tuple[Path, str]] = []
        for p in self.spec.paths(self.ctx):
            f = self.spec.format or format_of(p)
            if f is None:
                raise self.spec.error(
                    self.ctx,
                    f"cannot tell the format of {str(p)!r} from its extension; use .csv, "
                    ".tsv, .parquet or .jsonl, or set `format:`",
                )
            if f not in STREAM_FORMATS:
                raise StreamingUnsupported(f"{f} input is read whole")
            self.files.append((p, f))
        self.needed = list(dict.fromkeys([id_column, *model.features]))
        self._check_headers()

    def _csv_options(self, fmt: str) -> dict[str, Any]:
        options: dict[str, Any] = {"sep": "\t"} if fmt == "tsv" else {}
        if "dtype" not in self.spec.options:
            options["dtype"] = {self.id_column: str}
        return {**options, **self.spec.options}

    def _fail(self, path: Path, fmt: str, exc: Exception) -> ApgError:
        text = str(exc).strip().splitlines()
        short = (text[0] if text else type(exc).__name__)[:300]
        return self.spec.error(self.ctx, f"cannot read {str(path)!r} as {fmt}: {short}")

    def _header(self, path: Path, fmt: str) -> pd.DataFrame:
        """The file's columns as a whole-file read names them, with no rows."""
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                # Opened as pandas opens it (same errors); no column is read.
                if pq.read_table(str(path), columns=[]).num_rows == 0:
                    return pd.DataFrame()
                return pq.read_schema(path).empty_table().to_pandas()
        except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
            raise self._fail(path, fmt, exc) from None
        # Bounded before pandas parses: one giant line would take minutes (FileSource).
        self.spec.check_header(self.ctx, path)
        try:
            return pd.read_csv(path, nrows=0, **self._csv_options(fmt))
        except Exception as exc:  # pandas raises many types for unreadable files
            raise self._fail(path, fmt, exc) from None

    def _check_headers(self) -> None:
        first: list[str] | None = None
        for path, fmt in self.files:
            header = self._header(path, fmt)
            if len(header.columns) == 0:
                raise self._no_rows(path)
            if first is None:
                first = list(header.columns)
                # Raises what a whole-file read raises for a missing id or feature column.
                self.spec.finish(header, self.ctx)
                self.model.transform(header)
            elif list(header.columns) != first:
                raise self.spec.error(
                    self.ctx,
                    f"{str(path)!r} has columns {list(header.columns)} but the first file "
                    f"has {first}; files matched by one pattern must share columns",
                )

    def _no_rows(self, path: Path) -> ApgError:
        return self.spec.error(
            self.ctx, f"{str(path)!r} has no rows; check the file and its separator"
        )

    def float_casts(self) -> dict[str, str]:
        """Categorical integer Parquet columns with a missing value somewhere: float64."""
        casts: dict[str, str] = {}
        for path, fmt in self.files:
            if fmt == "parquet":
                casts.update(parquet_float_casts(path, self.model.preprocessing.categorical))
        return casts

    def frames(self, batch_rows: int) -> Generator[pd.DataFrame, None, None]:
        for path, fmt in self.files:
            rows = 0
            for frame in self._frames_of(path, fmt, batch_rows):
                rows += len(frame)
                yield frame
            if rows == 0:
                raise self._no_rows(path)

    def _frames_of(
        self, path: Path, fmt: str, batch_rows: int
    ) -> Generator[pd.DataFrame, None, None]:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                # pre_buffer keeps every row group read so far: memory would grow with the file.
                pf = pq.ParquetFile(path, pre_buffer=False)
                for batch in pf.iter_batches(batch_size=batch_rows, columns=self.needed):
                    yield pa.Table.from_batches([batch]).to_pandas()
            except (ApgError, _Restart, GeneratorExit):
                raise
            except Exception as exc:
                raise self._fail(path, fmt, exc) from None
            return
        options = {**self._csv_options(fmt), "usecols": self.needed, "chunksize": batch_rows}
        try:
            with pd.read_csv(path, **options) as chunks:
                while True:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        frame = next(chunks, None)
                    if any(issubclass(w.category, pd.errors.DtypeWarning) for w in caught):
                        raise StreamingUnsupported(
                            f"{str(path)!r} has columns of mixed types; it is read whole"
                        )
                    for w in caught:  # anything else is the caller's to see
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                    if frame is None:
                        return
                    yield frame
        except (ApgError, _Restart, GeneratorExit):
            raise
        except Exception as exc:
            raise self._fail(path, fmt, exc) from None

    def raise_id_error(self) -> None:
        """Raise what a whole-file read raises about the ids; return if the ids are fine."""
        frames = []
        for path, fmt in self.files:
            key = "columns" if fmt == "parquet" else "usecols"
            options = {**self.spec.options, key: [self.id_column]}
            frames.append(read_table(path, fmt, options, key=self.id_column))
        ids = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        self.spec.finish(ids, self.ctx)


def parquet_float_casts(path: Path | str, columns: list[str]) -> dict[str, str]:
    """``{column: "float64"}`` for each integer column of ``columns`` in the Parquet file with
    a missing value somewhere (a whole-file read makes it float; a batch without one does not).
    Extension types (``Int64``, from pandas metadata) keep their type and are left alone."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    plain = pf.schema_arrow.empty_table().to_pandas()  # the types of a read without nulls
    return {
        col: "float64"
        for col in columns
        if col in plain.columns
        and isinstance(plain[col].dtype, np.dtype)
        and plain[col].dtype.kind in "iu"
        and pf.read(columns=[col]).column(col).null_count
    }
