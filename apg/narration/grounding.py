"""The reply a model must give, and the grounding check every narrative passes through.

``check`` runs on every narrative, LLM or offline: cited fact ids exist; 2-5 cited goals and
frustrations; every number matches the fact sheet (see ``numbers``); demographic claims agree
with the demographic facts and protected attributes appear only when the sheet carries them
(see ``claims``); the name is short and not taken; the text does not repeat the instructions;
a low-confidence persona is not called a clear or distinct group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from apg.narration.claims import claim_violations
from apg.narration.facts import FactSheet
from apg.narration.numbers import KIND_NAMES, NumberIndex, describe, extract
from apg.profiles.narrative import Item, Narrative

MIN_ITEMS, MAX_ITEMS = 2, 5
MAX_NAME_CHARS, MAX_NAME_WORDS = 60, 6
MAX_TAGLINE, MAX_SUMMARY, MAX_ITEM = 200, 2000, 400
LEAK_WORDS = 12  # this many consecutive words of the system prompt in a reply is a leak
# Words that present a persona as a well-separated group: not for a low-confidence one.
_CERTAIN = re.compile(
    r"\b(?:(?:distinct(?:ive)?|clear(?:-cut)?|well[- ]defined|sharply defined|clearly defined"
    r"|unmistakable|tight[- ]knit|cohesive)\s+(?:group|segment|persona|cluster|type|kind|cohort"
    r"|audience)s?|clearly (?:defined|distinct|separated?)|stands? (?:clearly )?apart)\b",
    re.IGNORECASE,
)


class ReplyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="One sentence.")
    facts: list[str] = Field(description='Ids of the facts this is based on, e.g. ["F2"].')


class PersonaReply(BaseModel):
    """The JSON object a model must return for one persona."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A short, human persona name (2-5 words), distinct per run.")
    tagline: str = Field(description="One line that sums the persona up.")
    summary: str = Field(description="3-5 sentences using only numbers from the fact sheet.")
    goals: list[ReplyItem] = Field(description="2-5 goals, each citing fact ids.")
    frustrations: list[ReplyItem] = Field(description="2-5 frustrations, each citing fact ids.")
    quote: str | None = Field(default=None, description="An optional short quote, or null.")


class Validation(BaseModel):
    ok: bool
    violations: list[str] = Field(default_factory=list)
    numbers_checked: int = 0
    hypotheses: int = 0  # items kept as hypotheses because they cite no fact


_ID = re.compile(r"^\W*[Ff]?\s*(\d+)\W*$")


def normalise_id(raw: str) -> str:
    """``f3``, ``[F3]``, ``3`` -> ``F3``; anything else is returned as given."""
    m = _ID.match(raw.strip())
    return f"F{int(m.group(1))}" if m else raw.strip()


def to_narrative(reply: PersonaReply) -> Narrative:
    """The reply as a narrative: fact ids normalised, uncited items moved to ``hypotheses``."""
    goals: list[Item] = []
    frustrations: list[Item] = []
    hypotheses: list[Item] = []
    for items, keep in ((reply.goals, goals), (reply.frustrations, frustrations)):
        for item in items:
            ids = list(dict.fromkeys(normalise_id(f) for f in item.facts if f.strip()))
            (keep if ids else hypotheses).append(Item(text=item.text.strip(), facts=ids))
    return Narrative(
        name=" ".join(reply.name.split()),
        tagline=reply.tagline.strip(),
        summary=reply.summary.strip(),
        goals=goals,
        frustrations=frustrations,
        quote=(reply.quote or "").strip() or None,
        hypotheses=hypotheses,
        source="llm",
    )


def name_key(name: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", name.casefold()).split())


def texts(narrative: Narrative) -> list[tuple[str, str]]:
    """Every piece of text in a narrative, with where it is: ``("goals[1]", "...")``."""
    out = [("name", narrative.name), ("tagline", narrative.tagline), ("summary", narrative.summary)]
    if narrative.quote:
        out.append(("quote", narrative.quote))
    for field in ("goals", "frustrations", "hypotheses"):
        out += [(f"{field}[{i}]", item.text) for i, item in enumerate(getattr(narrative, field))]
    return out


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text.casefold())
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def check(
    narrative: Narrative,
    sheet: FactSheet,
    *,
    avoid_names: Iterable[str] = (),
    system_prompt: str | None = None,
) -> Validation:
    """Every rule a narrative must pass; each violation says where and what to change."""
    out: list[str] = []
    ids = sheet.ids()
    known = f"{ids[0]}-{ids[-1]}" if ids else "none"
    name = narrative.name.strip()
    if not name:
        out.append("name: empty; give a short human name")
    elif len(name) > MAX_NAME_CHARS or len(name.split()) > MAX_NAME_WORDS:
        out.append(f"name: {name!r} is too long; use at most {MAX_NAME_WORDS} words")
    taken = {name_key(n) for n in avoid_names}
    if name and name_key(name) in taken:
        out.append(
            f"name: {name!r} is already used by another persona of this run; choose a "
            f"different name (not any of: {', '.join(sorted(set(avoid_names)))})"
        )
    if not narrative.summary.strip():
        out.append("summary: empty")
    for where, text, limit in (
        ("tagline", narrative.tagline, MAX_TAGLINE),
        ("summary", narrative.summary, MAX_SUMMARY),
    ):
        if len(text) > limit:
            out.append(f"{where}: {len(text)} characters; keep it under {limit}")
    for field in ("goals", "frustrations"):
        items: list[Item] = getattr(narrative, field)
        if not MIN_ITEMS <= len(items) <= MAX_ITEMS:
            out.append(
                f"{field}: {len(items)} items cite facts; give {MIN_ITEMS}-{MAX_ITEMS}, "
                f"each citing the fact ids it is based on"
            )
        for i, item in enumerate(items):
            bad = [f for f in item.facts if f not in ids]
            if bad:
                out.append(
                    f"{field}[{i}]: cites {', '.join(bad)}, not on the fact sheet "
                    f"(facts are {known})"
                )
            if len(item.text) > MAX_ITEM:
                out.append(f"{field}[{i}]: too long; one sentence")
    index = NumberIndex(sheet)
    checked = 0
    for where, text in texts(narrative):
        for mention in extract(text):
            checked += 1
            if index.find(mention) is None:
                near = index.closest(mention)
                if mention.kind in ("value", "share"):
                    hint = f" (closest on the fact sheet: {describe(near)})" if near else ""
                    out.append(
                        f"{where}: the number {mention.text!r} matches no fact{hint}; use a "
                        f"fact's value, rounded, or leave the number out"
                    )
                    continue
                # A number said as a change, multiple, points or SDs must be one on the sheet:
                # "84% higher" is not a rate of 0.84.
                kind = KIND_NAMES[mention.kind]
                hint = f" (the closest is {describe(near)})" if near else " (there is none)"
                out.append(
                    f"{where}: the number {mention.text!r} matches no fact: it is written as "
                    f"{kind}, and no fact gives that as {kind}{hint}; use the fact's own "
                    f"numbers as written on the fact sheet, or leave the number out"
                )
        out += claim_violations(where, text, sheet)
        if sheet.confidence == "low" and (found := _CERTAIN.search(text)):
            out.append(
                f"{where}: {found.group(0)!r} presents a low-confidence persona as a clear "
                "group; its members are not reliably set apart (see the size fact), so "
                "describe it as tentative"
            )
    if system_prompt:
        prompt = _shingles(system_prompt, LEAK_WORDS)
        for where, text in texts(narrative):
            if prompt & _shingles(text, LEAK_WORDS):
                out.append(f"{where}: repeats the instructions; describe the persona only")
    return Validation(
        ok=not out, violations=out, numbers_checked=checked, hypotheses=len(narrative.hypotheses)
    )
