"""Column roles: check the user table against the config and split it by role.

Behavioral and attitudinal columns are clustered; demographic columns only describe clusters
afterwards; the id is never a feature. Type problems are reported, never coerced silently.

A clustering column is read as one of: numbers; numbers stored as text (used as numbers, with a
warning); dates (typed, named in ``preprocessing.date_formats``, or text that reads as dates:
clustered as days before a reference date, with a warning; rules in :mod:`apg.prepare.dates`);
text categories (at most ``preprocessing.max_categories`` distinct values, else an error). A
clustering column with exactly two distinct values (as numbers, days or text) is also listed in
``FeatureFrame.binary``: its values are kept √2 apart (:mod:`apg.prepare.encoding`).

A table larger than memory is checked one column at a time (:func:`select_features_by_column`);
its frame reads columns on demand (:class:`LazyRaw`) and classifies them as the in-memory path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import pandas as pd

from apg.config import FeaturesConfig, PreprocessingConfig
from apg.errors import DataError, listing
from apg.prepare.dates import DateRule, date_news, find_dates, looks_like_dates, rule_for
from apg.prepare.values import as_number, check_finite, check_plain, formatted_numbers

MIN_ROWS = 10


class Columns(Protocol):
    """A table read one column at a time: a whole column of every row fits in memory, the
    whole table need not."""

    @property
    def names(self) -> list[str]: ...

    @property
    def num_rows(self) -> int: ...

    def column(self, name: str) -> pd.Series:
        """Every row of one column, RangeIndex, with the dtype a whole-table read gives it."""
        ...

    def rows(self, indices: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The rows at positions ``indices``, in that order, of ``columns``; RangeIndex."""
        ...


class LazyRaw:
    """``FeatureFrame.raw`` of a table read column by column. Every access reads the column
    again (a whole column is never kept), converts numbers stored as text and dates (to days,
    by ``dates``) as :func:`select_features` does and applies the row mask ``keep``."""

    def __init__(
        self,
        source: Columns,
        dtypes: dict[str, Any],
        converted: Collection[str] = (),
        keep: np.ndarray | None = None,
        dates: dict[str, DateRule] | None = None,
    ) -> None:
        self._source = source
        # The dtype of each whole column, in raw's order. A batch of rows can read as another
        # (ints without a gap, numbers in text parsed to Int64 rather than Float64), and a
        # batch's dtype decides its transform, so rows are given the whole column's.
        self._dtypes = dtypes
        self._converted = frozenset(converted)
        self._dates = dict(dates or {})
        self._keep = keep
        self._len = source.num_rows if keep is None else int(np.count_nonzero(keep))

    @property
    def columns(self) -> list[str]:
        return list(self._dtypes)

    def __contains__(self, col: object) -> bool:
        return col in self._dtypes

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, col: str) -> pd.Series:
        if col not in self._dtypes:
            raise KeyError(col)
        values = self._as_raw(col, self._source.column(col))
        if self._keep is not None:
            values = values[self._keep].reset_index(drop=True)
        return values

    def rows(self, indices: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The rows at ``indices`` (positions after the mask), in that order, of ``columns``;
        RangeIndex, values and dtypes as ``self[col]`` has them."""
        unknown = [c for c in columns if c not in self._dtypes]
        if unknown:
            raise KeyError(unknown)
        positions = np.asarray(indices, dtype=np.intp)
        if self._keep is not None:
            positions = self._kept[positions]
        table = self._source.rows(positions, list(columns))
        return table.assign(**{c: self._as_raw(c, table[c]) for c in columns})

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pd.DataFrame]:
        """Every row (after the mask) of ``columns`` in order, ``batch_rows`` at a time (the
        last: fewer), as :meth:`rows` gives them. A source with
        ``batches(columns, batch_rows, keep=mask)`` reads them in one sequential pass."""
        read = getattr(self._source, "batches", None)
        if read is None:
            for start in range(0, len(self), batch_rows):
                yield self.rows(np.arange(start, min(start + batch_rows, len(self))), columns)
            return
        for table in read(list(columns), batch_rows, keep=self._keep):
            yield table.assign(**{c: self._as_raw(c, table[c]) for c in columns})

    def subset(self, keep: np.ndarray) -> LazyRaw:
        """The same columns restricted to the rows where ``keep`` (a flag a current row)."""
        mask = np.asarray(keep, dtype=bool)
        if mask.shape != (len(self),):
            raise ValueError(f"a row mask of shape {mask.shape} for {len(self)} rows")
        if self._keep is not None:
            combined = self._keep.copy()
            combined[self._keep] = mask
            mask = combined
        return LazyRaw(self._source, self._dtypes, self._converted, mask, self._dates)

    @cached_property
    def _kept(self) -> np.ndarray:
        # Source positions of the kept rows: found once, not once a batch.
        assert self._keep is not None
        return np.flatnonzero(self._keep)

    def _as_raw(self, col: str, values: pd.Series) -> pd.Series:
        if col in self._converted:
            values = as_number(values)
        elif col in self._dates:
            values = self._dates[col].days(values)
        dtype = self._dtypes[col]
        return values if values.dtype == dtype else values.astype(dtype)


@dataclass
class FeatureFrame:
    """The rows to cluster, by role, with raw values in the data's own units."""

    ids: pd.Series
    raw: pd.DataFrame | LazyRaw  # clustering features then demographics, unmodified
    behavioral: list[str]
    attitudinal: list[str]
    demographic: list[str]
    numeric_features: list[str]
    categorical_features: list[str]
    numeric_demographics: list[str]
    dropped_columns: list[str] = field(default_factory=list)
    # Never clustered; described per persona against everyone (rates, means). In ``raw``.
    outcome: list[str] = field(default_factory=list)
    # Clustering columns with exactly two values (numeric or categorical above): one flag each.
    binary: list[str] = field(default_factory=list)
    # Clustering dates (in numeric_features; ``raw`` holds days before the rule's reference).
    dates: dict[str, DateRule] = field(default_factory=dict)
    # Demographic columns of dates (typed, or text that reads as dates): described by their
    # median and quartile dates, not by a share per day. ``raw`` holds them as given.
    demographic_dates: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.behavioral, *self.attitudinal]

    def role_of(self, column: str) -> Literal["behavioral", "attitudinal"]:
        return "attitudinal" if column in self.attitudinal else "behavioral"

    def subset(self, keep: pd.Series | list[bool] | np.ndarray) -> FeatureFrame:
        """The same frame restricted to some rows (e.g. after ``drop_rows``)."""
        if isinstance(self.raw, LazyRaw):
            flags = np.asarray(keep, dtype=bool)
            return replace(
                self, ids=self.ids[flags].reset_index(drop=True), raw=self.raw.subset(flags)
            )
        mask = pd.Series(keep, index=self.raw.index) if isinstance(keep, list) else keep
        return replace(
            self,
            ids=self.ids[mask].reset_index(drop=True),
            raw=self.raw[mask].reset_index(drop=True),
        )


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


# A numeric demographic with at most this many distinct whole-number values (Channel 1/2,
# Region 1-3, Kidhome 0-2) is described by category shares, not by mean and quartiles.
MAX_CODE_VALUES = 12


def _is_code(s: pd.Series) -> bool:
    present = s.dropna()
    return present.nunique() <= MAX_CODE_VALUES and bool((present.astype(float) % 1 == 0).all())


def _looks_numeric(s: pd.Series) -> tuple[bool, str | None]:
    """Whether a text column is mostly numbers; returns an offending example when it is."""
    present = s.dropna().astype(str).str.strip()
    if present.empty:
        return False, None
    parsed = pd.to_numeric(present, errors="coerce")
    bad = present[parsed.isna()]
    if parsed.notna().mean() >= 0.5 and not bad.empty:
        return True, str(bad.iloc[0])
    return False, None


_Kind = Literal["numeric", "numbers as text", "date", "categorical"]


class _Read(NamedTuple):
    """How a clustering column is used: its kind, its date rule, whether it is two-valued."""

    kind: _Kind
    rule: DateRule | None = None
    binary: bool = False


def _classify(
    s: pd.Series,
    col: str,
    degenerate: Literal["error", "drop"],
    origin: str,
    settings: PreprocessingConfig,
) -> _Read | None:
    """How clustering column ``col`` (values ``s``) is used; None when it is dropped."""
    check_plain(s, col, origin)
    if s.isna().all():
        problem = "is entirely missing"
    elif s.nunique(dropna=True) <= 1:
        value = s.dropna().iloc[0]
        plain = value.item() if isinstance(value, np.generic) else value  # not np.int64(3)
        problem = f"is constant ({plain!r} in every row)"
    else:
        problem = ""
    if problem:
        if degenerate == "drop":
            # stacklevel: the caller of select_features(_by_column), through _select.
            warnings.warn(f"{origin}: dropped column {col!r}: it {problem}", stacklevel=4)
            return None
        raise DataError(
            f"{origin}: column {col!r} {problem} and cannot separate users; remove it from "
            "features or set preprocessing.degenerate_columns: drop"
        )
    forced = settings.date_formats.get(col)
    if forced is None and _is_numeric(s):
        check_finite(s, col, origin)
        return _Read("numeric", binary=s.nunique(dropna=True) == 2)
    present = s.dropna()
    if forced is None:
        as_numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
        how = "stored as text"
        if not as_numbers.notna().all() and (formatted := formatted_numbers(present)):
            as_numbers, marks = formatted
            how = f"written as text with {' and '.join(marks)} (e.g. {str(present.iloc[0])!r})"
        if as_numbers.notna().all():
            check_finite(as_numbers, col, origin)
            # Numbers stored as text (JSON, SQL text columns): cluster them as numbers, and say so.
            warnings.warn(
                f"{origin}: column {col!r} holds numbers {how}; using them as numbers",
                stacklevel=4,
            )
            return _Read("numbers as text", binary=as_numbers.nunique() == 2)
    found = find_dates(s, forced)
    if found is not None:
        if found.stamps.isna().all():
            raise DataError(
                f"{origin}: column {col!r}: no value reads as a date in format {forced!r} "
                f"(preprocessing.date_formats), e.g. {found.example!r}; fix the format"
            )
        rule = rule_for(found, settings.reference_date)
        warnings.warn(f"{origin}: column {col!r} {date_news(found, rule)}", stacklevel=4)
        return _Read("date", rule, binary=found.stamps.nunique() == 2)
    looks, example = _looks_numeric(s)
    if looks:
        raise DataError(
            f"{origin}: column {col!r} is numeric but has non-numeric text, e.g. {example!r}; "
            "clean the value or mark it missing"
        )
    distinct = present.astype("string").nunique()
    if distinct > settings.max_categories:
        raise DataError(
            f"{origin}: column {col!r} has {distinct:,} distinct values, more than "
            f"preprocessing.max_categories ({settings.max_categories}): one-hot encoding would "
            "add a column per value. Drop it from the clustering columns, list it as "
            "demographic, or raise preprocessing.max_categories"
            + (
                "; if it holds dates, give its format in preprocessing.date_formats"
                if looks_like_dates(present)
                else ""
            )
        )
    return _Read("categorical", binary=distinct == 2)


def _select(
    names: Iterable[str],
    num_rows: int,
    column: Callable[[str], pd.Series],
    id_column: str,
    features: FeaturesConfig,
    degenerate: Literal["error", "drop"],
    origin: str,
    make_raw: Callable[[list[str], list[str], dict[str, DateRule]], pd.DataFrame | LazyRaw],
    settings: PreprocessingConfig | None,
) -> FeatureFrame:
    """The checks and roles of :func:`select_features`, reading each column once through
    ``column``; ``make_raw(columns, converted, dates)`` builds ``raw`` (``converted``: the
    columns of numbers stored as text; ``dates``: the date columns' rules)."""
    settings = settings or PreprocessingConfig()
    names = list(names)
    if id_column not in names:
        raise DataError(
            f"{origin}: id column {id_column!r} not found; columns are {listing(names)}"
        )
    wanted = {
        "behavioral": features.behavioral,
        "attitudinal": features.attitudinal,
        "demographic": features.demographic,
        "outcome": features.outcome,
    }
    present = set(names)
    for role, cols in wanted.items():
        missing = [c for c in cols if c not in present]
        if missing:
            raise DataError(
                f"{origin}: {role} column(s) {listing(missing)} not found; columns are "
                f"{listing(names)}"
            )
    ids = column(id_column)
    if ids.isna().any():
        raise DataError(
            f"{origin}: id column {id_column!r} is empty in {int(ids.isna().sum())} row(s); "
            "every user needs an id"
        )
    dup = ids[ids.duplicated(keep=False)]
    if not dup.empty:
        examples = list(dict.fromkeys(dup.astype(str)))
        raise DataError(
            f"{origin}: id column {id_column!r} has {len(examples)} duplicate id(s), e.g. "
            f"{listing(examples, 5)}; each user must appear once"
        )
    if num_rows < MIN_ROWS:
        raise DataError(
            f"{origin}: {num_rows} row(s) is too few to cluster; at least {MIN_ROWS} are needed"
        )

    unknown = [c for c in settings.date_formats if c not in features.clustering]
    if unknown:
        raise DataError(
            f"preprocessing.date_formats: {listing(unknown)} not among the clustering columns "
            f"{listing(features.clustering)}; only clustered dates are read as dates"
        )
    reads: dict[str, _Read | None] = {}
    for col in features.clustering:  # a loop, not a comprehension: warnings' stacklevel
        reads[col] = _classify(column(col), col, degenerate, origin, settings)
    kinds = {c: None if read is None else read.kind for c, read in reads.items()}
    dropped = [c for c, kind in kinds.items() if kind is None]
    behavioral = [c for c in features.behavioral if c not in dropped]
    attitudinal = [c for c in features.attitudinal if c not in dropped]
    if not behavioral and not attitudinal:
        raise DataError(f"{origin}: every clustering column was dropped; nothing left to cluster")
    numeric_demo: list[str] = []
    date_demo: list[str] = []
    for col in features.demographic:
        s = column(col)
        check_plain(s, col, origin)
        if _is_numeric(s):
            check_finite(s, col, origin)
        if _is_numeric(s) and not _is_code(s):
            numeric_demo.append(col)
        elif not _is_numeric(s) and find_dates(s) is not None:
            date_demo.append(col)
    for col in features.outcome:
        s = column(col)  # read once: a column-wise raw learns each column's dtype here
        check_plain(s, col, origin)
        if _is_numeric(s):
            check_finite(s, col, origin)
    cols = [*behavioral, *attitudinal, *features.demographic, *features.outcome]
    converted = [c for c, kind in kinds.items() if kind == "numbers as text"]
    dates = {c: read.rule for c, read in reads.items() if read is not None and read.rule}
    return FeatureFrame(
        ids=ids.reset_index(drop=True),
        raw=make_raw(cols, converted, dates),
        behavioral=behavioral,
        attitudinal=attitudinal,
        demographic=list(features.demographic),
        numeric_features=[c for c, kind in kinds.items() if kind not in (None, "categorical")],
        categorical_features=[c for c, kind in kinds.items() if kind == "categorical"],
        numeric_demographics=numeric_demo,
        dropped_columns=dropped,
        outcome=list(features.outcome),
        binary=[c for c, read in reads.items() if read is not None and read.binary],
        dates=dates,
        demographic_dates=date_demo,
    )


def select_features(
    table: pd.DataFrame,
    id_column: str,
    features: FeaturesConfig,
    *,
    degenerate: Literal["error", "drop"] = "error",
    origin: str = "the data",
    preprocessing: PreprocessingConfig | None = None,
) -> FeatureFrame:
    """Validate roles against ``table`` and return the frame the pipeline clusters.
    ``preprocessing`` gives ``max_categories``, ``date_formats`` and ``reference_date``
    (default: the defaults of :class:`~apg.config.PreprocessingConfig`)."""

    def raw(cols: list[str], converted: list[str], dates: dict[str, DateRule]) -> pd.DataFrame:
        picked = table[cols]
        changed = {c: as_number(table[c]) for c in converted}
        changed.update({c: rule.days(table[c]) for c, rule in dates.items()})
        if changed:
            picked = picked.assign(**changed)
        return picked.reset_index(drop=True)

    return _select(
        table.columns,
        len(table),
        table.__getitem__,
        id_column,
        features,
        degenerate,
        origin,
        raw,
        preprocessing,
    )


def select_features_by_column(
    columns: Columns,
    id_column: str,
    features: FeaturesConfig,
    *,
    degenerate: Literal["error", "drop"] = "error",
    origin: str = "the data",
    preprocessing: PreprocessingConfig | None = None,
) -> FeatureFrame:
    """:func:`select_features` for a table read one column at a time: the same checks,
    errors, warnings and roles; ``raw`` is a :class:`LazyRaw` over ``columns``."""
    dtypes: dict[str, Any] = {}

    def column(name: str) -> pd.Series:
        values = columns.column(name)
        dtypes[name] = values.dtype
        return values

    def raw(cols: list[str], converted: list[str], dates: dict[str, DateRule]) -> LazyRaw:
        for col in converted:  # read again rather than keep the whole converted column
            dtypes[col] = as_number(columns.column(col)).dtype
        dtypes.update({col: np.dtype(np.float64) for col in dates})  # days
        return LazyRaw(columns, {c: dtypes[c] for c in cols}, converted, dates=dates)

    return _select(
        columns.names,
        columns.num_rows,
        column,
        id_column,
        features,
        degenerate,
        origin,
        raw,
        preprocessing,
    )
