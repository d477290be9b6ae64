"""A content fingerprint of the joined user table, so an unchanged refresh can be recognised.

``fingerprint(frame)`` is ``sha256:<hex>`` over a canonical form of the table:

* columns in name order, each tagged with a value kind (number, text, time, duration), so a
  column reorder changes nothing but ``1`` (number) and ``"1"`` (text) differ;
* numbers compared by value: ``int64``, ``Int64``, ``float64`` and ``bool`` holding the same
  values give the same fingerprint (integral values are hashed as exact 64-bit integers, the
  rest as float64; ``-0.0`` equals ``0.0``; every missing value is one "missing");
* text compared as ``str`` (``object``, ``string`` and ``category`` alike); times as UTC
  nanoseconds (any resolution, naive times taken as UTC);
* rows in any order: each column is hashed per row (pandas' ``hash_pandas_object``, a fixed
  key), the column hashes are folded into one 64-bit hash per row, column by column (text a
  block of rows at a time) so that little of the table is encoded at once (a million rows
  stay within a few tens of MB), and the sorted row hashes are fed to sha256 with the shape
  and column tags.

Row hashes are 64-bit, which is plenty to tell tables apart but not a cryptographic commitment
to every cell; and a pandas upgrade that changed ``hash_pandas_object`` would change every
fingerprint once (one extra run, never a wrong "unchanged").
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

_MISSING = "\x00<missing>\x00"


TEXT_BLOCK_ROWS = 65_536


def _is_text(dtype: object) -> bool:
    """Whether :func:`_canonical` encodes this dtype as text."""
    return not (
        ptypes.is_bool_dtype(dtype)
        or (ptypes.is_numeric_dtype(dtype) and not ptypes.is_complex_dtype(dtype))
        or ptypes.is_datetime64_any_dtype(dtype)
        or ptypes.is_timedelta64_dtype(dtype)
    )


def _canonical(column: pd.Series) -> tuple[str, list[pd.Series]]:
    """A value kind and one or more plain numpy-backed series that encode the column."""
    dtype = column.dtype
    missing = column.isna().to_numpy()
    if ptypes.is_bool_dtype(dtype) or (
        ptypes.is_numeric_dtype(dtype) and not ptypes.is_complex_dtype(dtype)
    ):
        values = (
            column.astype("float64").to_numpy(na_value=np.nan)
            if not ptypes.is_integer_dtype(dtype)
            else None
        )
        if values is None:  # an integer dtype: exact, never through float
            ints = column.astype("Int64").to_numpy(dtype="int64", na_value=0)
            return "number", [pd.Series(ints), pd.Series(missing)]
        finite = values[~missing]
        integral = bool(
            np.all(np.isfinite(finite))
            and np.all(np.mod(finite, 1) == 0)
            and np.all(np.abs(finite) < 2**63)
        )
        if integral:
            ints = np.where(missing, 0, values).astype("int64")
            return "number", [pd.Series(ints), pd.Series(missing)]
        floats = np.where(missing, 0.0, values) + 0.0  # + 0.0 turns -0.0 into 0.0
        return "number", [pd.Series(floats.view("int64")), pd.Series(missing)]
    if ptypes.is_datetime64_any_dtype(dtype):
        times = (
            column.dt.tz_convert("UTC").dt.tz_localize(None)
            if getattr(dtype, "tz", None)
            else column
        )
        ns = times.astype("datetime64[ns]").to_numpy().view("int64")
        return "time", [pd.Series(np.where(missing, 0, ns)), pd.Series(missing)]
    if ptypes.is_timedelta64_dtype(dtype):
        ns = column.astype("timedelta64[ns]").to_numpy().view("int64")
        return "duration", [pd.Series(np.where(missing, 0, ns)), pd.Series(missing)]
    text = column.astype(object).where(~missing, _MISSING).map(str)
    return "text", [text.astype(object)]


def fingerprint(frame: pd.DataFrame) -> str:
    """``sha256:<hex>`` of the table's content, independent of row and column order and of
    dtype noise (see the module docstring for the exact canonical form)."""
    columns = sorted(frame.columns, key=str)
    digest = TableFingerprint(len(frame), len(columns))
    for name in columns:
        digest.add(name, frame[name])
    return digest.hexdigest()


class TableFingerprint:
    """:func:`fingerprint` fed one column at a time, for tables never held whole: the
    columns must come in ``sorted(names, key=str)`` order, each with every row."""

    def __init__(self, n_rows: int, n_columns: int) -> None:
        self._digest = hashlib.sha256()
        self._digest.update(f"rows={n_rows};cols={n_columns}\n".encode())
        self._rows = np.zeros(n_rows, dtype=np.uint64)
        self._columns = n_columns
        self._last: str | None = None
        self._seen = 0

    def add(self, name: object, column: pd.Series) -> None:
        if len(column) != len(self._rows):
            raise ValueError(f"column {name!r} has {len(column)} rows, not {len(self._rows)}")
        if self._last is not None and str(name) < self._last:
            raise ValueError(f"column {name!r} comes after {self._last!r}; add them sorted")
        self._last, self._seen = str(name), self._seen + 1
        column = column.reset_index(drop=True)
        # Text is encoded a block of rows at a time: as Python strings a million-row column
        # takes ~60 MB, and hashing copies it twice more. A row's hash is its own, so blocks
        # give the same hashes.
        step = TEXT_BLOCK_ROWS if _is_text(column.dtype) else max(len(column), 1)
        kind = ""
        for start in range(0, max(len(column), 1), step):
            kind, series = _canonical(column.iloc[start : start + step])
            block = self._rows[start : start + step]
            for s in series:
                # FNV-style fold: order-dependent across columns (they are sorted), wraps
                # mod 2**64.
                block *= _FOLD
                block ^= pd.util.hash_pandas_object(s, index=False).to_numpy(dtype=np.uint64)
        self._digest.update(f"{name}\x1f{kind}\n".encode())

    def hexdigest(self) -> str:
        if self._seen != self._columns:
            raise ValueError(f"{self._seen} of {self._columns} columns were added")
        if self._columns and len(self._rows):
            self._digest.update(np.sort(self._rows).tobytes())
        return f"sha256:{self._digest.hexdigest()}"


_FOLD = np.uint64(0x100000001B3)
