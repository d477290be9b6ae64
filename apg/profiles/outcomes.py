"""Outcomes per persona: results such as churn or campaign response, never clustered.

Each outcome column is described against everyone, by kind:

* ``rate``: a yes/no outcome (booleans, numbers that are only 0 and 1, or text with two
  values). The rate is the share of the *positive* value among members whose outcome is known;
  the positive value is ``True``/``1``, or for text the value that reads as yes ("yes", "true",
  "y", "1", "churned", ...), else the rarer of the two (said in ``positive``). Compared in
  percentage points (``difference``) and as a multiple of everyone's rate (``lift``).
* ``mean``: any other number; ``difference`` in the column's units, ``lift`` the ratio of means
  (None when everyone's mean is 0).
* ``shares``: text with more than two values; each value's share with its lift.

Missing outcomes count in neither numerator nor denominator (``known`` says how many count).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from apg.prepare.features import FeatureFrame

YES = {"yes", "y", "true", "t", "1", "churn", "churned", "positive", "responded", "accepted"}


class OutcomeShare(BaseModel):
    value: str
    share: float
    population_share: float
    lift: float | None


class OutcomeStat(BaseModel):
    column: str
    kind: Literal["rate", "mean", "shares"]
    known: int  # members whose outcome is known
    value: float | None = None  # the persona's rate (0-1) or mean
    population: float | None = None  # everyone's rate or mean
    difference: float | None = None  # value - population (a rate: in proportion, x100 = points)
    lift: float | None = None  # value / population
    positive: str | None = None  # for a rate: the value counted
    shares: list[OutcomeShare] = Field(default_factory=list)


class OutcomeRule:
    """How one outcome column is read: its kind and, for a rate, the 0/1 indicator."""

    def __init__(self, column: str, values: pd.Series) -> None:
        self.column = column
        present = values.dropna()
        distinct = pd.unique(present)
        self.positive: str | None = None
        if pd.api.types.is_bool_dtype(values) or (
            pd.api.types.is_numeric_dtype(values)
            and len(distinct)
            and set(np.asarray(distinct, dtype=float)) <= {0.0, 1.0}
        ):
            self.kind: Literal["rate", "mean", "shares"] = "rate"
            self.indicator = values.map(lambda v: np.nan if pd.isna(v) else float(bool(v)))
            self.positive = "True" if pd.api.types.is_bool_dtype(values) else "1"
        elif pd.api.types.is_numeric_dtype(values):
            self.kind = "mean"
            self.indicator = values.astype(float)
        else:
            text = values.astype("string")
            counts = text.value_counts()
            if len(counts) == 2:
                self.kind = "rate"
                yes = [str(v) for v in counts.index if str(v).strip().lower() in YES]
                # The yes-like value, else the rarer one (equal counts: the first by name).
                rarer = sorted(counts.items(), key=lambda kv: (kv[1], str(kv[0])))[0][0]
                positive = yes[0] if len(yes) == 1 else str(rarer)
                self.positive = positive
                self.indicator = text.map(lambda v: np.nan if pd.isna(v) else float(v == positive))
            else:
                self.kind = "shares"
                self.indicator = text
        self.indicator = self.indicator.reset_index(drop=True)

    def describe(self, mask: np.ndarray) -> OutcomeStat:
        members = self.indicator[mask]
        if self.kind == "shares":
            pop = self.indicator.value_counts(normalize=True)
            mine = members.value_counts(normalize=True)
            shares = [
                OutcomeShare(
                    value=str(v),
                    share=float(mine.get(v, 0.0)),
                    population_share=float(p),
                    lift=float(mine.get(v, 0.0)) / float(p) if p else None,
                )
                for v, p in pop.items()
            ]
            shares.sort(key=lambda s: (-s.share, s.value))
            return OutcomeStat(
                column=self.column, kind="shares", known=int(members.notna().sum()), shares=shares
            )
        value = float(members.mean()) if members.notna().any() else None
        population = float(self.indicator.mean()) if self.indicator.notna().any() else None
        both = value is not None and population is not None
        return OutcomeStat(
            column=self.column,
            kind=self.kind,
            known=int(members.notna().sum()),
            value=value,
            population=population,
            difference=value - population if both else None,  # type: ignore[operator]
            lift=value / population if both and population else None,  # type: ignore[operator]
            positive=self.positive,
        )


def outcome_rules(frame: FeatureFrame) -> list[OutcomeRule]:
    return [OutcomeRule(col, frame.raw[col]) for col in frame.outcome]


def outcomes_for(rules: list[OutcomeRule], mask: np.ndarray) -> dict[str, OutcomeStat]:
    return {rule.column: rule.describe(mask) for rule in rules}


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _num(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def outcome_summary(o: OutcomeStat) -> str | None:
    """One line for cards and tables: ``Churn rate 57.1% vs 26.5% of everyone (+30.6 points,
    2.15× everyone's)``; None when nothing is known about this persona's outcome."""
    if o.kind == "shares":
        if not o.shares:
            return None
        top = o.shares[:3]
        return f"{o.column}: " + ", ".join(
            f"{s.value} {_pct(s.share)} (everyone {_pct(s.population_share)})" for s in top
        )
    if o.value is None or o.population is None or o.difference is None:
        return None
    multiple = f", {o.lift:.2f}× everyone's" if o.lift is not None else ""
    if o.kind == "rate":
        which = f" = {o.positive}" if o.positive not in (None, "1", "True") else ""
        return (
            f"{o.column}{which} rate {_pct(o.value)} vs {_pct(o.population)} of everyone "
            f"({o.difference * 100:+.1f} points{multiple})"
        )
    return (
        f"{o.column} mean {_num(o.value)} vs {_num(o.population)} for everyone "
        f"({o.difference:+,.2f}{multiple})"
    )
