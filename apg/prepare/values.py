"""Cell values a column must not hold, and numbers written for people rather than machines.

* Nested values (Parquet struct or list columns, JSON objects) cannot be compared, counted or
  scaled: a column holding them is an error that says to flatten it.
* Infinite numbers and numbers so large that squaring them overflows (scaling sums squares)
  would turn the whole matrix into NaN several stages later: an error naming the column.
* Numbers written with a currency sign, a percent sign or thousands separators (``$36.88``,
  ``12.5%``, ``1,234,567``) are numbers: they are read as such, with a warning saying which
  formatting was removed. A percent stays on its 0-100 scale (``12.5%`` is 12.5), so the
  profile reads in the units the table shows.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from apg.errors import DataError

# Beyond this a value's square overflows float64 in the scaler's variance (1e154² ≈ 1e308);
# 1e100 leaves room for sums over billions of rows. No measured quantity is this large: such a
# value is a sentinel or a corrupt cell.
MAX_MAGNITUDE = 1e100

_CURRENCY = "$€£¥₹₩₽¢"
# A sign, an optional currency sign, then digits with comma-grouped thousands or plain digits,
# optional decimals, then an optional percent sign. European decimal commas ("1,5") do not
# match: a comma must be followed by exactly three digits.
_FORMATTED = re.compile(
    rf"^(?P<sign>[-+]?)\s*(?P<cur>[{_CURRENCY}]?)\s*(?P<sign2>[-+]?)"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)\s*(?P<pct>%?)$"
)


def nested_example(s: pd.Series) -> object | None:
    """The first nested value (dict, list, tuple, array) of an object column, else None."""
    if s.dtype != object:
        return None
    for value in s.dropna().head(1000):
        if isinstance(value, dict | list | tuple | np.ndarray):
            return value
    return None


def check_plain(s: pd.Series, col: str, origin: str) -> None:
    """Raise when ``s`` holds nested values (struct or list cells)."""
    example = nested_example(s)
    if example is not None:
        kind = "structs" if isinstance(example, dict) else "lists"
        shown = repr(example.tolist() if isinstance(example, np.ndarray) else example)
        raise DataError(
            f"{origin}: column {col!r} holds {kind} (e.g. {shown[:60]}), not plain values; "
            "flatten it into one column per field before using it"
        )


def check_finite(s: pd.Series, col: str, origin: str) -> None:
    """Raise when numeric ``s`` holds infinities or values beyond :data:`MAX_MAGNITUDE`."""
    values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (np.abs(values) > MAX_MAGNITUDE)
    if bad.any():
        first = values[bad][0]
        raise DataError(
            f"{origin}: column {col!r} has {int(bad.sum()):,} value(s) that are infinite or "
            f"beyond ±{MAX_MAGNITUDE:g} (e.g. {float(first)!r}), too large to scale; mark them "
            "missing or fix them"
        )


def formatted_numbers(present: pd.Series) -> tuple[pd.Series, list[str]] | None:
    """``present`` (no missing values) read as numbers written with currency signs, percent
    signs or thousands separators, and which of those it had; None unless every value reads."""
    text = present.astype("string").str.strip()
    parts = text.str.extract(_FORMATTED)
    if parts["num"].isna().any():
        return None
    found = [
        name
        for name, hit in (
            ("currency signs", parts["cur"].ne("").any()),
            ("percent signs", parts["pct"].ne("").any()),
            ("thousands separators", parts["num"].str.contains(",", regex=False).any()),
        )
        if hit
    ]
    if not found:
        return None
    negative = parts["sign"].eq("-") ^ parts["sign2"].eq("-")
    numbers = pd.to_numeric(parts["num"].str.replace(",", "", regex=False)).astype(float)
    return numbers.where(~negative, -numbers), found


def as_number(s: pd.Series) -> pd.Series:
    """A column of numbers stored as text, plain or formatted, as numbers (missing stays NA)."""
    text = s.astype("string").str.strip()
    plain = pd.to_numeric(text, errors="coerce")
    present = text.dropna()
    if plain.notna().sum() == len(present):
        return plain
    formatted = formatted_numbers(present)
    if formatted is None:
        return plain
    out = pd.Series(np.nan, index=s.index, dtype=float)
    out[present.index] = formatted[0].to_numpy()
    return out
