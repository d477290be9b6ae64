"""The offline narrator: deterministic text derived from the fact sheet alone, no network.

The name pairs what sets the persona apart most (a noun from the top contrast) with the next
distinguishing contrast (an adjective): "Catalog-loyal big spender". Only contrasts of at least
a medium effect name a persona (``apg.profiles.significance.nameable``: 0.5 SD, and for a 0-1
rate also 5 points and a 1.5× multiple), one term per concept, in the direction of that
concept's strongest contrast, so a name never says "frequent" of a persona that buys less
often. Goals and frustrations come from rules per feature concept (see ``lexicon``) and cite the
facts they rest on, so offline narratives pass the same grounding check as LLM replies. Every
number is a fact's number; a relative change is the fact's, computed from the two means, and a
0-1 rate is said in points and multiples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from apg.config import NarrationConfig
from apg.narration.base import LlmCall, NarrationContext
from apg.narration.facts import MIN_STD_DIFF, OTHER, Fact, FactSheet, build_fact_sheet, fmt_points
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
from apg.narration.lexicon import Traits, traits
from apg.profiles.narrative import Item, Narrative
from apg.profiles.persona import PersonaProfile
from apg.profiles.significance import nameable

NUMERALS = ("II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")
MIN_LIFT = 1.2  # a demographic category this over-represented is worth a sentence
ITEM_STD_DIFF = 0.3  # a contrast this strong earns its own goal and frustration


def _reading(fact: Fact) -> tuple[str, Traits, bool]:
    return traits(fact.label or fact.feature or "", fact.direction != "lower")


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
    return out


def name_candidates(sheet: FactSheet) -> list[str]:
    """Names from most to least compact: noun of the top contrast, then more adjectives."""
    moving = name_parts(sheet)
    if not moving:
        commerce = any(c for *_, c in _distinct(sheet.contrasts()))
        return ["Typical customer" if commerce else "Typical user"]
    person = "customer" if any(commerce for *_, commerce in moving) else "user"
    top_key, top = moving[0][1], moving[0][2]
    noun = f"{top.noun} {person}" if top_key.startswith("generic:") else top.noun
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
        times = f", {fmt(ratio)}× everyone's rate" if ratio is not None else ""
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
        parts = [f"their {f.label} is {_change(f)}" for f in top]
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
    parts = [f"{f.label}{':' if f.rate else ''} {_change(f)}" for f, *_ in moving]
    text = capitalise("; ".join(parts)) + "."
    return text if len(text) <= MAX_TAGLINE else capitalise(parts[0]) + "."


def _item_group(key: str) -> str:
    return "channel" if key.startswith("channel:") else key


def _items(sheet: FactSheet) -> tuple[list[Item], list[Item]]:
    goals: list[Item] = []
    frustrations: list[Item] = []
    moving = _distinct(sheet.contrasts())
    strong = [m for m in moving if abs(m[0].std_diff or 0) >= ITEM_STD_DIFF]
    done: set[tuple[str, str | None]] = set()
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
        if len(goals) < MAX_ITEMS:
            goals.append(Item(text=f"{t.goal}.", facts=cited))
        if len(frustrations) < MAX_ITEMS:
            frustrations.append(Item(text=f"{t.frustration}.", facts=cited))
    top = sheet.contrasts()[0] if sheet.contrasts() else None
    top_ids = ["F1", top.id] if top else ["F1"]
    about = f" on {top.label}" if top else ""
    fill_goals = [
        Item(text=f"Be served for what they actually do{about}.", facts=top_ids),
        Item(text="Get offers and messages that match their own habits.", facts=["F1"]),
    ]
    fill_frustrations = [
        Item(
            text=f"Experiences designed for the average user rather than for them{about}.",
            facts=top_ids,
        ),
        Item(text="Generic messages that ignore what sets them apart.", facts=["F1"]),
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
            sheet = build_fact_sheet(
                persona,
                n_users=ctx.n_users,
                outliers=ctx.outliers,
                feature_roles=ctx.feature_roles,
                min_cell=self.config.min_cell,
                significance=self.config.significance,
            )
            out.append(draft(sheet, used_names=[*ctx.taken_names, *(n.name for n in out)]))
        return out
