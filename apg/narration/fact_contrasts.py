"""Contrast facts: which contrasts a sheet shows, and how each is stated.

A contrast of a 0-1 feature (a flag, rate or share: ``Contrast.bounded``) is stated in
percentage points and multiples ("84% of this persona vs 7.3% of everyone; 76.7 points higher,
11.5× everyone's rate"); any other as a relative change computed from the two means (only when
both are non-negative and everyone's is above 0, never for years), a multiple and standard
deviations. A relative change is never read off a value. A category of a categorical
behavioral or attitudinal feature is a contrast too (its 0/1 indicator), said in shares, points
and a multiple, and ranked with the numeric ones on the same standardised scale.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from apg.narration.fact_model import (
    _IN_PERCENT,
    MAX_ATTITUDINAL,
    MAX_CATEGORY_CONTRASTS,
    MAX_CONTRASTS,
    MIN_CONTRASTS,
    MIN_STD_DIFF,
    SAME_STD_DIFF,
    Fact,
    nums,
)
from apg.narration.labels import clean, fmt, fmt_diff, fmt_pct, humanise, is_year, quote
from apg.profiles.persona import CategoryContrast, CategoryShare, Contrast, PersonaProfile

DEFAULT_MIN_CELL = 5  # narration.min_cell's default

AnyContrast = Contrast | CategoryContrast
Verdict = Literal["over", "under"] | None


def _rank(c: AnyContrast) -> tuple[float, str, str]:
    return (-abs(c.std_diff), c.feature, c.value if isinstance(c, CategoryContrast) else "")


def category_candidates(
    categories: Sequence[CategoryContrast], *, min_cell: int, small: bool
) -> list[CategoryContrast]:
    """The categories that may stand among a sheet's contrasts: none for a persona smaller
    than ``min_cell``; a category above everyone's share only with ``min_cell`` members;
    at most ``MAX_CATEGORY_CONTRASTS`` per column, one for a column of two values (its two
    indicators are complements: the same difference said twice)."""
    if small:
        return []
    values = Counter(c.feature for c in categories)
    taken: Counter[str] = Counter()
    out = []
    for c in sorted(categories, key=_rank):
        limit = 1 if values[c.feature] <= 2 else MAX_CATEGORY_CONTRASTS
        if c.direction == "same" or taken[c.feature] >= limit:
            continue
        if c.direction == "higher" and c.count < min_cell:
            continue
        taken[c.feature] += 1
        out.append(c)
    return out


def key_contrasts(
    persona: PersonaProfile, n: int, *, min_cell: int = DEFAULT_MIN_CELL
) -> list[AnyContrast]:
    """The ``n`` strongest contrasts of a persona for its card: numeric features and
    categories (``category_candidates``) ranked together by ``|std_diff|``."""
    cats = category_candidates(
        persona.category_contrasts, min_cell=min_cell, small=persona.size < min_cell
    )
    return sorted([*persona.contrasts, *cats], key=_rank)[:n]


def select_contrasts(
    contrasts: Sequence[Contrast], categories: Sequence[CategoryContrast] = ()
) -> list[AnyContrast]:
    """The strongest contrasts (at least a few), plus the attitudinal scores.

    Numeric features and categories (``category_candidates``) are ranked together by
    ``|std_diff|``: the standardised mean difference, which for a category is that of its 0/1
    indicator, so both are in standard deviations of everyone."""
    ranked: list[AnyContrast] = sorted([*contrasts, *categories], key=_rank)
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
    return sorted(chosen, key=_rank)


def is_rate(c: Contrast) -> bool:
    """A contrast of a 0-1 feature (older runs: both means within [0, 1])."""
    if c.bounded is not None:
        return c.bounded
    return 0 <= c.cluster_mean <= 1 and 0 <= c.population_mean <= 1


def relative_change(persona: float, everyone: float) -> float | None:
    """``|persona - everyone| / everyone`` in percent, when it means something: both values
    non-negative and everyone's above 0 (a change relative to a value near or across zero, as
    for a z-score, says nothing)."""
    if everyone <= 0 or persona < 0 or persona / everyone > 1e3 or fmt(everyone) == "0":
        return None  # (a base that prints as 0 gives a change no reader can check)
    return abs(persona - everyone) / everyone * 100


def multiple(persona: float, everyone: float) -> float | None:
    """``persona / everyone`` when both are positive and within a factor of 1,000."""
    if everyone <= 0 or persona <= 0 or not 1e-3 <= persona / everyone <= 1e3:
        return None
    if fmt(everyone) == "0" or fmt(persona) == "0":
        return None
    return persona / everyone


def _contrast(
    fid: str, text: str, feature: str, role: str, direction: str, std_diff: float, **rest: Any
) -> Fact:
    """A contrast fact: how every kind of contrast names its feature, role and direction."""
    return Fact(
        id=fid,
        kind="contrast",
        text=text,
        feature=clean(feature),
        label=humanise(feature),
        role=role,
        direction=direction,
        std_diff=std_diff,
        **rest,
    )


def withheld_fact(fid: str, c: Contrast, min_cell: int) -> Fact:
    """A contrast of a persona smaller than ``min_cell``: its mean would describe individuals."""
    direction = c.direction if abs(c.std_diff) >= SAME_STD_DIFF else "same"
    said = "about the same as" if direction == "same" else f"{direction} than"
    text = (
        f"{quote(c.feature)} ({c.role}): {said} everyone (values withheld: fewer than "
        f"{min_cell} users)."
    )
    return _contrast(
        fid, text, c.feature, c.role, direction, c.std_diff,
        numbers=nums("count", min_cell), withheld=True,
    )  # fmt: skip


def contrast_fact(fid: str, c: Contrast) -> Fact:
    cm, pm, sd = c.cluster_mean, c.population_mean, c.std_diff
    rate = is_rate(c)
    year = is_year(c.feature) and 1000 <= abs(pm) < 10_000  # "1973 vs 1970" is no change
    direction = c.direction if abs(sd) >= SAME_STD_DIFF else "same"
    numbers = nums("value", cm, pm) + nums("sd", abs(sd))
    if rate:
        numbers += nums("share", cm * 100, pm * 100)  # a rate is written as a percentage
        text = (
            f"{quote(c.feature)} ({c.role}, a 0-1 rate): {fmt_pct(cm)} of this persona vs "
            f"{fmt_pct(pm)} of everyone (means {fmt(cm)} vs {fmt(pm)}); "
        )
    else:
        if _IN_PERCENT.search(c.feature):
            numbers += nums("share", cm, pm)  # the column is in percent already
        text = (
            f"{quote(c.feature)} ({c.role}): persona mean {fmt(cm, year=year)} vs everyone "
            f"{fmt(pm, year=year)}; "
        )
    if direction == "same":
        text += "about the same as everyone."
    else:
        parts = []
        ratio = None if year else multiple(cm, pm)
        change = None if year else relative_change(cm, pm)
        # A relative change of a rate is true but misleading next to its value ("84% higher"
        # for 0.84 vs 0.0728 is +1,055%): rates are said in points, the change is only allowed.
        numbers += nums("relative", change) + nums("multiple", ratio)
        if rate:
            numbers += nums("points", abs(cm - pm) * 100)
            parts.append(f"{fmt_points(abs(cm - pm) * 100)} points {direction}")
        elif change is not None:
            parts.append(f"{fmt_diff(change)}% {direction}")
        if ratio is not None:
            parts.append(f"{fmt(ratio)}× everyone's {'rate' if rate else 'mean'}")
        above = "above" if direction == "higher" else "below"
        parts.append(f"{fmt(abs(sd))} standard deviations {above}")
        text += ", ".join(parts) + "."
    return _contrast(
        fid, text, c.feature, c.role, direction, sd, numbers=numbers, rate=rate, contrast=c
    )


def fmt_points(points: float) -> str:
    """Percentage points with one decimal (two below 1): ``76.66`` -> ``76.7``."""
    text = f"{points:.1f}" if abs(points) >= 1 or points == 0 else f"{points:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def category_contrast_fact(fid: str, c: CategoryContrast, verdict: Verdict) -> Fact:
    """One category against everyone, said like a rate: shares, points and a multiple.

    ``verdict``: "over"/"under" when the category passed the two-proportion test with
    Benjamini-Hochberg (``apg.narration.facts.category_verdicts``); otherwise the sheet says
    the difference is not significant and a narrative may not call it over-represented."""
    value = clean(c.value)
    direction = c.direction if abs(c.std_diff) >= SAME_STD_DIFF else "same"
    text = (
        f"{quote(c.feature)} = {quote(value)} ({c.role}, a category): {fmt_pct(c.share)} of "
        f"this persona ({c.count:,} users) vs {fmt_pct(c.population_share)} of everyone; "
    )
    numbers = nums("count", c.count) + nums("value", c.share, c.population_share)
    numbers += nums("share", c.share * 100, c.population_share * 100) + nums("sd", abs(c.std_diff))
    if direction == "same":
        text += "about the same as everyone."
    else:
        points = abs(c.share - c.population_share) * 100
        ratio = multiple(c.share, c.population_share)
        numbers += nums("points", points) + nums("multiple", ratio)
        numbers += nums("relative", relative_change(c.share, c.population_share))
        parts = [f"{fmt_points(points)} points {direction}"]
        if ratio is not None:
            parts.append(f"{fmt(ratio)}× everyone's share")
        above = "above" if direction == "higher" else "below"
        parts.append(f"{fmt(abs(c.std_diff))} standard deviations {above}")
        said = {
            "over": "significantly over-represented",
            "under": "significantly under-represented",
        }
        parts.append(said[verdict] if verdict else "not a significant difference")
        text += ", ".join(parts[:-1]) + f"; {parts[-1]}."
    share = CategoryShare(
        value=value,
        count=c.count,
        share=c.share,
        population_share=c.population_share,
        lift=c.lift or 0.0,
        p_value=c.p_value,
    )
    return _contrast(
        fid,
        text,
        c.feature,
        c.role,
        direction,
        c.std_diff,
        numbers=numbers,
        rate=True,
        category=value,
        categories=[share],
        over_represented=[value] if verdict == "over" else [],
        under_represented=[value] if verdict == "under" else [],
        # The indicator as a 0-1 contrast: its mean is the share.
        contrast=Contrast(
            feature=c.feature,
            role=c.role,
            cluster_mean=c.share,
            population_mean=c.population_share,
            std_diff=c.std_diff,
            direction=c.direction,
            bounded=True,
        ),
    )
