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
- A percentage matches a share on the fact sheet (``0.253`` -> ``25%`` or ``25.3%``), a percent
  difference, a mean between 0 and 1 (a rate), or a value of a column that is itself in percent.
  A plain number never matches a share scaled to a percentage: "25 users" is not "25%".
- Numbers written on the fact sheet itself (in its texts, including column names such as
  ``Spending Score (1-100)`` and category values such as ``1-10``, and in the humanised column
  names, ``AcceptedCmp3`` -> ``accepted campaign 3``) also match.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from apg.narration.facts import FactSheet
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


@dataclass(frozen=True)
class Mention:
    """A number as written in a text, with the values (and tolerances) it can stand for."""

    text: str
    start: int
    readings: tuple[tuple[float, float], ...]
    percent: bool


@dataclass(frozen=True)
class Known:
    """A number on the fact sheet."""

    value: float
    percent: bool
    fact_id: str


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
        suffix = (m.group("suf") or "").strip().lower()
        percent = suffix.startswith(("%", "percent", "per", "pp"))
        readings = [(base, tol)]
        if suffix in _SCALE:
            readings.insert(0, (base * _SCALE[suffix], tol * _SCALE[suffix]))
        out.append(Mention(m.group(0).strip(), m.start(), tuple(readings), percent))
    return out


class NumberIndex:
    """Every number a reply may use for one fact sheet."""

    def __init__(self, sheet: FactSheet) -> None:
        known: list[Known] = []
        # The persona's id ("P-332d") is named in the prompt: its digits are a label too.
        for mention in extract(sheet.persona_id):
            known += [
                Known(v, pct, "persona id") for v, _ in mention.readings for pct in (False, True)
            ]
        for fact in sheet.facts:
            known += [Known(abs(v), False, fact.id) for v in fact.values if math.isfinite(v)]
            known += [Known(abs(p), True, fact.id) for p in fact.percents if math.isfinite(p)]
            for mention in extract(fact.text):
                known += [Known(v, mention.percent, fact.id) for v, _ in mention.readings]
            # Numbers inside names ("Spending Score (1-100)", "2 %", "1-10") are labels: either way.
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
        return self.known if mention.percent else [k for k in self.known if not k.percent]

    def find(self, mention: Mention) -> Known | None:
        """The first fact number that ``mention`` is a rounding of, if any."""
        readings = mention.readings if self.thousands else mention.readings[:1]
        for value, tol in readings:
            for k in self._pool(mention):
                if abs(value - k.value) <= tol * (1 + 1e-9) + 1e-9 * max(1.0, k.value):
                    return k
        return None

    def closest(self, mention: Mention) -> Known | None:
        pool = [k for k in self.known if k.percent == mention.percent] or self._pool(mention)
        if not pool:
            return None
        value = mention.readings[-1][0]
        return min(pool, key=lambda k: abs(value - k.value) / max(abs(k.value), 1e-9))


def describe(known: Known) -> str:
    return f"{fmt(known.value)}{'%' if known.percent else ''} ({known.fact_id})"
