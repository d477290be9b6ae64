"""The offline narrator: deterministic text derived from the fact sheet alone, no network.

The name pairs what sets the persona apart most (a noun from the top contrast) with the next
distinguishing contrast (an adjective): "Catalog-loyal big spender". Only contrasts of at least
a medium effect name a persona (``apg.profiles.significance.nameable``: 0.5 SD, and for a 0-1
rate also 5 points and a 1.5× multiple), one term per concept, in the direction of that
concept's strongest contrast, so a name never says "frequent" of a persona that buys less
often. Goals and frustrations come from rules per feature concept (see ``lexicon``) and cite the
facts they rest on, so offline narratives pass the same grounding check as LLM replies. Where
the lexicon has no words for what a contrast means to a person (an unknown column, a category,
a concept whose reason is not in the data) the item states the evidence instead ("Spends 187%
more on wines than everyone (871.7 vs 303.9)"). Every number is a fact's number; a relative
change is the fact's, computed from the two means, and a 0-1 rate or a category's share is said
in points and multiples. A category names a persona only when it is significantly
over-represented (and strong enough, as any contrast).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from apg.config import NarrationConfig
from apg.narration.base import LlmCall, NarrationContext, sheet_for
from apg.narration.facts import MIN_STD_DIFF, OTHER, Fact, FactSheet, fmt_points
from apg.narration.grounding import (
    MAX_ITEMS,
    MAX_NAME_CHARS,
    MAX_NAME_WORDS,
    MAX_TAGLINE,
    MIN_ITEMS,
    check,
    name_key,
)
from apg.narration.labels import capitalise, fmt, fmt_diff, fmt_pct, is_year
from apg.narration.lexicon import UNNAMEABLE, Traits, category_traits, traits
from apg.profiles.narrative import Item, Narrative
from apg.profiles.persona import PersonaProfile
from apg.profiles.significance import nameable

NUMERALS = ("II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")
MIN_LIFT = 1.2  # a demographic category this over-represented is worth a sentence
ITEM_STD_DIFF = 0.3  # a contrast this strong earns its own goal and frustration
# Concepts that describe who people are rather than what they do: a name takes its noun from
# a behaviour when it has one ("Lower-income big spender", not "Big-spending lower-income
# customer").
ADJECTIVE_FIRST = frozenset({"income", "tenure"})


def _reading(fact: Fact) -> tuple[str, Traits, bool]:
    label, higher = fact.label or fact.feature or "", fact.direction != "lower"
    if fact.category is not None:
        return category_traits(label, fact.category, higher)
    return traits(label, higher)


def _distinct(facts: list[Fact]) -> list[tuple[Fact, str, Traits, bool]]:
    """Contrasts that move, one per concept and direction, strongest first."""
    out, seen = [], set()
    for fact in facts:
        if fact.direction == "same" or abs(fact.std_diff or 0) < MIN_STD_DIFF:
            continue
        key, t, commerce = _reading(fact)
        if (key, fact.direction) not in seen:
            seen.add((key, fact.direction))
            out.append((fact, key, t, commerce))
    return out


def nameable_fact(fact: Fact) -> bool:
    """A contrast strong enough to name a persona (``significance.nameable``)."""
    c = fact.contrast
    if fact.direction not in ("higher", "lower") or fact.std_diff is None:
        return False
    if fact.category is not None and (
        fact.direction != "higher"
        or fact.category not in fact.over_represented
        or fact.category.casefold() in UNNAMEABLE
    ):
        return False  # a category names a persona only when significantly over-represented
    rate = (c.cluster_mean, c.population_mean) if c is not None and fact.rate else None
    return nameable(fact.std_diff, rate)


def name_parts(sheet: FactSheet) -> list[tuple[Fact, str, Traits, bool]]:
    """The contrasts a name is made of, strongest first: nameable ones, one per concept,
    in the direction of the concept's strongest contrast (a weaker one the other way, say
    fewer store but more web purchases of the same concept, is left out of the name)."""
    out, seen = [], set()
    for fact in sorted(sheet.contrasts(), key=lambda f: -abs(f.std_diff or 0)):
        key, t, commerce = _reading(fact)
        if key in seen or fact.direction == "same":
            continue
        seen.add(key)  # the strongest of a concept decides its direction, nameable or not
        if nameable_fact(fact):
            out.append((fact, key, t, commerce))
    # Who they are (income, tenure) is said as an adjective when a behaviour gives the noun.
    doing = [m for m in out if m[1] not in ADJECTIVE_FIRST]
    if out and out[0][1] in ADJECTIVE_FIRST and doing:
        out.remove(doing[0])
        out.insert(0, doing[0])
    return out


def name_candidates(sheet: FactSheet) -> list[str]:
    """Names from most to least compact: noun of the top contrast, then more adjectives."""
    moving = name_parts(sheet)
    if not moving:
        commerce = any(c for *_, c in _distinct(sheet.contrasts()))
        return ["Typical customer" if commerce else "Typical user"]
    person = "customer" if any(commerce for *_, commerce in moving) else "user"
    top_key, top = moving[0][1], moving[0][2]
    bare = top_key.startswith(("generic:", "category:"))
    noun = f"{top.noun} {person}" if bare else top.noun
    adjectives = [t.adjective for _, _, t, _ in moving[1:]]
    names = [capitalise(noun)] if not adjectives else []
    for n in range(1, len(adjectives) + 1):
        parts = [adjectives[n - 1]] + [_lower_first(a) for a in reversed(adjectives[: n - 1])]
        names.append(capitalise(" ".join([*parts, noun])))
    fits = [n for n in names if len(n.split()) <= MAX_NAME_WORDS and len(n) <= MAX_NAME_CHARS]
    return fits or [capitalise(noun)]


def _lower_first(word: str) -> str:
    """``Catalog-loyal`` -> ``catalog-loyal``; acronyms (``CPU-heavy``) stay."""
    return word[:1].lower() + word[1:] if word[1:2].islower() else word


def pick_name(candidates: list[str], used: Iterable[str]) -> str:
    """The first candidate not taken; then the first with a numeral."""
    taken = {name_key(n) for n in used}
    for name in candidates:
        if name_key(name) not in taken:
            return name
    for numeral in NUMERALS + tuple(str(i) for i in range(11, 1000)):
        name = f"{candidates[0]} {numeral}"
        if name_key(name) not in taken:
            return name
    raise AssertionError("unreachable: a thousand personas share one name")


def _change(fact: Fact) -> str:
    """How a contrast differs from everyone, with the fact's own numbers: a 0-1 rate in points
    and a multiple ("84% vs 7.3% of everyone (76.7 points higher, 11.5× everyone's rate)"),
    anything else as the relative change computed from the two means ("150% higher (150 vs
    60)"), never a value printed as a change."""
    c = fact.contrast
    if c is None or fact.withheld:
        return "about the same as everyone's" if fact.direction == "same" else str(fact.direction)
    year = is_year(c.feature) and 1000 <= abs(c.population_mean) < 10_000
    if fact.rate:
        cm, pm = c.cluster_mean, c.population_mean
        if fact.direction == "same":
            return f"about the same as everyone's ({fmt_pct(cm)})"
        ratio = fact.number("multiple")
        of = "share" if fact.category is not None else "rate"
        times = f", {fmt(ratio)}× everyone's {of}" if ratio is not None else ""
        points = fmt_points(abs(cm - pm) * 100)
        return (
            f"{fmt_pct(cm)} vs {fmt_pct(pm)} of everyone ({points} points {fact.direction}{times})"
        )
    if fact.direction == "same":
        return f"about the same as everyone's ({fmt(c.cluster_mean, year=year)})"
    change = fact.number("relative")
    diff = f"{fmt_diff(change)}% {fact.direction}" if change is not None else str(fact.direction)
    return f"{diff} ({fmt(c.cluster_mean, year=year)} vs {fmt(c.population_mean, year=year)})"


def _summary(sheet: FactSheet) -> str:
    text = (
        f"{sheet.size:,} users ({fmt_pct(sheet.share)} of the {sheet.n_users:,} clustered) "
        f"share this profile."
    )
    top = sheet.contrasts()[:3]
    if top:
        parts = [_clause(f) for f in top]
        joined = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        text += f" Compared with everyone, {joined}."
    for fact in sheet.of_kind("demographic"):
        if fact.numeric is not None and fact.numeric.cluster and fact.numeric.population:
            med, pop = fact.numeric.cluster.median, fact.numeric.population.median
            if med is not None and pop is not None:
                year = is_year(fact.feature or "")
                text += (
                    f" Median {fact.label}: {fmt(med, year=year)} "
                    f"(everyone: {fmt(pop, year=year)})."
                )
            continue
        # Only a category that passed the test (fact.over_represented) is called so.
        over = [
            c
            for c in fact.categories
            if c.value in fact.over_represented and c.value != OTHER and c.lift >= MIN_LIFT
        ]
        if over:
            c = over[0]
            text += (
                f' {capitalise(fact.label or "")} "{c.value}" is over-represented: '
                f"{fmt_pct(c.share)} of them vs {fmt_pct(c.population_share)} of everyone."
            )
    return text


def _tagline(sheet: FactSheet) -> str:
    moving = _distinct(sheet.contrasts())[:2]
    if not moving:
        return "Close to the average user on every measured feature."
    parts = [
        f'{f.label} "{f.category}": {_change(f)}'
        if f.category is not None
        else f"{f.label}{':' if f.rate else ''} {_change(f)}"
        for f, *_ in moving
    ]
    text = capitalise("; ".join(parts)) + "."
    return text if len(text) <= MAX_TAGLINE else capitalise(parts[0]) + "."


def _clause(fact: Fact) -> str:
    """A contrast as a clause of the summary: "their spend on wines is 187% higher (871.7 vs
    303.9)", "84% have contract "Month-to-month" vs 55% of everyone (...)"."""
    c = fact.contrast
    if fact.category is not None and c is not None and not fact.withheld:
        if fact.direction == "same":
            return f'{fmt_pct(c.cluster_mean)} have {fact.label} "{fact.category}", as everyone'
        return f'{fmt_pct(c.cluster_mean)} have {fact.label} "{fact.category}"{_share_tail(fact)}'
    return f"their {fact.label} is {_change(fact)}"


def _share_tail(fact: Fact) -> str:
    """ ", vs 55% of everyone (34 points higher, 1.62× everyone's share)"."""
    c = fact.contrast
    assert c is not None
    points = fmt_points(abs(c.cluster_mean - c.population_mean) * 100)
    ratio = fact.number("multiple")
    times = f", {fmt(ratio)}× everyone's share" if ratio is not None else ""
    return f" vs {fmt_pct(c.population_mean)} of everyone ({points} points {fact.direction}{times})"


_SPEND_ON = re.compile(r"^(?:amount |money )?spen[dt] on (?P<what>.+)$", re.IGNORECASE)
_PURCHASES = re.compile(r"^(?:number of )?(?P<what>(?:\w+ )?purchases)$", re.IGNORECASE)
_VISITS = re.compile(r"^(?:number of )?(?P<what>web|site|website|app|store) visits\b", re.I)
_VISITED = {"web": "the web site", "site": "the site", "website": "the web site"}


def evidence(fact: Fact) -> str:
    """What a contrast says, as a sentence a reader can check against the fact sheet: the
    fact's own numbers (a relative change computed from the two means, a rate or share in
    points and a multiple), with a verb where the column's name gives one."""
    c = fact.contrast
    if c is None or fact.withheld or fact.direction == "same":
        return capitalise(_clause(fact)) + "."
    if fact.category is not None:
        return capitalise(_clause(fact)) + "."
    change = fact.number("relative")
    if not fact.rate and change is not None and fact.direction in ("higher", "lower"):
        year = is_year(c.feature) and 1000 <= abs(c.population_mean) < 10_000
        values = f"({fmt(c.cluster_mean, year=year)} vs {fmt(c.population_mean, year=year)})"
        up = fact.direction == "higher"
        label = fact.label or ""
        if m := _SPEND_ON.match(label):
            more = "more" if up else "less"
            return f"Spends {fmt_diff(change)}% {more} on {m['what']} than everyone {values}."
        if m := _PURCHASES.match(label):
            more = "more" if up else "fewer"
            return f"Makes {fmt_diff(change)}% {more} {m['what']} than everyone {values}."
        if m := _VISITS.match(label):
            where = _VISITED.get(m["what"].lower(), f"the {m['what'].lower()}")
            more = "more" if up else "less"
            return f"Visits {where} {fmt_diff(change)}% {more} often than everyone {values}."
        said = f"{fmt_diff(change)}% {fact.direction}"
        return f"Their {label} is {said} than everyone's {values}."
    return capitalise(_clause(fact)) + "."


def _item_group(key: str) -> str:
    return "channel" if key.startswith("channel:") else key


def _items(sheet: FactSheet) -> tuple[list[Item], list[Item]]:
    """One goal and one frustration per strong concept and direction, from the lexicon; where
    it has no words (``None``), the evidence. Short lists are filled with the evidence of the
    next contrasts, then two plain lines citing the size fact."""
    goals: list[Item] = []
    frustrations: list[Item] = []
    moving = _distinct(sheet.contrasts())
    strong = [m for m in moving if abs(m[0].std_diff or 0) >= ITEM_STD_DIFF]
    done: set[tuple[str, str | None]] = set()
    stated: set[str] = set()  # facts whose evidence is already an item

    def add(items: list[Item], text: str | None, fact: Fact, cited: list[str]) -> None:
        if len(items) >= MAX_ITEMS or (text is None and fact.id in stated):
            return
        if text is None:
            stated.add(fact.id)
            cited = [fact.id]
        items.append(Item(text=f"{text}." if text else evidence(fact), facts=cited))

    for fact, key, t, _ in strong if len(strong) >= MIN_ITEMS else moving[:MIN_ITEMS]:
        group = _item_group(key)
        if (group, fact.direction) in done:
            continue  # one item for all channels, say, not one per channel
        done.add((group, fact.direction))
        cited = [
            f.id
            for f in sheet.contrasts()
            if f.direction == fact.direction and _item_group(_reading(f)[0]) == group
        ]
        weak = abs(fact.std_diff or 0) < ITEM_STD_DIFF
        if (t.goal is None and t.frustration is None) or weak:
            # The evidence once: a higher value among the goals, a lower one among the
            # frustrations ("Visits the web site 40% less often than everyone"). A contrast
            # too weak for its own item is stated, not read into a need: income 9% below
            # everyone's is not "a limited budget".
            add(goals if fact.direction == "higher" else frustrations, None, fact, cited)
        else:
            add(goals, t.goal, fact, cited)
            add(frustrations, t.frustration, fact, cited)
    for items, want in ((goals, "higher"), (frustrations, "lower")):
        # The evidence of the next contrasts: the list's own direction first.
        for fact, *_ in sorted(moving, key=lambda m: m[0].direction != want):
            if len(items) >= MIN_ITEMS:
                break
            if fact.id not in stated:
                add(items, None, fact, [fact.id])
    fill_goals = [Item(text="Get offers and messages that match their own habits.", facts=["F1"])]
    fill_goals.append(
        Item(text="Be treated as the group they are, not as an average.", facts=["F1"])
    )
    fill_frustrations = [
        Item(text="Generic messages that ignore what sets them apart.", facts=["F1"]),
        Item(text="Experiences designed for the average user rather than for them.", facts=["F1"]),
    ]
    for items, fill in ((goals, fill_goals), (frustrations, fill_frustrations)):
        for item in fill:
            if len(items) < MIN_ITEMS:
                items.append(item)
    return goals, frustrations


def draft(
    sheet: FactSheet,
    *,
    used_names: Iterable[str] = (),
    source: str = "offline",
    reason: str | None = None,
) -> Narrative:
    """The offline narrative of one fact sheet, its name distinct from ``used_names``."""
    used = list(used_names)
    goals, frustrations = _items(sheet)
    narrative = Narrative(
        name=pick_name(name_candidates(sheet), used),
        tagline=_tagline(sheet),
        summary=_summary(sheet),
        goals=goals,
        frustrations=frustrations,
        source=source,  # type: ignore[arg-type]
        reason=reason,
        facts=sheet.as_dict(),
    )
    validation = check(narrative, sheet, avoid_names=used)
    narrative.validation = validation.model_dump()
    return narrative


class OfflineNarrator:
    """``narration.client: offline``: deterministic, no network, no LLM calls."""

    def __init__(
        self,
        config: NarrationConfig | None = None,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or NarrationConfig.model_validate({})
        self.progress = progress
        self.calls: list[LlmCall] = []

    def narrate(self, personas: list[PersonaProfile], ctx: NarrationContext) -> list[Narrative]:
        out: list[Narrative] = []
        for persona in personas:
            sheet = sheet_for(persona, ctx, self.config.min_cell, self.config.significance)
            out.append(draft(sheet, used_names=[*ctx.taken_names, *(n.name for n in out)]))
        return out
