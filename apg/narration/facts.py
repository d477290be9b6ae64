"""The numbered fact sheet of one persona: the only thing a narrator may say anything about.

Every fact has an id (``F1``, ``F2``, ...), a one-line text for the prompt, and the exact numbers
it states (``values``; ``percents`` on a 0-100 scale) so the grounding check can match numbers in
a reply. Only aggregates are here: never user ids, raw rows or representative users. Demographic
categories with fewer than ``min_cell`` members are merged into ``other``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from apg.narration.labels import clean, fmt, fmt_diff, fmt_pct, humanise, is_year, quote
from apg.profiles.confidence import confidence_text
from apg.profiles.outcomes import OutcomeStat
from apg.profiles.persona import (
    CategoryShare,
    Contrast,
    DemographicProfile,
    OutlierProfile,
    PersonaProfile,
)

MAX_CONTRASTS = 8  # distinguishing features shown
MIN_CONTRASTS = 3  # shown even when their differences are small
MIN_STD_DIFF = 0.1  # a contrast below this (in population SDs) is not distinguishing
SAME_STD_DIFF = 0.05  # below this it reads "about the same as everyone"
MAX_ATTITUDINAL = 3  # attitudinal scores always shown, up to this many
MAX_CATEGORIES = 6  # categories listed per column before the rest becomes "other"
OTHER = "other"

FactKind = Literal["size", "contrast", "category", "demographic", "outcome", "outliers"]


class Fact(BaseModel):
    id: str
    kind: FactKind
    text: str
    feature: str | None = None  # the cleaned column name
    label: str | None = None  # the humanised column name
    role: str | None = None  # behavioral | attitudinal | demographic
    direction: Literal["higher", "lower", "same"] | None = None
    std_diff: float | None = None
    values: list[float] = Field(default_factory=list)
    percents: list[float] = Field(default_factory=list)
    # The aggregates behind the text, for the offline narrator (never sent to a model as such).
    contrast: Contrast | None = None
    categories: list[CategoryShare] = Field(default_factory=list)
    numeric: DemographicProfile | None = None
    outcome: OutcomeStat | None = None
    withheld: bool = False  # a contrast of a persona too small to show its values


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


def select_contrasts(contrasts: list[Contrast]) -> list[Contrast]:
    """The strongest contrasts (at least a few), plus the attitudinal scores."""
    ranked = sorted(contrasts, key=lambda c: (-abs(c.std_diff), c.feature))
    chosen = [c for c in ranked if abs(c.std_diff) >= MIN_STD_DIFF][:MAX_CONTRASTS]
    if len(chosen) < MIN_CONTRASTS:
        chosen = ranked[:MIN_CONTRASTS]
    attitudinal = [c for c in chosen if c.role == "attitudinal"]
    for c in ranked:
        if len(attitudinal) >= MAX_ATTITUDINAL:
            break
        if c.role == "attitudinal" and c not in chosen:
            chosen.append(c)
            attitudinal.append(c)
    return sorted(chosen, key=lambda c: (-abs(c.std_diff), c.feature))


def _withheld_fact(fid: str, c: Contrast, min_cell: int) -> Fact:
    """A contrast of a persona smaller than ``min_cell``: its mean would describe individuals."""
    direction = c.direction if abs(c.std_diff) >= SAME_STD_DIFF else "same"
    said = "about the same as" if direction == "same" else f"{direction} than"
    text = (
        f"{quote(c.feature)} ({c.role}): {said} everyone (values withheld: fewer than "
        f"{min_cell} users)."
    )
    return Fact(
        id=fid,
        kind="contrast",
        text=text,
        feature=clean(c.feature),
        label=humanise(c.feature),
        role=c.role,
        direction=direction,
        std_diff=c.std_diff,
        values=[min_cell],
        withheld=True,
    )


def _contrast_fact(fid: str, c: Contrast) -> Fact:
    cm, pm, sd = c.cluster_mean, c.population_mean, c.std_diff
    values, percents = [cm, pm, abs(sd)], []
    if 0 <= cm <= 1 and 0 <= pm <= 1:
        percents += [cm * 100, pm * 100]  # a rate may be written as a percentage
    year = is_year(c.feature)
    text = (
        f"{quote(c.feature)} ({c.role}): persona mean {fmt(cm, year=year)} vs everyone "
        f"{fmt(pm, year=year)}; "
    )
    direction = c.direction if abs(sd) >= SAME_STD_DIFF else "same"
    if direction == "same":
        text += "about the same as everyone."
    else:
        parts = []
        # Relative terms only when the means are comparable (no 10^160 % next to a zero mean).
        if pm != 0 and 1e-3 <= abs(cm / pm) <= 1e3:
            diff = abs(cm - pm) / abs(pm) * 100
            percents.append(diff)
            parts.append(f"{fmt_diff(diff)}% {direction}")
        if pm > 0 and 1e-3 <= cm / pm <= 1e3:
            ratio = cm / pm
            values.append(ratio)
            parts.append(f"{fmt(ratio)}× everyone's mean")
        above = "above" if direction == "higher" else "below"
        parts.append(f"{fmt(abs(sd))} standard deviations {above}")
        text += ", ".join(parts) + "."
    return Fact(
        id=fid,
        kind="contrast",
        text=text,
        feature=clean(c.feature),
        label=humanise(c.feature),
        role=c.role,
        direction=direction,
        std_diff=sd,
        values=values,
        percents=percents,
        contrast=c,
    )


def merge_small(categories: list[CategoryShare], min_cell: int) -> list[CategoryShare]:
    """Categories under ``min_cell`` members, and those past the first few, become ``other``."""
    keep: list[CategoryShare] = []
    rest: list[CategoryShare] = []
    for cat in sorted(categories, key=lambda c: (-c.count, c.value)):
        small = cat.count < min_cell or len(keep) >= MAX_CATEGORIES
        (rest if small or clean(cat.value) == OTHER else keep).append(cat)
    if rest:
        count = sum(c.count for c in rest)
        share = sum(c.share for c in rest)
        pop = sum(c.population_share for c in rest)
        keep.append(
            CategoryShare(
                value=OTHER,
                count=count,
                share=share,
                population_share=pop,
                lift=share / pop if pop else 0.0,
            )
        )
    return [c.model_copy(update={"value": clean(c.value)}) for c in keep if c.count > 0]


def _demographic_fact(fid: str, col: str, demo: DemographicProfile) -> Fact | None:
    head = f"{quote(col)} (demographic): "
    if demo.kind == "date":
        cl, pop = demo.cluster_dates, demo.population_dates
        if cl is None or pop is None or cl.median is None or pop.median is None:
            return None
        text = (
            f"{head}persona median date {cl.median} (middle half {cl.q1} to {cl.q3}); "
            f"everyone median {pop.median}."
        )
        days = [d for d in (cl.median, cl.q1, cl.q3, pop.median) if d]
        return Fact(
            id=fid,
            kind="demographic",
            text=text,
            feature=clean(col),
            label=humanise(col),
            role="demographic",
            # The parts of the dates, so a narrative may say "since 2012" or "in May 2013".
            values=sorted({float(part) for d in days for part in d.split("-")}),
            numeric=demo,
        )
    if demo.kind == "numeric":
        cl, pop = demo.cluster, demo.population
        if cl is None or pop is None or cl.median is None or pop.median is None:
            return None
        nums = [cl.median, cl.q1, cl.q3, cl.mean, pop.median, pop.mean]
        year = is_year(col)

        def show(v: float) -> str:
            return fmt(v, year=year)

        text = (
            f"{head}persona median {show(cl.median)}"
            + (
                f" (middle half {show(cl.q1)} to {show(cl.q3)})"
                if cl.q1 is not None and cl.q3 is not None
                else ""
            )
            + (f", mean {show(cl.mean)}" if cl.mean is not None else "")
            + f"; everyone median {show(pop.median)}"
            + (f", mean {show(pop.mean)}" if pop.mean is not None else "")
            + "."
        )
        return Fact(
            id=fid,
            kind="demographic",
            text=text,
            feature=clean(col),
            label=humanise(col),
            role="demographic",
            values=[v for v in nums if v is not None],
            numeric=demo,
        )
    if not demo.categories:
        return None
    parts = [
        f"{quote(c.value)} {fmt_pct(c.share)} of this persona ({c.count:,} users) vs "
        f"{fmt_pct(c.population_share)} of everyone (lift {fmt(c.lift)})"
        for c in demo.categories
    ]
    return Fact(
        id=fid,
        kind="demographic",
        text=head + "; ".join(parts) + ".",
        feature=clean(col),
        label=humanise(col),
        role="demographic",
        categories=demo.categories,
        values=[v for c in demo.categories for v in (c.count, c.lift, c.share)],
        percents=[v * 100 for c in demo.categories for v in (c.share, c.population_share)],
    )


def outcome_text(o: OutcomeStat) -> str | None:
    """``Churn: 57.1% of this persona vs 26.5% of everyone (+30.6 points, 2.15× everyone's
    rate)``; None when nothing is known."""
    name = quote(o.column)
    if o.kind == "shares":
        if not o.shares:
            return None
        parts = [
            f"{quote(s.value)} {fmt_pct(s.share)} vs {fmt_pct(s.population_share)} of everyone"
            for s in o.shares
        ]
        return f"{name} (outcome): " + "; ".join(parts)
    if o.value is None or o.population is None:
        return None
    if o.kind == "rate":
        which = f" {quote(o.positive)}" if o.positive not in (None, "1", "True") else ""
        text = (
            f"{name}{which} (outcome rate): {fmt_pct(o.value)} of this persona vs "
            f"{fmt_pct(o.population)} of everyone ({o.difference * 100:+.1f} points"
        )
        return text + (f", {fmt(o.lift)}× everyone's rate)" if o.lift is not None else ")")
    text = (
        f"{name} (outcome): mean {fmt(o.value)} in this persona vs {fmt(o.population)} for everyone"
    )
    return text + (f" ({fmt(o.lift)}× everyone's mean)" if o.lift is not None else "")


def _outcome_fact(fid: str, o: OutcomeStat) -> Fact | None:
    text = outcome_text(o)
    if text is None:
        return None
    values: list[float] = []
    percents: list[float] = []
    if o.kind == "shares":
        percents = [v * 100 for s in o.shares for v in (s.share, s.population_share)]
    elif o.kind == "rate":
        percents = [o.value * 100, o.population * 100, abs(o.difference) * 100]  # type: ignore[operator]
        values = [o.lift] if o.lift is not None else []
    else:
        values = [v for v in (o.value, o.population, o.lift) if v is not None]
    return Fact(
        id=fid,
        kind="outcome",
        text=text + ".",
        feature=clean(o.column),
        label=humanise(o.column),
        role="outcome",
        values=values,
        percents=percents,
        outcome=o,
    )


def build_fact_sheet(
    persona: PersonaProfile,
    *,
    n_users: int,
    outliers: OutlierProfile | None = None,
    feature_roles: dict[str, str] | None = None,
    min_cell: int = 5,
) -> FactSheet:
    """Number the facts of ``persona``: size, contrasts, categories, demographics, outliers."""
    roles = feature_roles or {}
    facts: list[Fact] = []
    labels: list[str] = []

    def next_id() -> str:
        return f"F{len(facts) + 1}"

    facts.append(
        Fact(
            id="F1",
            kind="size",
            text=f"This persona has {persona.size:,} users: {fmt_pct(persona.share)} of the "
            f"{n_users:,} users clustered."
            + (f" Its {confidence_text(persona.confidence)}." if persona.confidence else ""),
            values=[persona.size, n_users, persona.share]
            + [
                v
                for v in (
                    persona.confidence.stability if persona.confidence else None,
                    persona.confidence.silhouette if persona.confidence else None,
                )
                if v is not None
            ],
            percents=[persona.share * 100],
        )
    )
    for c in select_contrasts(persona.contrasts):
        small = persona.size < min_cell
        facts.append(
            _withheld_fact(next_id(), c, min_cell) if small else _contrast_fact(next_id(), c)
        )
        labels += [clean(c.feature), humanise(c.feature)]
    for col, shares in persona.categories.items():
        cats = [
            CategoryShare(
                value=str(v), count=round(s * persona.size), share=s, population_share=s, lift=1.0
            )
            for v, s in shares.items()
        ]
        merged = merge_small(cats, min_cell)
        if not merged:
            continue
        role = roles.get(col, "behavioral")
        parts = "; ".join(f"{quote(c.value)} {fmt_pct(c.share)}" for c in merged)
        facts.append(
            Fact(
                id=next_id(),
                kind="category",
                role=role,
                feature=clean(col),
                label=humanise(col),
                text=f"{quote(col)} ({role}): {parts} of this persona.",
                percents=[c.share * 100 for c in merged],
                categories=merged,
            )
        )
        labels += [clean(col), humanise(col), *(c.value for c in merged)]
    demographics: dict[str, DemographicProfile] = {}
    for col, demo in persona.demographics.items():
        if demo.kind in ("numeric", "date") and persona.size < min_cell:
            continue  # a median of a handful of people describes individuals
        merged_demo = demo.model_copy(update={"categories": merge_small(demo.categories, min_cell)})
        fact = _demographic_fact(next_id(), col, merged_demo)
        if fact is None:
            continue
        facts.append(fact)
        demographics[clean(col)] = merged_demo
        labels += [clean(col), humanise(col), *(c.value for c in merged_demo.categories)]
    if persona.size >= min_cell:  # a rate of a handful of people describes individuals
        for o in persona.outcomes.values():
            fact = _outcome_fact(next_id(), o)
            if fact is not None:
                facts.append(fact)
                labels += [clean(o.column), humanise(o.column)]
    if outliers is not None and outliers.size > 0:
        facts.append(
            Fact(
                id=next_id(),
                kind="outliers",
                text=f"{outliers.size:,} users ({fmt_pct(outliers.share)}) fit no persona and are "
                f"left out of every persona.",
                values=[outliers.size],
                percents=[outliers.share * 100],
            )
        )
    unique = sorted({lab for lab in labels if lab}, key=lambda s: (-len(s), s))
    return FactSheet(
        persona_id=clean(persona.persona_id, 20),
        size=persona.size,
        share=persona.share,
        n_users=n_users,
        facts=facts,
        demographics=demographics,
        labels=unique,
        confidence=persona.confidence.level if persona.confidence else None,
    )
