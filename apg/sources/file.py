"""Files: CSV, TSV, Parquet and JSON lines, one path or a glob of them.

Text tables can have their separator detected (:func:`detect_separator`, used by ``apg run
--data`` without ``--sep``); a text file that reads as a single column whose header holds
another separator is an error that names the likely one. A file without an id column can number
its rows into one (``row_id:``, used by ``apg run --data`` without ``--id``).
"""

from __future__ import annotations

import csv
import glob
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field

from apg.sources.base import SourceContext, SourceSpec

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def format_of(path: Path) -> str | None:
    return _FORMATS.get(path.suffix.lower())


# The separators detection tells apart, in the order that breaks a tie.
SEPARATORS = (",", ";", "\t", "|")
# How much of a file detection reads: a few hundred lines of a typical user table.
SNIFF_BYTES = 64 * 1024


def default_separator(fmt: str) -> str:
    """What pandas splits a text format on when no ``sep`` is given."""
    return "\t" if fmt == "tsv" else ","


@dataclass(frozen=True)
class Separator:
    """A text file's field separator and how it was found."""

    sep: str
    # False: no candidate splits every line into the same number of fields; ``sep`` is the
    # format's default.
    detected: bool
    fields: int = 0  # fields on every line with ``sep`` (when detected)


def detect_separator(path: Path, default: str = ",") -> Separator:
    """The separator among ``, ; tab |`` that splits every line of the file's first 64 KiB
    into the same number (at least 2) of fields, reading quoted fields as CSV does (a quoted
    ``"Smith; John"`` is one field whatever the separator).

    When several do, the one that leaves the fewest quote characters in the fields wins
    (splitting on the wrong one breaks quoted fields open, ``"Smith`` and `` John"``), then
    the one giving the most fields, then ``default``, then the order above. When none does
    (ragged lines, a single column, an unreadable file) the answer is ``default``, not
    detected. Counting fields per line is predictable where ``csv.Sniffer`` is not (it guesses
    from character frequencies, can pick a letter, and raises on short samples), and equal
    fields on every line is what makes pandas read the table right.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES + 1)
    except (OSError, ValueError):
        return Separator(default, False)
    truncated = len(head) > SNIFF_BYTES
    text = head[:SNIFF_BYTES].decode("utf-8-sig", errors="replace")
    fits = {}
    for rank, sep in enumerate(SEPARATORS):
        split = _even_fields(text, sep, truncated)
        if split is not None:
            fields, quotes = split
            fits[sep] = (quotes, -fields, sep != default, rank)
    if not fits:
        return Separator(default, False)
    best = min(fits, key=fits.__getitem__)
    return Separator(best, True, -fits[best][1])


def _even_fields(text: str, sep: str, truncated: bool) -> tuple[int, int] | None:
    """(fields per line, quote characters left in the fields) when every non-blank line
    splits into the same number, at least 2, of fields; else None."""
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"'):
            if row:
                rows.append(row)
    except csv.Error:  # a NUL byte, or the sample ends inside a quoted field
        if not truncated:
            return None
    if truncated and len(rows) > 1:
        rows.pop()  # the sample may end mid-line
    counts = {len(row) for row in rows}
    if len(counts) != 1 or (fields := counts.pop()) < 2:
        return None
    return fields, sum(field.count('"') for row in rows for field in row)


def read_table(
    path: Path, fmt: str, options: dict[str, Any], key: str | None = None
) -> pd.DataFrame:
    """Read one file with pandas; ``options`` go to the pandas reader unchanged.

    In text formats the id column ``key`` is read as text, so ids such as ``0001`` keep
    their leading zeros and ``001`` and ``1`` stay two users (unless options set dtype).
    """
    if fmt in ("csv", "tsv"):
        defaults: dict[str, Any] = {"sep": "\t"} if fmt == "tsv" else {}
        if key and "dtype" not in options:
            defaults["dtype"] = {key: str}
        return pd.read_csv(path, **{**defaults, **options})
    if fmt == "parquet":
        if set(options) <= {"columns", "filters"}:
            # Same frame as pd.read_parquet, but the Arrow buffers are freed while converting:
            # a million-row table peaks at about 1x its size instead of 2x.
            table = pq.read_table(path, **options)
            return table.to_pandas(self_destruct=True, split_blocks=True)
        return pd.read_parquet(path, **options)
    return pd.read_json(path, lines=True, **options)


class FileSource(SourceSpec):
    kind: Literal["file"] = "file"
    path: str
    format: Literal["csv", "tsv", "parquet", "jsonl"] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # Number the rows 1, 2, ... (file order; a glob's files in path order) into this new
    # column: an id for a table that has none. Continuity across runs then rests on row order.
    row_id: str | None = None
    # Bounds on what a text file may look like before pandas parses it: a file of one giant
    # line, or a header of hundreds of thousands of fields, is not a user table, and parsing it
    # took minutes and gigabytes.
    max_columns: int = Field(10_000, ge=2)
    max_line_bytes: int = Field(1 << 20, ge=1024)

    def describe(self) -> str:
        return f"file {self.path}"

    def check_header(self, ctx: SourceContext, path: Path) -> None:
        """Raise unless the first line of text file ``path`` fits ``max_line_bytes`` and
        splits into at most ``max_columns`` fields."""
        with path.open("rb") as handle:
            head = handle.readline(self.max_line_bytes + 1)
        if len(head) > self.max_line_bytes and not head.endswith(b"\n"):
            raise self.error(
                ctx,
                f"the first line of {str(path)!r} is longer than {self.max_line_bytes:,} bytes "
                "(max_line_bytes): not a table with a header line; check the file, or raise "
                "max_line_bytes",
            )
        sep = self._used_separator(format_of(path) or "csv")
        if not isinstance(sep, str) or len(sep) != 1:
            return
        line = head.decode("utf-8", errors="replace").rstrip("\r\n")
        fields = len(next(csv.reader([line], delimiter=sep), []))
        if fields > self.max_columns:
            raise self.error(
                ctx,
                f"{str(path)!r} has {fields:,} columns in its header, more than max_columns "
                f"({self.max_columns:,}); check the separator, or raise max_columns",
            )

    def _pattern(self, ctx: SourceContext) -> Path:
        pattern = Path(self.path).expanduser()
        return pattern if pattern.is_absolute() else ctx.base_dir / pattern

    def local_paths(self, ctx: SourceContext) -> list[Path]:
        pattern = self._pattern(ctx)
        if not glob.has_magic(str(pattern)):
            return [pattern]
        # The folder the glob lists, and what it matches now (a match may sit deeper).
        static = Path(*[p for p in pattern.parts[: _first_magic(pattern)]])
        return [static, *(Path(p) for p in glob.glob(str(pattern)))]

    def paths(self, ctx: SourceContext) -> list[Path]:
        pattern = self._pattern(ctx)
        if glob.has_magic(str(pattern)):
            found = sorted(Path(p) for p in glob.glob(str(pattern)))
            if not found:
                raise self.error(ctx, f"no file matches {str(pattern)!r}; check the path pattern")
            return found
        if not pattern.exists():
            raise self.error(ctx, f"file {str(pattern)!r} does not exist; check the path")
        if not pattern.is_file():
            raise self.error(ctx, f"{str(pattern)!r} is not a file")
        return [pattern]

    def read(self, ctx: SourceContext) -> pd.DataFrame:
        frames = []
        for path in self.paths(ctx):
            fmt = self.format or format_of(path)
            if fmt is None:
                raise self.error(
                    ctx,
                    f"cannot tell the format of {str(path)!r} from its extension; use .csv, "
                    ".tsv, .parquet or .jsonl, or set `format:`",
                )
            key = self.id or ctx.id_column
            if fmt in ("csv", "tsv"):
                self.check_header(ctx, path)
            try:
                frame = read_table(path, fmt, self.options, key=None if key == self.row_id else key)
            except (
                pd.errors.EmptyDataError,
                ValueError,
                OSError,
                UnicodeDecodeError,
                pd.errors.ParserError,
                TypeError,
            ) as exc:
                message = f"cannot read {str(path)!r} as {fmt}: {_short(exc)}"
                likely = None
                if isinstance(exc, pd.errors.ParserError) and fmt in ("csv", "tsv"):
                    likely = self._likely_separator(path, fmt)
                if likely is not None:
                    message += f"; its lines split evenly on {likely!r}: {_sep_fix(likely)}"
                raise self.error(ctx, message) from None
            except Exception as exc:  # pyarrow raises its own types for corrupt files
                raise self.error(
                    ctx, f"cannot read {str(path)!r} as {fmt}: {_short(exc)}"
                ) from None
            if frame.empty or len(frame.columns) == 0:
                raise self.error(
                    ctx, f"{str(path)!r} has no rows; check the file and its separator"
                )
            if fmt in ("csv", "tsv") and len(frame.columns) == 1:
                header = str(frame.columns[0])
                likely = self._likely_separator(path, fmt, header)
                if likely is not None:
                    shown = header if len(header) <= 60 else header[:57] + "..."
                    raise self.error(
                        ctx,
                        f"{str(path)!r} reads as a single column ({shown!r}) when split on "
                        f"{self._used_separator(fmt)!r}, but its header contains {likely!r}: "
                        + _sep_fix(likely),
                    )
            frames.append(frame)
        if len(frames) > 1:
            first = list(frames[0].columns)
            for path, frame in zip(self.paths(ctx)[1:], frames[1:], strict=True):
                if list(frame.columns) != first:
                    raise self.error(
                        ctx,
                        f"{str(path)!r} has columns {list(frame.columns)} but the first file "
                        f"has {first}; files matched by one pattern must share columns",
                    )
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if self.row_id is not None:
            frame = self._numbered(ctx, frame, self.row_id)
        return frame

    def _used_separator(self, fmt: str) -> object:
        return self.options.get("sep", self.options.get("delimiter", default_separator(fmt)))

    def _likely_separator(self, path: Path, fmt: str, header: str | None = None) -> str | None:
        """The separator a text file read with the wrong one likely has, or None. With the
        ``header`` of a file read as one column: one of those the header contains."""
        used = self._used_separator(fmt)
        if not isinstance(used, str):
            return None
        if header is None:
            found = detect_separator(path, default=used)
            return found.sep if found.detected and found.sep != used else None
        others = [s for s in SEPARATORS if s in header and s != used]
        if not others:
            return None
        found = detect_separator(path, default=used)
        if found.detected and found.sep in others:
            return found.sep
        return max(others, key=header.count)

    def _numbered(self, ctx: SourceContext, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        if column in frame.columns:
            raise self.error(
                ctx,
                f"the table already has a column {column!r}, so rows cannot be numbered into "
                f"it; if it identifies the users, make it the id (apg run --id {column}), else "
                "give `row_id:` another name",
            )
        frame.insert(0, column, np.arange(1, len(frame) + 1, dtype=np.int64))
        return frame


def _sep_fix(sep: str) -> str:
    return (
        f"pass --sep {sep!r} (apg run --data, apg assign) or set this source's "
        f"`options: {{sep: {json.dumps(sep)}}}`"
    )


def _first_magic(pattern: Path) -> int:
    return next(i for i, part in enumerate(pattern.parts) if glob.has_magic(part))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
