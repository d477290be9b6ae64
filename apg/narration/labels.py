"""Text from the data, made safe and readable: sanitising, humanised names, number display.

Column names and category values are untrusted: they may hold control characters, very long
text or instructions aimed at the model. :func:`clean` is applied to every such value before it
reaches a prompt, a narrative or a log line.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata

MAX_LABEL = 60  # characters kept of a column name or category value

# The fact sheet's delimiters; a value must never be able to close the data block.
DATA_OPEN = "<fact_sheet>"
DATA_CLOSE = "</fact_sheet>"
_TAG = re.compile(r"<\s*/?\s*fact_sheet\b[^>]*>?", re.IGNORECASE)

_UNITS = re.compile(r"\s*[\(\[\{][^\)\]\}]*[\)\]\}]")  # "(k$)", "[usd]", "(1-100)"
_SEP = re.compile(r"[_\-./:|]+")
_CAMEL = re.compile(
    r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])"
)
_TRAILING_UNITS = {
    "usd",
    "eur",
    "gbp",
    "pct",
    "perc",
    "$",
    "€",
    "£",
    "k$",
    "cents",
    "sec",
    "secs",
    "ms",
}
_ACRONYMS = {"nps", "csat", "aov", "ltv", "clv", "roi", "arpu", "mrr", "arr", "ces", "sms", "api"}
_ABBREVIATIONS = {
    "avg": "average",
    "num": "number of",
    "nb": "number of",
    "mnt": "spend on",
    "amt": "amount",
    "qty": "quantity",
    "cnt": "count",
    "prods": "products",
    "cmp": "campaign",
    "dt": "date",
    "yrs": "years",
    "mins": "minutes",
    "txn": "transaction",
    "txns": "transactions",
    "freq": "frequency",
    "acct": "account",
    "sess": "session",
}


def clean(value: object, limit: int = MAX_LABEL) -> str:
    """Strip control and format characters and delimiter tags, collapse spaces, cap the length."""
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in str(value))
    text = " ".join(_TAG.sub(" ", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def quote(value: object, limit: int = MAX_LABEL) -> str:
    """A cleaned value as a JSON string literal: visibly data, never an instruction."""
    return json.dumps(clean(value, limit), ensure_ascii=False)


def words(name: object) -> list[str]:
    """The words of a column name: snake, kebab and camel case split, units in brackets dropped."""
    text = _UNITS.sub(" ", clean(name))
    text = _CAMEL.sub(" ", _SEP.sub(" ", text))
    out = [w for w in text.split() if w]
    while len(out) > 1 and out[-1].lower() in _TRAILING_UNITS:
        out.pop()
    return out


def humanise(name: object) -> str:
    """``MntWines`` -> ``spend on wines``; ``Annual Income (k$)`` -> ``annual income``;
    ``Year_Birth`` -> ``birth year``."""
    out: list[str] = []
    found = words(name)
    # A name written all in capitals (CASH_ADVANCE_FREQUENCY) is shouting, not acronyms.
    shouting = [w for w in found if any(ch.isalpha() for ch in w)]
    caps = bool(shouting) and all(w.isupper() for w in shouting)
    caps = caps and (len(shouting) > 1 or len(shouting[0]) > 4)
    for word in found:
        lower = word.lower()
        if caps and lower not in _ACRONYMS and lower not in _ABBREVIATIONS:
            out.append(lower)
            continue
        if lower in _ABBREVIATIONS:
            out.append(_ABBREVIATIONS[lower])
        elif lower in _ACRONYMS:
            out.append(lower.upper())
        elif word.isupper() and len(word) > 1:
            out.append(word)  # an acronym: NPS, CSAT, US
        else:
            out.append(lower)
    # "Year_Birth", "year_signup": a year named first reads backwards ("year birth").
    if len(out) == 2 and out[0] == "year" and out[1].isalpha():
        out.reverse()
    text = " ".join(out).strip()
    return text or clean(name)


def is_year(name: object) -> bool:
    """Whether a column holds years (``Year_Birth``, ``signup_year``), not a rate per year
    (``purchases_per_year``) or a duration (``years_active``)."""
    found = [w.lower() for w in words(name)]
    return any(
        w in ("year", "yr") and (i == 0 or found[i - 1] not in ("per", "a", "each", "every"))
        for i, w in enumerate(found)
    )


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def fmt(value: float, *, year: bool = False) -> str:
    """A number for people: thousands separators, about three significant digits, no exponent.

    ``year=True`` writes four-digit values without a separator (``1972``, not ``1,972``).
    """
    if not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if year and 1000 <= size < 10_000:
        text = f"{value:.0f}"
    elif size >= 1000:
        text = f"{value:,.0f}"
    elif size >= 100:
        text = f"{value:,.1f}"
    elif size >= 1:
        text = f"{value:.2f}"
    elif size == 0:
        return "0"
    else:
        decimals = min(12, 2 - math.floor(math.log10(size)))
        text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_diff(pct: float) -> str:
    """A percent difference: ``199.13`` -> ``199``, ``8.25`` -> ``8.2``, ``0.512`` -> ``0.51``."""
    size = abs(pct)
    text = f"{pct:.0f}" if size >= 10 else f"{pct:.1f}" if size >= 1 else f"{pct:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_pct(share: float) -> str:
    """A share in [0, 1] as a percentage: ``0.2534`` -> ``25.3%``."""
    pct = share * 100
    text = f"{pct:.1f}" if abs(pct) >= 1 or pct == 0 else f"{pct:.2f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return f"{text or '0'}%"
