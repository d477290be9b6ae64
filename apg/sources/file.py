"""Files: CSV, TSV, Parquet and JSON lines, one path or a glob of them."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Literal

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

    def describe(self) -> str:
        return f"file {self.path}"

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
            try:
                frame = read_table(path, fmt, self.options, key=self.id or ctx.id_column)
            except (
                pd.errors.EmptyDataError,
                ValueError,
                OSError,
                UnicodeDecodeError,
                pd.errors.ParserError,
                TypeError,
            ) as exc:
                raise self.error(
                    ctx, f"cannot read {str(path)!r} as {fmt}: {_short(exc)}"
                ) from None
            except Exception as exc:  # pyarrow raises its own types for corrupt files
                raise self.error(
                    ctx, f"cannot read {str(path)!r} as {fmt}: {_short(exc)}"
                ) from None
            if frame.empty or len(frame.columns) == 0:
                raise self.error(
                    ctx, f"{str(path)!r} has no rows; check the file and its separator"
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
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _first_magic(pattern: Path) -> int:
    return next(i for i, part in enumerate(pattern.parts) if glob.has_magic(part))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
