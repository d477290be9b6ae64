"""Whether a carried narrative's numbers still hold on this run's fact sheet.

A persona that continues into a new run keeps the narrative of the run that drafted it, numbers
and all ("842 users, 29.9%" when the persona now has 891 users, 29.7%). :func:`stale_numbers`
checks every number in the text a reader sees (name, tagline, summary, goals, frustrations,
quote) against the new sheet:

1. The number is traced to the fact it came from on the narrative's own fact sheet
   (``Narrative.facts``, id -> text): the facts an item cites first, then every fact in order.
   A fact's text is split into clauses (at ``;``, ``:``, ``,`` and sentence ends) and each number
   is keyed by its clause with the numbers masked and direction words (higher/lower, above/below)
   dropped, so ``'Income' (behavioral)`` or ``This persona has # users`` name the same fact in
   any run, and ``persona mean #`` or ``'Month-to-month' #%`` the same number within it,
   whatever the fact's id (ids follow the order of the contrasts, which changes between runs).
2. The old fact maps to the new fact with the same leading clause (the same id first). The
   number holds when that new fact still states it (``apg.narration.numbers`` rules), and is
   stale otherwise, with the new fact's number in the same place as its new value (``None``
   when the fact no longer states one, or no longer exists).
3. A number traced to no old fact holds when the new sheet states it anywhere; otherwise it is
   stale with neither value known.

A narrative whose fact sheet is exactly the new one was drafted from these facts: nothing in it
is stale. :func:`refresh` writes the new values into a copy (used only for unreviewed drafts
apg wrote: approved or edited text never changes silently).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from apg.narration.facts import Fact, FactSheet
from apg.narration.numbers import Mention, NumberIndex, extract
from apg.profiles.narrative import Item, Narrative
from apg.profiles.persona import PersonaProfile

_CLAUSE_END = re.compile(r"[;:,]\s+|\.\s+|\.$")
_DIRECTION = re.compile(r"\b(?:higher|lower|above|below|more|less|fewer|same)\b", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_NUMBER_PART = re.compile(r"(?P<num>\d[\d,]*(?:\.\d+)?)(?P<suf>.*)", re.DOTALL)
TEXT_FIELDS = ("name", "tagline", "summary", "quote")
ITEM_FIELDS = ("goals", "frustrations")


@dataclass(frozen=True)
class Stale:
    """A number in a narrative that this run's facts no longer support."""

    field: str  # name, tagline, summary, quote, goals[1], frustrations[2] (1-based)
    text_number: str  # as the narrative writes it: "842", "29.9%"
    old_value: str | None  # the old fact's number as its text had it; None: not traced
    new_value: str | None  # the new fact's number in the same place; None: no longer stated
    fact_id: str | None  # the fact on the new sheet; None: the fact is gone
    old_fact_id: str | None = None  # the fact on the narrative's own sheet
    start: int = 0  # where the number starts in the field's text
    replacement: str | None = None  # the number rewritten with the new value, as the text would

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stale:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        """``842 → 891 (summary)``."""
        new = self.new_value if self.new_value is not None else "no longer on the fact sheet"
        return f"{self.text_number} → {new} ({self.field})"


@dataclass(frozen=True)
class _Anchor:
    """A number as written in a fact's text, and where it stands in that text."""

    fact_id: str
    key: tuple[str, int, int]  # clause template, its occurrence in the fact, index in the clause
    text: str
    value: float
    tol: float
    percent: bool
    kind: str | None = None  # what the number is (apg.narration.numbers: relative, share, ...)


def _template(clause: str, mentions: list[Mention]) -> str:
    out, pos = [], 0
    for m in mentions:
        out += [clause[pos : m.start], "#"]
        pos = m.start + len(m.text)
    out.append(clause[pos:])
    masked = _DIRECTION.sub("~", "".join(out))
    return _SPACE.sub(" ", masked).strip().lower()


def _anchors(fact_id: str, text: str) -> tuple[str, list[_Anchor]]:
    """The fact's leading clause (with numbers masked) and its numbers, each keyed."""
    head: str | None = None
    anchors: list[_Anchor] = []
    seen: Counter[str] = Counter()
    pos = 0
    bounds = [m.start() for m in _CLAUSE_END.finditer(text)] + [len(text)]
    for end in bounds:
        clause = text[pos:end]
        nxt = _CLAUSE_END.match(text, end)
        pos = nxt.end() if nxt else end
        if not clause.strip():
            continue
        mentions = extract(clause)
        template = _template(clause, mentions)
        head = template if head is None else head
        occurrence = seen[template]
        seen[template] += 1
        for i, m in enumerate(mentions):
            value, tol = m.readings[0]
            key = (template, occurrence, i)
            kind = getattr(m, "kind", None)
            anchors.append(_Anchor(fact_id, key, m.text, value, tol, m.percent, kind))
    return head or "", anchors


def _close(m: Mention, a: _Anchor) -> bool:
    """Whether ``m`` is a rounding of the number ``a`` (itself rounded, as its text shows),
    and the same kind of number: "84% higher" is never a share of 84%."""
    kind = getattr(m, "kind", None)
    same_kind = kind is None or a.kind is None or kind == a.kind
    targets = []
    if m.percent:
        if same_kind:
            targets.append((a.value, a.tol))
        if not a.percent and 0 <= a.value <= 1 and kind in (None, "share"):
            targets.append((a.value * 100, a.tol * 100))  # a rate written as a percentage
    elif not a.percent and same_kind:  # "25 users" is not "25%"
        targets.append((a.value, a.tol))
    value, tol = m.readings[0]
    # The coarser of the two roundings: "30%" is 29.9%, "29.9" is a fact shown as "30"; "3"
    # is never "4".
    return any(abs(value - v) <= max(tol, t) + 1e-9 * max(1.0, abs(v)) for v, t in targets)


def _rewrite(m: Mention, new: _Anchor) -> str | None:
    """``m`` with ``new``'s value, written as ``m`` was (decimals, separators, suffix)."""
    parts = _NUMBER_PART.fullmatch(m.text)
    if parts is None:
        return None
    num, suffix = parts.group("num"), parts.group("suf")
    value = new.value
    new_num = _NUMBER_PART.fullmatch(new.text)
    shown = len(new_num.group("num").partition(".")[2]) if new_num else 0  # decimals shown
    if m.percent and not new.percent:
        if not 0 <= value <= 1:
            return None
        value *= 100  # the narrative wrote the rate as a percentage
        shown = max(0, shown - 2)
    elif new.percent and not m.percent:
        return None
    base = float(num.replace(",", ""))
    scale = m.readings[0][0] / base if base else 1.0
    value /= scale or 1.0
    # As precise as the narrative was, never more than the fact sheet ("2" is not "2.00").
    decimals = len(num.partition(".")[2])
    if scale == 1.0:
        decimals = min(decimals, shown)
    grouped = "," in num or base < 1000
    text = f"{value:,.{decimals}f}" if grouped else f"{value:.{decimals}f}"
    return text + suffix


class _Sheet:
    """A fact sheet's numbers keyed for mapping, and a number index per fact."""

    def __init__(self, sheet: FactSheet) -> None:
        self.sheet = sheet
        self.heads: dict[str, list[Fact]] = {}
        self.anchors: dict[str, dict[tuple[str, int, int], _Anchor]] = {}
        for fact in sheet.facts:
            head, anchors = _anchors(fact.id, fact.text)
            self.heads.setdefault(head, []).append(fact)
            self.anchors[fact.id] = {a.key: a for a in anchors}
        self.index = NumberIndex(sheet)
        self._per_fact: dict[str, NumberIndex] = {}

    def fact_index(self, fact: Fact) -> NumberIndex:
        if fact.id not in self._per_fact:
            self._per_fact[fact.id] = NumberIndex(self.sheet.model_copy(update={"facts": [fact]}))
        return self._per_fact[fact.id]

    def counterparts(self, fact_id: str, head: str) -> list[Fact]:
        """The new facts an old fact (its id and leading clause) maps to, its own id first."""
        found = self.heads.get(head, [])
        return sorted(found, key=lambda f: f.id != fact_id)


def _fields(narrative: Narrative) -> list[tuple[str, str, list[str]]]:
    """``(field, text, cited fact ids)`` for every text a reader sees."""
    out = [(f, getattr(narrative, f) or "", []) for f in TEXT_FIELDS]
    for key in ITEM_FIELDS:
        items: list[Item] = getattr(narrative, key)
        out += [(f"{key}[{i}]", item.text, list(item.facts)) for i, item in enumerate(items, 1)]
    return out


def fact_map(narrative: Narrative, sheet: FactSheet) -> dict[str, str]:
    """Old fact id (on the narrative's own sheet) -> the id of the same fact on ``sheet``."""
    new = _Sheet(sheet)
    out = {}
    for fid, text in narrative.facts.items():
        head, _ = _anchors(fid, text)
        found = new.counterparts(fid, head)
        if found:
            out[fid] = found[0].id
    return out


def stale_numbers(narrative: Narrative, new_sheet: FactSheet) -> list[Stale]:
    """The numbers of ``narrative`` that ``new_sheet`` no longer supports, in text order."""
    if narrative.facts == new_sheet.as_dict():
        return []  # drafted from these very facts
    new = _Sheet(new_sheet)
    old: dict[str, tuple[str, list[_Anchor]]] = {
        fid: _anchors(fid, text) for fid, text in narrative.facts.items()
    }
    out: list[Stale] = []
    for field, text, cited in _fields(narrative):
        order = [f for f in cited if f in old] + [f for f in old if f not in cited]
        for m in extract(text):
            found = _check(m, [(fid, *old[fid]) for fid in order], new)
            if found is not None:
                out.append(
                    Stale(field=field, text_number=m.text, start=m.start, **found)  # type: ignore[arg-type]
                )
    return out


def _check(
    m: Mention, old: list[tuple[str, str, list[_Anchor]]], new: _Sheet
) -> dict[str, Any] | None:
    """None when ``m`` holds; else what the :class:`Stale` says about it."""
    traced = [(fid, head, a) for fid, head, anchors in old for a in anchors if _close(m, a)]
    if not traced:
        if new.index.find(m) is not None:
            return None
        return {"old_value": None, "new_value": None, "fact_id": None, "old_fact_id": None}
    best: dict[str, Any] | None = None
    for fid, head, a in traced:
        facts = new.counterparts(fid, head)
        # Held against the fact's own numbers, not its text: "2" on the sheet may be 2.00,
        # which "2.49" is not.
        if any(new.fact_index(fact).find(m) is not None for fact in facts):
            return None  # the same fact still says it
        fact = facts[0] if facts else None
        aligned = new.anchors[fact.id].get(a.key) if fact is not None else None
        said = {
            "old_value": a.text,
            "new_value": aligned.text if aligned else None,
            "fact_id": fact.id if fact is not None else None,
            "old_fact_id": fid,
            "replacement": _rewrite(m, aligned) if aligned else None,
        }
        if best is None or (best["new_value"] is None and said["new_value"] is not None):
            best = said
    return best


def _replace(text: str, stale: list[Stale]) -> str:
    for s in sorted(stale, key=lambda s: -s.start):
        assert s.replacement is not None
        text = text[: s.start] + s.replacement + text[s.start + len(s.text_number) :]
    return text


def refresh(narrative: Narrative, new_sheet: FactSheet, stale: list[Stale]) -> Narrative | None:
    """A copy of ``narrative`` with every stale number rewritten from ``new_sheet``, citing the
    new sheet's fact ids; None when some stale number has no new value (a half-current text
    would read as checked: such a narrative is marked stale instead)."""
    if not stale or any(s.replacement is None for s in stale):
        return None
    ids = fact_map(narrative, new_sheet)
    by_field: dict[str, list[Stale]] = {}
    for s in stale:
        by_field.setdefault(s.field, []).append(s)
    update: dict[str, Any] = {}
    for field in TEXT_FIELDS:
        if field in by_field:
            update[field] = _replace(getattr(narrative, field) or "", by_field[field])
    for key in ITEM_FIELDS:
        items = []
        for i, item in enumerate(getattr(narrative, key), 1):
            changes = by_field.get(f"{key}[{i}]", [])
            cited = [ids[f] for f in item.facts if f in ids]
            items.append(Item(text=_replace(item.text, changes), facts=cited))
        update[key] = items
    validation = dict(narrative.validation or {})
    validation["numbers_refreshed"] = "; ".join(s.describe() for s in stale)
    update["validation"] = validation
    update["facts"] = new_sheet.as_dict()
    return narrative.model_copy(update=update, deep=True)


def number_check(
    sheet_of: Callable[[PersonaProfile], FactSheet],
) -> Callable[[PersonaProfile, Narrative, bool], tuple[Narrative | None, dict[str, Any]]]:
    """The check :meth:`apg.profiles.identity.Continuity.check_numbers` runs on each carried
    narrative, with this run's fact sheet of each persona from ``sheet_of``."""

    def check(
        persona: PersonaProfile, narrative: Narrative, may_refresh: bool
    ) -> tuple[Narrative | None, dict[str, Any]]:
        sheet = sheet_of(persona)
        stale = stale_numbers(narrative, sheet)
        refreshed = refresh(narrative, sheet, stale) if may_refresh else None
        if refreshed is not None:
            return refreshed, {"stale": [], "refreshed": [s.to_dict() for s in stale]}
        # The carried text stays exactly as reviewed, even in memory; the reports check it
        # themselves (apg.report.html) and the store keeps this check per run.
        return None, {"stale": [s.to_dict() for s in stale], "refreshed": []}

    return check
