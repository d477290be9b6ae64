"""Column roles: check the user table against the config and split it by role.

Behavioral and attitudinal columns are clustered; demographic columns only describe clusters
afterwards; the id is never a feature. Type problems are reported, never coerced silently.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from apg.config import FeaturesConfig
from apg.errors import DataError, listing

MIN_ROWS = 10


@dataclass
class FeatureFrame:
    """The rows to cluster, by role, with raw values in the data's own units."""

    ids: pd.Series
    raw: pd.DataFrame  # clustering features then demographics, unmodified
    behavioral: list[str]
    attitudinal: list[str]
    demographic: list[str]
    numeric_features: list[str]
    categorical_features: list[str]
    numeric_demographics: list[str]
    dropped_columns: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.behavioral, *self.attitudinal]

    def role_of(self, column: str) -> Literal["behavioral", "attitudinal"]:
        return "attitudinal" if column in self.attitudinal else "behavioral"

    def subset(self, keep: pd.Series | list[bool]) -> FeatureFrame:
        """The same frame restricted to some rows (e.g. after ``drop_rows``)."""
        mask = pd.Series(keep, index=self.raw.index) if isinstance(keep, list) else keep
        return FeatureFrame(
            ids=self.ids[mask].reset_index(drop=True),
            raw=self.raw[mask].reset_index(drop=True),
            behavioral=self.behavioral,
            attitudinal=self.attitudinal,
            demographic=self.demographic,
            numeric_features=self.numeric_features,
            categorical_features=self.categorical_features,
            numeric_demographics=self.numeric_demographics,
            dropped_columns=self.dropped_columns,
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


def select_features(
    table: pd.DataFrame,
    id_column: str,
    features: FeaturesConfig,
    *,
    degenerate: Literal["error", "drop"] = "error",
    origin: str = "the data",
) -> FeatureFrame:
    """Validate roles against ``table`` and return the frame the pipeline clusters."""
    if id_column not in table.columns:
        raise DataError(
            f"{origin}: id column {id_column!r} not found; columns are {listing(table.columns)}"
        )
    wanted = {
        "behavioral": features.behavioral,
        "attitudinal": features.attitudinal,
        "demographic": features.demographic,
    }
    for role, cols in wanted.items():
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise DataError(
                f"{origin}: {role} column(s) {listing(missing)} not found; columns are "
                f"{listing(table.columns)}"
            )
    ids = table[id_column]
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
    if len(table) < MIN_ROWS:
        raise DataError(
            f"{origin}: {len(table)} row(s) is too few to cluster; at least {MIN_ROWS} are needed"
        )

    numeric, categorical, dropped = [], [], []
    converted: dict[str, pd.Series] = {}
    for col in features.clustering:
        s = table[col]
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
                warnings.warn(f"{origin}: dropped column {col!r}: it {problem}", stacklevel=2)
                dropped.append(col)
                continue
            raise DataError(
                f"{origin}: column {col!r} {problem} and cannot separate users; remove it from "
                "features or set preprocessing.degenerate_columns: drop"
            )
        if _is_numeric(s):
            numeric.append(col)
            continue
        present = s.dropna()
        as_numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
        if as_numbers.notna().all():
            # Numbers stored as text (JSON, SQL text columns): cluster them as numbers, and say so.
            warnings.warn(
                f"{origin}: column {col!r} holds numbers stored as text; using them as numbers",
                stacklevel=2,
            )
            converted[col] = pd.to_numeric(s.astype("string").str.strip(), errors="coerce")
            numeric.append(col)
            continue
        looks, example = _looks_numeric(s)
        if looks:
            raise DataError(
                f"{origin}: column {col!r} is numeric but has non-numeric text, e.g. {example!r}; "
                "clean the value or mark it missing"
            )
        categorical.append(col)

    behavioral = [c for c in features.behavioral if c not in dropped]
    attitudinal = [c for c in features.attitudinal if c not in dropped]
    if not behavioral and not attitudinal:
        raise DataError(f"{origin}: every clustering column was dropped; nothing left to cluster")
    numeric_demo = [
        c for c in features.demographic if _is_numeric(table[c]) and not _is_code(table[c])
    ]
    cols = [*behavioral, *attitudinal, *features.demographic]
    raw = table[cols].assign(**converted) if converted else table[cols]
    return FeatureFrame(
        ids=ids.reset_index(drop=True),
        raw=raw.reset_index(drop=True),
        behavioral=behavioral,
        attitudinal=attitudinal,
        demographic=list(features.demographic),
        numeric_features=numeric,
        categorical_features=categorical,
        numeric_demographics=numeric_demo,
        dropped_columns=dropped,
    )
