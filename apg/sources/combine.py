"""Read every configured source and join them into one user table keyed by the id column.

The first source sets the users (``join: left``, the default, keeps them all); each later
source joins the table built so far on the id, ``left`` or ``inner``. A column provided by two
sources is an error naming both (fix it with ``rename:``), never a silent ``_x``/``_y`` pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd
from pandas.api import types as ptypes

from apg.errors import SourceError, listing
from apg.sources.base import SourceContext
from apg.sources.fingerprint import fingerprint


class _Spec(Protocol):
    kind: str
    join: str

    def read(self, ctx: SourceContext) -> pd.DataFrame: ...
    def finish(self, frame: pd.DataFrame, ctx: SourceContext) -> pd.DataFrame: ...
    def label(self, ctx: SourceContext) -> str: ...
    def error(self, ctx: SourceContext, message: str) -> SourceError: ...


@dataclass
class SourceTable:
    """The joined user table and what each source contributed."""

    frame: pd.DataFrame
    rows_per_source: list[int] = field(default_factory=list)
    # How messages and reports name each source, e.g. "source #2 (sql)".
    labels: list[str] = field(default_factory=list)
    # The columns each source added (its key excluded), in the order they appear.
    columns_per_source: list[list[str]] = field(default_factory=list)
    # sha256 of the joined table's content (see apg.sources.fingerprint); computed if not given.
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.frame)


def load_sources(specs: list[_Spec], base_dir: Path, id_column: str) -> SourceTable:
    """Read, finish and join every source; raises :class:`SourceError` naming the source."""
    if not specs:
        raise SourceError("no sources configured; add at least one entry under `sources:`")
    table: pd.DataFrame | None = None
    owner: dict[str, str] = {}
    rows: list[int] = []
    labels: list[str] = []
    added: list[list[str]] = []
    for position, spec in enumerate(specs, start=1):
        ctx = SourceContext(base_dir=base_dir, id_column=id_column, position=position)
        label = spec.label(ctx)
        frame = spec.finish(spec.read(ctx), ctx)
        rows.append(len(frame))
        labels.append(label)
        columns = [str(c) for c in frame.columns if c != id_column]
        added.append(columns)
        if table is None:
            table = frame
        else:
            clash = [c for c in columns if c in owner]
            if clash:
                first = owner[clash[0]]
                raise spec.error(
                    ctx,
                    f"column(s) {listing(clash)} also come from {first}; give one of the two "
                    f"sources `rename: {{{clash[0]}: {clash[0]}_2}}` or drop the column",
                )
            table, frame = _align_ids(table, frame, id_column, spec, ctx, labels[0])
            table = table.merge(frame, on=id_column, how=spec.join, validate="one_to_one")
            if table.empty:
                raise spec.error(
                    ctx,
                    f"joining on {id_column!r} left no users: no id of this source matches the "
                    f"sources before it (e.g. {listing(frame[id_column].head(3))}); check the ids",
                )
        owner.update(dict.fromkeys(columns, label))
    assert table is not None
    return SourceTable(
        frame=table.reset_index(drop=True),
        rows_per_source=rows,
        labels=labels,
        columns_per_source=added,
    )


def _align_ids(
    table: pd.DataFrame,
    frame: pd.DataFrame,
    id_column: str,
    spec: _Spec,
    ctx: SourceContext,
    first: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Make the two sides' ids comparable: numbers written as text on one side (``"42"`` from
    JSON or a text column) are read as numbers when all of them are numbers."""
    left, right = table[id_column], frame[id_column]
    if ptypes.is_numeric_dtype(left.dtype) == ptypes.is_numeric_dtype(right.dtype):
        return table, frame
    text_side = right if ptypes.is_numeric_dtype(left.dtype) else left
    as_numbers = pd.to_numeric(text_side, errors="coerce")
    if as_numbers.notna().all():
        if text_side is right:
            return table, frame.assign(**{id_column: as_numbers})
        return table.assign(**{id_column: as_numbers}), frame
    raise spec.error(
        ctx,
        f"its ids in {id_column!r} are {right.dtype} (e.g. {listing(right.head(3))}) but "
        f"{first} has {left.dtype} ids (e.g. {listing(left.head(3))}); make them the same type "
        "(for a file, `options: {dtype: {" + id_column + ": str}}` reads ids as text)",
    )
