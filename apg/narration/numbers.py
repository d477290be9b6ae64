"""Numbers in text, and whether each one matches a number on the fact sheet.

Rules (documented in docs/narration.md):

- A number is a run of digits with optional thousands separators (``1,234``) and decimals,
  optionally followed by ``%``/``percent``/``pp``, ``k``/``thousand``, ``M``/``million`` or
  ``bn``/``billion``. Currency signs are ignored; signs are ignored (facts are compared by size).
- Digits glued to a letter (``F3``, ``Q3``, ``MP3``) are labels, not numbers; ordinals (``1st``,
  ``25th``) are ranks, not data, and are not checked; decades of age (``30s``) are checked
  against the age facts by ``claims`` instead.
- A number written with ``d`` decimals matches a fact value ``v`` when ``|n - v| <= 0.5 * 10^-d``
  (it is ``v`` rounded to that precision). Whole numbers of 1,000 or more ending in zeros with at
  least two significant digits (``45,000``) may be rounded to their last non-zero digit; ``1.2k``
  is read as 1,200 give or take 50 (and also as 1.2 when a column's name says it is in
  thousands, such as ``Annual Income (k$)``).
- Every number has a **kind**, and a number in a reply matches only fact numbers of its kind.
  A mention's kind comes from its context: ``X% higher/lower/more/less/above/below``, ``a X%
  rise``, ``up X%``, ``+X%`` -> a relative change; ``X×``, ``X times``, ``X-fold``, ``lift X`` -> a
  multiple; ``X points``, ``X pp``, ``X percentage points`` -> points; ``X standard deviations``,
  ``X SD`` -> standard deviations; any other ``X%`` -> a share (a category's share, a rate
  written as a percentage such as ``0.253`` -> ``25.3%``, or the mean of a column that is in
  percent); any other plain number -> a value or a count. So "84% higher" fails when the fact's
  relative change is 1,055% even though a rate of 0.84 is on the sheet, and "25 users" is not
  "25%". Numbers in the sheet's texts are read with the same rules.
- Numbers written on the fact sheet itself (in its texts, including column names such as
  ``Spending Score (1-100)`` and category values such as ``1-10``, and in the humanised column
  names, ``AcceptedCmp3`` -> ``accepted campaign 3``) also match, whatever their kind.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from apg.narration.facts import PERCENT_KINDS, FactSheet
from apg.narration.labels import fmt

_NUMBER = re.compile(
    r"(?<![\w.])(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?"
    r"(?P<ord>(?:st|nd|rd|th|s|-somethings?)\b)?"
    r"(?P<suf>\s?%|\s?(?:percent|per\s?cent|percentage\s+points?|pp)\b|(?:k|K)\b|(?:m|M|mn)\b"
    r"|(?:bn|B)\b|\s(?:thousand|million|billion)\b)?"
)
_THOUSANDS = re.compile(r"k\$|\(k\)|\bk\b|thousand|000s", re.IGNORECASE)
_SCALE = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "mn": 1e6,
    "million": 1e6,
    "bn": 1e9,
    "b": 1e9,
    "billion": 1e9,
}


# What a number in a reply is, and which kinds of fact numbers it may match.
MentionKind = Literal["relative", "points", "multiple", "sd", "share", "value"]
ALLOWED: dict[str, frozenset[str]] = {
    "relative": frozenset({"relative"}),
    "points": frozenset({"points"}),
    "multiple": frozenset({"multiple"}),
    "sd": frozenset({"sd"}),
    "share": frozenset({"share"}),
    "value": frozenset({"value", "count"}),
}
KIND_NAMES = {
    "relative": "a relative change",
    "points": "a difference in percentage points",
    "multiple": "a multiple",
    "sd": "a number of standard deviations",
    "share": "a share",
    "value": "a value",
}
ANY = "any"  # numbers inside labels match a mention of any kind
_I = re.IGNORECASE
_RELATIVE_AFTER = re.compile(
    r"^[\s-]*(?:higher|lower|more|less|fewer|greater|smaller|bigger|larger|above|below|up\b|"
    r"down\b|increase|decrease|rise|rising|drop|fall|gain|jump|boost|decline|reduction|"
    r"ahead|behind|lift|uplift)",
    _I,
)
_RELATIVE_BEFORE = re.compile(
    r"(?:\b(?:up|down|higher|lower|more|less|increased?|decreased?|increases|decreases|"
    r"rises?|rose|drops?|dropped|fell|falls?|grew|growth|lift|uplift|change|difference)\s+"
    r"(?:by\s+|of\s+)?(?:about\s+|around\s+|roughly\s+|nearly\s+|almost\s+|some\s+|"
    r"over\s+|approximately\s+|an?\s+)?|(?:^|[\s(])[+\u2212])$",
    _I,
)
# "24 times a year" counts events (a value); "3 times as often" is a multiple.
_MULTIPLE_AFTER = re.compile(
    r"^\s*(?:×|x\b|times\b(?!\s+(?:a|an|per|each|every|in|over|during|since)\b)|-?fold\b)", _I
)
_MULTIPLE_BEFORE = re.compile(r"\b(?:lift|multiple|ratio)(?:\s+of)?\s*[:=]?\s*$", _I)
_POINTS_AFTER = re.compile(r"^\s*(?:percentage\s+)?(?:points?|pts?)\b", _I)
_SD_AFTER = re.compile(r"^\s*(?:standard\s+deviations?|std\.?\s*devs?|sds?\b|σ|sigma\b)", _I)
_SHARE_AFTER = re.compile(r"^\s*of\b", _I)


def classify(text: str, start: int, end: int, suffix: str) -> MentionKind:
    """The kind of the number written at ``text[start:end]`` (``suffix``: its unit, lowered)."""
    after, before = text[end : end + 40], text[max(0, start - 40) : start]
    percent = suffix.startswith(("%", "percent", "per"))
    if suffix.startswith(("pp", "percentage")) or _POINTS_AFTER.match(after):
        return "points"
    if _SD_AFTER.match(after):
        return "sd"
    if _MULTIPLE_AFTER.match(after) or (not percent and _MULTIPLE_BEFORE.search(before)):
        return "multiple"
    if percent:
        if _RELATIVE_AFTER.match(after) or _RELATIVE_BEFORE.search(before):
            return "relative"
        return "share"
    return "value"


@dataclass(frozen=True)
class Mention:
    """A number as written in a text, with the values (and tolerances) it can stand for."""

    text: str
    start: int
    readings: tuple[tuple[float, float], ...]
    percent: bool
    kind: MentionKind = "value"


@dataclass(frozen=True)
class Known:
    """A number on the fact sheet."""

    value: float
    percent: bool
    fact_id: str
    kind: str = ANY  # a fact number kind (apg.narration.facts.NumberKind) or ANY


def extract(text: str) -> list[Mention]:
    out = []
    for m in _NUMBER.finditer(text):
        ordinal = m.group("ord")
        if ordinal and (ordinal != "s" or re.fullmatch(r"[1-9]0", m.group("int"))):
            continue  # a rank (1st, 25th) or a decade of age (30s: checked by claims)
        digits, decimals = m.group("int").replace(",", ""), m.group("dec") or ""
        base = float(f"{digits}.{decimals}" if decimals else digits)
        tol = 0.5 * 10 ** -len(decimals)
        zeros = len(digits) - len(digits.rstrip("0"))
        if not decimals and base >= 1000 and zeros and len(digits) - zeros >= 2:
            tol = 0.5 * 10**zeros
        suffix = " ".join((m.group("suf") or "").lower().split())
        percent = suffix.startswith(("%", "percent", "per", "pp"))
        readings = [(base, tol)]
        if suffix in _SCALE:
            readings.insert(0, (base * _SCALE[suffix], tol * _SCALE[suffix]))
        kind = classify(text, m.start(), m.end(), suffix)
        out.append(Mention(m.group(0).strip(), m.start(), tuple(readings), percent, kind))
    return out


class NumberIndex:
    """Every number a reply may use for one fact sheet, by kind."""

    def __init__(self, sheet: FactSheet) -> None:
        known: list[Known] = []
        # The persona's id ("P-332d") is named in the prompt: its digits are a label too.
        for mention in extract(sheet.persona_id):
            known += [
                Known(v, pct, "persona id") for v, _ in mention.readings for pct in (False, True)
            ]
        for fact in sheet.facts:
            known += [
                Known(abs(n.value), n.kind in PERCENT_KINDS, fact.id, n.kind)
                for n in fact.numbers
                if math.isfinite(n.value)
            ]
            for mention in extract(fact.text):
                for kind in ALLOWED[mention.kind]:
                    known += [
                        Known(v, kind in PERCENT_KINDS, fact.id, kind) for v, _ in mention.readings
                    ]
            # Numbers inside names ("Spending Score (1-100)", "2 %", "1-10") are labels: any kind.
            names = " ".join(
                [fact.feature or "", fact.label or "", *(c.value for c in fact.categories)]
            )
            for mention in extract(names):
                known += [
                    Known(v, pct, fact.id) for v, _ in mention.readings for pct in (False, True)
                ]
        self.known = known
        # "61k" may mean 61 when a column is in thousands ("Annual Income (k$)").
        self.thousands = any(f.feature and _THOUSANDS.search(f.feature) for f in sheet.facts)

    def _pool(self, mention: Mention) -> list[Known]:
        allowed = ALLOWED[mention.kind]
        return [
            k
            for k in self.known
            if k.kind in allowed or (k.kind == ANY and k.percent == mention.percent)
        ]

    def find(self, mention: Mention) -> Known | None:
        """The first fact number of the mention's kind that ``mention`` is a rounding of."""
        readings = mention.readings if self.thousands else mention.readings[:1]
        pool = self._pool(mention)
        for value, tol in readings:
            for k in pool:
                if abs(value - k.value) <= tol * (1 + 1e-9) + 1e-9 * max(1.0, k.value):
                    return k
        return None

    def closest(self, mention: Mention) -> Known | None:
        """The nearest fact number of the mention's kind (for the hint in a violation)."""
        pool = [k for k in self._pool(mention) if k.kind != ANY]
        if not pool:
            return None
        value = mention.readings[-1][0]
        return min(pool, key=lambda k: abs(value - k.value) / max(abs(k.value), 1e-9))


def describe(known: Known) -> str:
    return f"{fmt(known.value)}{'%' if known.percent else ''} ({known.fact_id})"
