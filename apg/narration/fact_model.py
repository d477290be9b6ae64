"""The fact sheet's data model: facts, their typed numbers, and the sheet of one persona.

Built by ``apg.narration.facts``; read by the grounding check and the narrators.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from apg.profiles.outcomes import OutcomeStat
from apg.profiles.persona import CategoryShare, Contrast, DemographicProfile

MAX_CONTRASTS = 8  # distinguishing features shown
MIN_CONTRASTS = 3  # shown even when their differences are small
MIN_STD_DIFF = 0.1  # a contrast below this (in population SDs) is not distinguishing
SAME_STD_DIFF = 0.05  # below this it reads "about the same as everyone"
MAX_ATTITUDINAL = 3  # attitudinal scores always shown, up to this many
MAX_CATEGORIES = 6  # categories listed per column before the rest becomes "other"
MAX_CATEGORY_CONTRASTS = 2  # categories of one column among the contrasts (1 for two values)
OTHER = "other"

FactKind = Literal["size", "contrast", "category", "demographic", "outcome", "outliers"]
# What a number on the sheet is. share, relative and points are on a 0-100 scale (percent).
NumberKind = Literal["count", "value", "share", "relative", "multiple", "points", "sd"]
PERCENT_KINDS: frozenset[str] = frozenset({"share", "relative", "points"})
# A column whose own values are percentages: its means may be written with "%".
_IN_PERCENT = re.compile(r"pct|percent|perc\b|%", re.IGNORECASE)


class FactNumber(BaseModel):
    kind: NumberKind
    value: float


def nums(kind: NumberKind, *values: float | None) -> list[FactNumber]:
    return [FactNumber(kind=kind, value=v) for v in values if v is not None]


class Fact(BaseModel):
    id: str
    kind: FactKind
    text: str
    feature: str | None = None  # the cleaned column name
    label: str | None = None  # the humanised column name
    role: str | None = None  # behavioral | attitudinal | demographic
    direction: Literal["higher", "lower", "same"] | None = None
    std_diff: float | None = None
    # The exact numbers behind the text, by kind (see NumberKind).
    numbers: list[FactNumber] = Field(default_factory=list)
    rate: bool = False  # a contrast of a 0-1 feature: said in points and multiples
    # Category values that passed the over-representation test (apg.profiles.significance).
    over_represented: list[str] = Field(default_factory=list)
    # Category values that passed the same test with a share below the rest's.
    under_represented: list[str] = Field(default_factory=list)
    # A category contrast (one category of a categorical behavioral/attitudinal feature
    # against everyone): its value, cleaned. Its share is said like a rate, in points.
    category: str | None = None
    # The aggregates behind the text, for the offline narrator (never sent to a model as such).
    contrast: Contrast | None = None
    categories: list[CategoryShare] = Field(default_factory=list)
    numeric: DemographicProfile | None = None
    outcome: OutcomeStat | None = None
    withheld: bool = False  # a contrast of a persona too small to show its values

    @property
    def values(self) -> list[float]:
        """Numbers on the data's own scale (counts, values, multiples, SDs)."""
        return [n.value for n in self.numbers if n.kind not in PERCENT_KINDS]

    @property
    def percents(self) -> list[float]:
        """Numbers on a 0-100 scale (shares, relative changes, points)."""
        return [n.value for n in self.numbers if n.kind in PERCENT_KINDS]

    def number(self, kind: NumberKind) -> float | None:
        """The first number of a kind, if any."""
        return next((n.value for n in self.numbers if n.kind == kind), None)


class FactSheet(BaseModel):
    persona_id: str
    size: int
    share: float
    n_users: int
    facts: list[Fact]
    # Demographics after the min-cell merge, keyed by cleaned column name.
    demographics: dict[str, DemographicProfile] = Field(default_factory=dict)
    # Every data-derived label shown (column names, humanised names, category values).
    labels: list[str] = Field(default_factory=list)
    # The persona's confidence level (apg.profiles.confidence); None in older runs.
    confidence: str | None = None

    def ids(self) -> list[str]:
        return [f.id for f in self.facts]

    def get(self, fact_id: str) -> Fact | None:
        return next((f for f in self.facts if f.id == fact_id), None)

    def of_kind(self, kind: FactKind) -> list[Fact]:
        return [f for f in self.facts if f.kind == kind]

    def contrasts(self) -> list[Fact]:
        return self.of_kind("contrast")

    def render(self) -> str:
        """One fact per line: ``F3 <text>``."""
        return "\n".join(f"{f.id} {f.text}" for f in self.facts)

    def as_dict(self) -> dict[str, str]:
        return {f.id: f.text for f in self.facts}
