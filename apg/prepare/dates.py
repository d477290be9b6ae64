"""Dates among the clustering columns: found, read, and clustered as days before a reference.

A date is never one-hot encoded (each distinct day would become a column). A clustering
column is a date when it is datetime-typed, when ``preprocessing.date_formats`` names its
format, or when it is text and at least :data:`DATE_SHARE` (95%) of its non-missing values
read as dates in one of :data:`FORMATS`. It is then clustered as a number: **days before the
reference date** (``preprocessing.reference_date``, else the newest date in that column), so
larger means older (longer tenure, longer ago). Values that do not read as dates become
missing and are imputed like any missing value; the warning says how many.

Reading rules, chosen to be predictable rather than clever:

* ISO 8601 (``2012-09-04``, with or without a time or a UTC offset) is tried first. Zone-aware
  values are converted to UTC and compared without a zone.
* Numeric day and month (``04-09-2012``, ``4/9/2012``, ``04.09.2012``) are ambiguous. The
  order that reads more values wins (a value such as ``25-12-2012`` reads only day first). When
  both read every value (no day above 12 anywhere), **day first** is chosen: most of the world
  writes dates so, and a month-first table of any size almost surely has a day above 12. The
  warning says the order was a guess; ``preprocessing.date_formats`` settles it.
* Two-digit years (``04-09-12``) are not detected (the century would be a guess); name the
  format in ``date_formats`` to use them.
* Numbers, and text without a separator between digits (``2012``, ``20120904``), are never
  read as dates unless ``date_formats`` names the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Share of a text column's non-missing values that must read as dates in one format.
DATE_SHARE = 0.95
# Formats are first tried on this many distinct values; those reading fewer than half are
# dropped before the whole column is read.
PROBE_VALUES = 1000

ISO = "ISO8601"  # pandas' ISO 8601 reader: dates, times, fractions, offsets


def _numeric_formats() -> list[str]:
    formats = ["%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S"]
    for sep in ("-", "/", "."):
        for order in (f"%d{sep}%m{sep}%Y", f"%m{sep}%d{sep}%Y"):  # day first wins a tie
            formats += [order, f"{order} %H:%M", f"{order} %H:%M:%S"]
    return formats


FORMATS: tuple[str, ...] = (
    ISO,
    *_numeric_formats(),
    "%d %b %Y",
    "%d %B %Y",
    "%d-%b-%Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%b %d %Y",
)


def _swapped(fmt: str) -> str:
    """The other day/month order of a numeric format (itself when there is none)."""
    if "%d" in fmt and "%m" in fmt and "%Y" in fmt and not fmt.startswith("%Y"):
        return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
    return fmt


def read_dates(values: pd.Series, fmt: str | None = None) -> pd.Series:
    """Timestamps of ``values`` (no zone, in UTC for zone-aware values, microseconds): typed
    datetimes as they are, text in ``fmt`` (ISO 8601 when None). NaT where missing or not a
    date in that format. Distinct texts are read once each."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.Series(values, copy=False)
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        return stamps.dt.as_unit("us")
    text = values.astype("string").str.strip()
    codes, uniques = pd.factorize(text)  # missing: code -1
    parsed = pd.to_datetime(
        pd.Series(uniques, dtype="string"), format=fmt or ISO, errors="coerce", utc=True
    )
    stamps = parsed.dt.tz_localize(None).dt.as_unit("us").to_numpy()
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[us]")
    known = codes >= 0
    out[known] = stamps[codes[known]]
    return pd.Series(out, index=values.index, name=values.name)


def _stamp(ts: pd.Timestamp) -> str:
    """A reference date as written in messages and JSON: the day, or the instant."""
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


@dataclass(frozen=True)
class DateRule:
    """How one clustering column's dates become numbers: read text in ``format`` (a strptime
    format or ``ISO8601``; None for a datetime-typed column, whose dates given as text are read
    as ISO 8601) and count days before ``reference``."""

    format: str | None
    reference: pd.Timestamp
    configured: bool = False  # the reference is preprocessing.reference_date

    def days(self, values: pd.Series) -> pd.Series:
        """Days before the reference (fractional with times; negative after it), float64;
        NaN where a value is missing or not a date. Numbers are read as their text
        (20120904 in format %Y%m%d)."""
        stamps = read_dates(values, self.format)
        reference = pd.Timestamp(self.reference).as_unit("us")
        return ((reference - stamps) / pd.Timedelta(days=1)).astype("float64")

    def to_dict(self) -> dict[str, str | None]:
        return {"format": self.format, "reference": self.reference.isoformat()}

    @classmethod
    def from_dict(cls, doc: dict[str, str | None]) -> DateRule:
        return cls(format=doc["format"], reference=pd.Timestamp(str(doc["reference"])))

    def describe(self, column: str) -> dict[str, object]:
        """For personas.json: what the column's numbers mean."""
        return {
            "column": column,
            "unit": "days before the reference date",
            "reference_date": _stamp(self.reference),
            "reference": "preprocessing.reference_date" if self.configured else "newest date",
            "format": self.format or "typed dates",
        }


@dataclass(frozen=True)
class Found:
    """A column read as dates: the format, how sure, and what did not read."""

    format: str | None
    stamps: pd.Series  # the column's timestamps (NaT: missing or unreadable)
    unread: int  # non-missing values that are not dates in this format
    example: str | None  # one of them
    ambiguous: bool  # the other day/month order reads as many values


def _share(parsed_ok: np.ndarray, counts: np.ndarray) -> float:
    return float(counts[parsed_ok].sum() / counts.sum()) if counts.sum() else 0.0


def find_dates(values: pd.Series, fmt: str | None = None) -> Found | None:
    """``values`` read as dates when they are dates (see the module rules), else None.
    With ``fmt`` the column is read in that format whatever it holds."""
    if pd.api.types.is_datetime64_any_dtype(values):  # typed: no format to read
        return Found(None, read_dates(values), 0, None, False)
    numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    if fmt is None and numeric:
        return None
    present = values.dropna()
    text = present.astype("string").str.strip()
    counts = text.value_counts(sort=False)
    uniques = pd.Series(counts.index, dtype="string")
    weights = counts.to_numpy()
    if fmt is None:
        if uniques.empty or not uniques.str.contains(r"\d", regex=True).any():
            return None
        fmt, ambiguous = _best_format(uniques, weights)
        if fmt is None:
            return None
    else:
        ambiguous = False
    stamps = read_dates(values, fmt)
    unread_mask = stamps.isna().to_numpy() & values.notna().to_numpy()
    unread = int(unread_mask.sum())
    example = str(values[unread_mask].iloc[0]) if unread else None
    return Found(fmt, stamps, unread, example, ambiguous)


def _best_format(uniques: pd.Series, weights: np.ndarray) -> tuple[str | None, bool]:
    """The format reading the largest share of rows (at least DATE_SHARE), first in FORMATS
    on a tie; and whether the other day/month order read as many. A value without a separator
    between digits (``2012``, ``20120904``) never counts as read: a year or a number is not
    taken for a date unless ``date_formats`` says so."""
    separated = uniques.str.contains(r"\d\D+\d", regex=True).fillna(False).to_numpy(bool)

    def reads(fmt: str, texts: pd.Series) -> np.ndarray:
        parsed = pd.to_datetime(texts, format=fmt, errors="coerce", utc=True).notna()
        return parsed.to_numpy() & separated[: len(texts)]

    probe, probe_weights = uniques.iloc[:PROBE_VALUES], weights[:PROBE_VALUES]
    shares: dict[str, float] = {}
    for fmt in FORMATS:
        share = _share(reads(fmt, probe), probe_weights)
        if share >= 0.5:
            whole = len(uniques) > PROBE_VALUES
            shares[fmt] = _share(reads(fmt, uniques), weights) if whole else share
    if not shares:
        return None, False
    best = max(shares.values())
    if best < DATE_SHARE:
        return None, False
    chosen = next(f for f in FORMATS if shares.get(f) == best)
    other = _swapped(chosen)
    return chosen, other != chosen and shares.get(other) == best


def rule_for(found: Found, reference: object | None) -> DateRule:
    """The rule of a found date column: the configured reference, else its newest date."""
    if reference is not None:
        return DateRule(found.format, pd.Timestamp(reference), configured=True)
    return DateRule(found.format, pd.Timestamp(found.stamps.max()))


def date_news(found: Found, rule: DateRule) -> str:
    """The warning's text after the column name: how it was read, the reference, what did
    not read."""
    if found.format is None:
        how = "as typed dates"
    elif found.format == ISO:
        how = "as ISO 8601"
    else:
        how = f"as {found.format}"
        if found.ambiguous:
            how += (
                " (day first: every value also reads month first; set "
                "preprocessing.date_formats to change)"
            )
    source = "preprocessing.reference_date" if rule.configured else "the newest date in it"
    text = f"holds dates, read {how}; clustered as days before {_stamp(rule.reference)} ({source})"
    if found.unread:
        text += (
            f"; {found.unread} value(s) that are not dates in this format, e.g. "
            f"{found.example!r}, count as missing"
        )
    return text


def looks_like_dates(present: pd.Series) -> bool:
    """Most distinct values look like numeric dates (digits around - / . or :), for a hint."""
    uniques = pd.Series(present.astype("string").unique()[:PROBE_VALUES], dtype="string")
    return bool(uniques.str.contains(r"\d[-/.:]\d", regex=True).mean() >= 0.5)
