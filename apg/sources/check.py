"""``apg sources check``: read every source, join them, describe the result; no clustering.

The command people run while wiring a new source: it shows what each source delivered, the
joined table's columns with their types and missing shares, and the fingerprint a scheduled
refresh would compare against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from apg.sources.base import SourceSpec
from apg.sources.combine import SourceTable, load_sources


def check_sources(sources: Sequence[SourceSpec], base_dir: Path, id_column: str) -> str:
    """Read the sources and return the text report (raises SourceError on failure)."""
    table = load_sources(list(sources), base_dir, id_column)
    return describe_table(table, id_column, [s.join for s in sources])


def describe_table(table: SourceTable, id_column: str, joins: list[str] | None = None) -> str:
    """The report text for an already loaded table."""
    frame = table.frame
    lines = ["sources:"]
    width = max((len(label) for label in table.labels), default=0)
    for i, (label, rows, cols) in enumerate(
        zip(table.labels, table.rows_per_source, table.columns_per_source, strict=True)
    ):
        how = "" if i == 0 or joins is None else f", joined {joins[i]}"
        lines.append(f"  {label:<{width}}  {rows} rows, {len(cols)} columns{how}")
    lines.append(
        f"joined table: {len(frame)} rows x {len(frame.columns)} columns (id column {id_column!r})"
    )
    origin = {
        c: label
        for label, cols in zip(table.labels, table.columns_per_source, strict=True)
        for c in cols
    }
    rows = [("column", "type", "missing", "source")]
    for name in frame.columns:
        column = frame[name]
        share = float(column.isna().mean()) if len(frame) else 0.0
        rows.append(
            (
                str(name),
                _type_name(column),
                f"{share:.1%}",
                "(id)" if name == id_column else origin.get(str(name), ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append(
            f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
        )
    lines.append(f"fingerprint: {table.fingerprint}")
    return "\n".join(lines) + "\n"


def _type_name(column: pd.Series) -> str:
    """A short, stable type name: int64, float64, bool, str, datetime, category, ..."""
    dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return "str"
    return str(dtype)
