"""The numbered fact sheet of one persona: the only thing a narrator may say anything about.

Every fact has an id (``F1``, ``F2``, ...), a one-line text for the prompt, and the exact numbers
it states, each with its kind (``numbers``: a count, a value, a share, a relative change, a
multiple, percentage points or standard deviations) so the grounding check can match a number in
a reply only against numbers of the same kind: "84% higher" is a relative change and never
matches a rate of 0.84. Only aggregates are here: never user ids, raw rows or representative
users. Demographic categories with fewer than ``min_cell`` members are merged into ``other``.

A contrast of a 0-1 feature (a flag, rate or share: ``Contrast.bounded``) is stated in
percentage points and multiples ("84% vs 7.3% of everyone: 76.7 points higher, 11.5× everyone's
rate"); other contrasts as a relative change computed from the two means (only when both are
non-negative and everyone's is above 0, and never for years), a multiple and standard
deviations. A category is called over-represented only when it passes
``apg.profiles.significance`` (test against the rest, Benjamini–Hochberg, ``min_cell``).
"""

from __future__ import annotations

from apg.narration.display import DEFAULT_LABELS, Labels
from apg.narration.fact_contrasts import (
    Verdict,
    category_candidates,
    category_contrast_fact,
    contrast_fact,
    fmt_points,
    is_rate,
    multiple,
    relative_change,
    select_contrasts,
    withheld_fact,
)
from apg.narration.fact_model import (
    MAX_CATEGORIES,
    MIN_STD_DIFF,
    OTHER,
    PERCENT_KINDS,
    Fact,
    FactKind,
    FactNumber,
    FactSheet,
    NumberKind,
    nums,
)
from apg.narration.labels import clean, fmt, fmt_pct, humanise, quote
from apg.profiles.confidence import confidence_text
from apg.profiles.outcomes import OutcomeStat
from apg.profiles.persona import (
    CategoryContrast,
    CategoryShare,
    DemographicProfile,
    OutlierProfile,
    PersonaProfile,
)
from apg.profiles.significance import (
    DEFAULT_SIGNIFICANCE,
    bh_adjust,
    is_over_represented,
    vs_rest_p,
)

__all__ = [
    "MAX_CATEGORIES",
    "MIN_STD_DIFF",
    "OTHER",
    "PERCENT_KINDS",
    "Fact",
    "FactKind",
    "FactNumber",
    "FactSheet",
    "NumberKind",
    "build_fact_sheet",
    "category_verdicts",
    "fmt_points",
    "is_rate",
    "merge_small",
    "multiple",
    "nums",
    "outcome_text",
    "over_represented",
    "relative_change",
    "select_contrasts",
]


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


def _labelled(col: str, categories: list[CategoryShare], shown: Labels) -> list[CategoryShare]:
    """Codes replaced by their value labels (``Channel`` ``1`` -> ``Horeca``); ``other`` stays."""
    return [
        c if c.value == OTHER else c.model_copy(update={"value": shown.value_label(col, c.value)})
        for c in categories
    ]


def _demographic_fact(
    fid: str,
    col: str,
    demo: DemographicProfile,
    over: frozenset[str] = frozenset(),
    shown: Labels = DEFAULT_LABELS,
) -> Fact | None:
    """``over``: the (merged, cleaned) category values that passed the over-representation
    test; only they are called over-represented, the others are plain shares. ``shown``:
    display names, value labels and number formats (``demo``'s categories already labelled)."""
    named = shown.columns.get(col)
    head = (
        f"{quote(col)} ({clean(named.name)}, demographic): "
        if named is not None and named.name
        else f"{quote(col)} (demographic): "
    )
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
            numbers=nums("value", *sorted({float(part) for d in days for part in d.split("-")})),
            numeric=demo,
        )
    if demo.kind == "numeric":
        cl, pop = demo.cluster, demo.population
        if cl is None or pop is None or cl.median is None or pop.median is None:
            return None
        values = [cl.median, cl.q1, cl.q3, cl.mean, pop.median, pop.mean]

        def show(v: float) -> str:
            return shown.format_value(col, v)  # 1971, not 1,971.0; units from labels

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
            numbers=nums("value", *values),
            numeric=demo,
        )
    if not demo.categories:
        return None
    parts = []
    for c in demo.categories:
        verdict = ""
        if c.value in over:
            verdict = "; significantly over-represented"
        elif c.lift > 1 and c.value != OTHER:
            verdict = "; not a significant difference"
        parts.append(
            f"{quote(c.value)} {fmt_pct(c.share)} of this persona ({c.count:,} users) vs "
            f"{fmt_pct(c.population_share)} of everyone (lift {fmt(c.lift)}{verdict})"
        )
    return Fact(
        id=fid,
        kind="demographic",
        text=head + "; ".join(parts) + ".",
        feature=clean(col),
        label=humanise(col),
        role="demographic",
        categories=demo.categories,
        over_represented=[c.value for c in demo.categories if c.value in over],
        numbers=nums("count", *(c.count for c in demo.categories))
        + nums("multiple", *(c.lift for c in demo.categories))
        + nums("value", *(c.share for c in demo.categories))
        + nums("share", *(v * 100 for c in demo.categories for v in (c.share, c.population_share))),
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
    numbers: list[FactNumber] = []
    if o.kind == "shares":
        numbers = nums("share", *(v * 100 for s in o.shares for v in (s.share, s.population_share)))
        numbers += nums("multiple", *(s.lift for s in o.shares))
    elif o.value is not None and o.population is not None:
        numbers = nums("value", o.value, o.population) + nums("multiple", o.lift)
        # Allowed though not printed for a rate (see _contrast_fact).
        numbers += nums("relative", relative_change(o.value, o.population))
        if o.kind == "rate":
            numbers += nums("share", o.value * 100, o.population * 100)
            numbers += nums("points", abs(o.value - o.population) * 100)
    return Fact(
        id=fid,
        kind="outcome",
        text=text + ".",
        feature=clean(o.column),
        label=humanise(o.column),
        role="outcome",
        numbers=numbers,
        outcome=o,
    )


def over_represented(
    persona: PersonaProfile, *, n_users: int, level: float, min_cell: int
) -> dict[str, frozenset[str]]:
    """Per demographic column, the (cleaned) categories that may be called over-represented.

    The family for Benjamini–Hochberg is every category of every categorical demographic of
    this persona. A profile from an older run has no p-values: they are computed here from
    the counts, everyone's shares and ``n_users`` (the users the shares were taken over).
    """
    tested: list[tuple[str, CategoryShare, float]] = []
    for col, demo in persona.demographics.items():
        if demo.kind != "categorical":
            continue
        for c in demo.categories:
            p = c.p_value
            if p is None:
                p = vs_rest_p(c.count, persona.size, round(c.population_share * n_users), n_users)
            tested.append((col, c, p))
    q_values = bh_adjust([p for *_, p in tested])
    out: dict[str, set[str]] = {}
    for (col, c, _), q in zip(tested, q_values, strict=True):
        if clean(c.value) != OTHER and is_over_represented(
            count=c.count, lift=c.lift, q_value=q, level=level, min_cell=min_cell
        ):
            out.setdefault(col, set()).add(clean(c.value))
    return {col: frozenset(values) for col, values in out.items()}


def category_verdicts(
    persona: PersonaProfile, *, level: float, min_cell: int
) -> dict[tuple[str, str], Verdict]:
    """Per (column, value) of the persona's category contrasts: "over" or "under" when the
    share differs from the rest's significantly (``apg.profiles.significance``), else None.

    The family for Benjamini–Hochberg is every category of every categorical behavioral and
    attitudinal feature of this persona (separate from the demographics' family: those are
    described, these decide the clusters). Over-represented also needs ``min_cell`` members;
    either verdict needs a persona of at least ``min_cell`` users.
    """
    cats: list[CategoryContrast] = persona.category_contrasts
    q_values = bh_adjust([c.p_value for c in cats])
    out: dict[tuple[str, str], Verdict] = {}
    for c, q in zip(cats, q_values, strict=True):
        verdict: Verdict = None
        if persona.size >= min_cell and clean(c.value) != OTHER and c.lift is not None:
            if is_over_represented(
                count=c.count, lift=c.lift, q_value=q, level=level, min_cell=min_cell
            ):
                verdict = "over"
            elif q <= level and c.lift < 1:
                verdict = "under"
        out[(c.feature, c.value)] = verdict
    return out


def build_fact_sheet(
    persona: PersonaProfile,
    *,
    n_users: int,
    outliers: OutlierProfile | None = None,
    feature_roles: dict[str, str] | None = None,
    min_cell: int = 5,
    significance: float = DEFAULT_SIGNIFICANCE,
    labels: Labels | None = None,
) -> FactSheet:
    """Number the facts of ``persona``: size, contrasts, categories, demographics, outliers.

    ``significance``: the level at which a demographic category is called over-represented
    (``narration.significance``; see ``apg.profiles.significance``). ``labels``: the config's
    ``labels:`` (display names, value labels, number formats; default: humanised names).
    Category values are shown by their labels everywhere on the sheet (texts, categories,
    over-represented lists), so narratives and the claim checks use one spelling.
    """
    display = labels or DEFAULT_LABELS
    roles = feature_roles or {}
    over = over_represented(persona, n_users=n_users, level=significance, min_cell=min_cell)
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
            numbers=nums("count", persona.size, n_users)
            + nums(
                "value",
                persona.share,
                persona.confidence.stability if persona.confidence else None,
                persona.confidence.silhouette if persona.confidence else None,
            )
            + nums("share", persona.share * 100),
        )
    )
    small = persona.size < min_cell
    verdicts = category_verdicts(persona, level=significance, min_cell=min_cell)
    candidates = category_candidates(persona.category_contrasts, min_cell=min_cell, small=small)
    for c in select_contrasts(persona.contrasts, candidates):
        if isinstance(c, CategoryContrast):
            verdict = verdicts.get((c.feature, c.value))
            c = c.model_copy(update={"value": display.value_label(c.feature, c.value)})
            facts.append(category_contrast_fact(next_id(), c, verdict))
            labels += [clean(c.value)]
        else:
            facts.append(
                withheld_fact(next_id(), c, min_cell) if small else contrast_fact(next_id(), c)
            )
        labels += [clean(c.feature), humanise(c.feature)]
    # Everyone's share of each category, when the profile has it (older runs do not).
    everyone = {(c.feature, c.value): c.population_share for c in persona.category_contrasts}
    for col, shares in persona.categories.items():
        cats = [
            CategoryShare(
                value=str(v),
                count=round(s * persona.size),
                share=s,
                population_share=everyone.get((col, str(v)), s),
                lift=1.0,
            )
            for v, s in shares.items()
        ]
        merged = _labelled(col, merge_small(cats, min_cell), display)
        if not merged:
            continue
        role = roles.get(col, "behavioral")
        compared = bool(everyone)
        parts = "; ".join(
            f"{quote(c.value)} {fmt_pct(c.share)}"
            + (f" vs {fmt_pct(c.population_share)} of everyone" if compared else "")
            for c in merged
        )
        shown = [c.share for c in merged] + (
            [c.population_share for c in merged] if compared else []
        )
        facts.append(
            Fact(
                id=next_id(),
                kind="category",
                role=role,
                feature=clean(col),
                label=humanise(col),
                text=f"{quote(col)} ({role}): {parts}"
                + (" (shares of this persona vs everyone)." if compared else " of this persona."),
                numbers=nums("share", *(v * 100 for v in shown)),
                categories=merged,
            )
        )
        labels += [clean(col), humanise(col), *(c.value for c in merged)]
    demographics: dict[str, DemographicProfile] = {}
    for col, demo in persona.demographics.items():
        if demo.kind in ("numeric", "date") and persona.size < min_cell:
            continue  # a median of a handful of people describes individuals
        cats = _labelled(col, merge_small(demo.categories, min_cell), display)
        merged_demo = demo.model_copy(update={"categories": cats})
        passed = frozenset(display.value_label(col, v) for v in over.get(col, frozenset()))
        fact = _demographic_fact(next_id(), col, merged_demo, passed, display)
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
                numbers=nums("count", outliers.size) + nums("share", outliers.share * 100),
            )
        )
    for i, fact in enumerate(facts):
        if fact.feature:  # display names for every fact, also those built elsewhere
            name = display.display_name(fact.feature)
            facts[i] = fact.model_copy(update={"label": name})
            labels.append(name)
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
