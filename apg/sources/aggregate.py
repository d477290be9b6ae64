"""Vectorised per-user aggregations of an event log (one groupby per feature, no user loops).

Users are factorised once into integer codes ``0..n-1``; every aggregation is a ``bincount``
or a pandas groupby on those codes, re-indexed to all ``n`` users so that a user with no
matching event (under a feature's ``where``) gets the empty value of that aggregation:
0 for ``count``, ``count_distinct``, ``sum`` and ``active_days``, missing for the rest.

Times are nanoseconds since the epoch (naive, UTC for tz-aware logs); ``recency`` and
``tenure`` are ``(as_of - last event) / 1 day`` and ``(as_of - first event) / 1 day`` as floats
(36 hours is 1.5); ``active_days`` counts distinct calendar dates with an event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apg.sources.expressions import condition_mask

DAY_NS = 86_400 * 10**9

# Aggregations that take a column; `count` takes a column or `true`; the rest take `true`.
COLUMN_OPS = ("count_distinct", "sum", "mean", "median", "min", "max", "mode", "first", "last")
FLAG_OPS = ("recency", "tenure", "active_days")
OPS = ("count", *COLUMN_OPS, *FLAG_OPS)
NUMERIC_OPS = ("sum", "mean", "median")
TIME_OPS = ("first", "last", "recency", "tenure", "active_days")


@dataclass(frozen=True)
class Events:
    """An event log prepared for aggregation."""

    frame: pd.DataFrame
    codes: np.ndarray  # user code per event, 0..n_users-1
    users: pd.Index  # user id per code, sorted
    times: np.ndarray | None  # int64 ns per event, or None when the log has no time column
    as_of: int | None  # int64 ns

    @classmethod
    def build(
        cls, frame: pd.DataFrame, user: str, times: pd.Series | None, as_of: pd.Timestamp | None
    ) -> Events:
        codes, users = pd.factorize(frame[user], sort=True)
        ns = None if times is None else times.astype("datetime64[ns]").to_numpy().view("int64")
        stamp = None if as_of is None else int(as_of.as_unit("ns").value)
        return cls(frame, codes, pd.Index(users), ns, stamp)

    @property
    def n(self) -> int:
        return len(self.users)


def _bincount(codes: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(codes, minlength=n).astype("int64")


def _grouped(values: pd.Series, codes: np.ndarray, n: int, how: str) -> pd.Series:
    out = values.groupby(codes, sort=False).agg(how)
    return out.reindex(range(n))


def _count(ev: Events, mask: np.ndarray, column: str | None) -> pd.Series:
    codes = ev.codes[mask]
    if column is not None:
        codes = codes[ev.frame[column].notna().to_numpy()[mask]]
    return pd.Series(_bincount(codes, ev.n))


def _count_distinct(ev: Events, mask: np.ndarray, column: str) -> pd.Series:
    pairs = pd.DataFrame({"c": ev.codes[mask], "v": ev.frame[column].to_numpy()[mask]})
    pairs = pairs.dropna().drop_duplicates()
    return pd.Series(_bincount(pairs["c"].to_numpy(), ev.n))


def _reduce(how: str) -> Callable[[Events, np.ndarray, str], pd.Series]:
    def run(ev: Events, mask: np.ndarray, column: str) -> pd.Series:
        values = ev.frame[column][mask].reset_index(drop=True)
        if values.dtype == bool:
            values = values.astype("int64")  # True counts as 1 in sums and means
        out = _grouped(values, ev.codes[mask], ev.n, how)
        return out.fillna(0) if how == "sum" else out

    return run


def _mode(ev: Events, mask: np.ndarray, column: str) -> pd.Series:
    """The most frequent non-missing value; ties go to the smallest value (deterministic)."""
    values = ev.frame[column][mask].reset_index(drop=True)
    pairs = pd.DataFrame({"c": ev.codes[mask], "v": values}).dropna()
    sizes = pairs.groupby(["c", "v"], sort=False, observed=True).size().rename("k").reset_index()
    best = sizes.sort_values(["c", "k", "v"], ascending=[True, False, True], kind="stable")
    return best.drop_duplicates("c").set_index("c")["v"].reindex(range(ev.n))


def _ordered(ev: Events, mask: np.ndarray) -> np.ndarray:
    """Positions of the masked events sorted by user, then time (ties keep log order)."""
    assert ev.times is not None
    order = np.lexsort((ev.times, ev.codes))
    return order[mask[order]]


def _first_last(which: str) -> Callable[[Events, np.ndarray, str], pd.Series]:
    def run(ev: Events, mask: np.ndarray, column: str) -> pd.Series:
        order = _ordered(ev, mask)
        values = ev.frame[column].iloc[order].reset_index(drop=True)
        return _grouped(values, ev.codes[order], ev.n, which)

    return run


def _days_since(which: str) -> Callable[[Events, np.ndarray, str | None], pd.Series]:
    def run(ev: Events, mask: np.ndarray, column: str | None) -> pd.Series:
        assert ev.times is not None and ev.as_of is not None
        times = pd.Series(ev.times[mask])
        edge = _grouped(times, ev.codes[mask], ev.n, which)
        return (ev.as_of - edge) / DAY_NS

    return run


def _active_days(ev: Events, mask: np.ndarray, column: str | None) -> pd.Series:
    assert ev.times is not None
    pairs = pd.DataFrame({"c": ev.codes[mask], "d": ev.times[mask] // DAY_NS}).drop_duplicates()
    return pd.Series(_bincount(pairs["c"].to_numpy(), ev.n))


_RUN: dict[str, Callable[[Events, np.ndarray, str], pd.Series]] = {
    "count_distinct": _count_distinct,
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "median": _reduce("median"),
    "min": _reduce("min"),
    "max": _reduce("max"),
    "mode": _mode,
    "first": _first_last("first"),
    "last": _first_last("last"),
}


def aggregate_one(ev: Events, op: str, column: str | None, where: str | None) -> pd.Series:
    """One feature: a series indexed ``0..n-1`` aligned with ``ev.users``."""
    mask = (
        condition_mask(where, ev.frame).to_numpy() if where else np.ones(len(ev.frame), dtype=bool)
    )
    if op == "count":
        return _count(ev, mask, column)
    if op == "recency":
        return _days_since("max")(ev, mask, None)
    if op == "tenure":
        return _days_since("min")(ev, mask, None)
    if op == "active_days":
        return _active_days(ev, mask, None)
    assert column is not None
    return _RUN[op](ev, mask, column)
