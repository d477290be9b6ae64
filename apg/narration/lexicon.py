"""What a contrast means for a person: name parts, goals and frustrations by feature concept.

A concept is recognised from the humanised column name (``MntWines`` -> ``spend on wines`` ->
spend). Each concept has words for "higher" and "lower" than everyone; ``{label}`` is replaced by
the humanised column name. A goal or frustration is written only where the concept says what it
means for a person whatever the table; where it cannot (``None``), and for every column the
lexicon does not know, the narrator states the evidence instead ("Spends 187% more on wines than
everyone (871.7 vs 303.9)"), never a template with the column's name pasted in. Unknown columns
and categories still get a name term built from their name ("Frozen-heavy", "Month-to-month").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apg.narration.labels import capitalise

MAX_SHORT = 24  # characters of a column name inside a persona name


@dataclass(frozen=True)
class Traits:
    adjective: str  # "Big-spending"
    noun: str  # "big spender"
    goal: str | None  # None: the narrator states the evidence instead
    frustration: str | None


@dataclass(frozen=True)
class Concept:
    key: str
    pattern: re.Pattern[str]
    high: Traits
    low: Traits
    commerce: bool = False  # its people are customers rather than users


def _c(
    key: str,
    pattern: str,
    high: tuple[str, str, str | None, str | None],
    low: tuple[str, str, str | None, str | None],
    commerce: bool = False,
) -> Concept:
    return Concept(key, re.compile(pattern, re.IGNORECASE), Traits(*high), Traits(*low), commerce)


_CHANNELS = {
    "catalog": "Catalog",
    "catalogue": "Catalog",
    "web": "Web",
    "online": "Online",
    "store": "Store",
    "in store": "Store",
    "app": "App",
    "mobile": "Mobile",
    "email": "Email",
    "phone": "Phone",
}
_CHANNEL = re.compile(
    r"\b(catalog(?:ue)?|web|online|in store|store|app|mobile|email|phone)\b"
    r".*\b(purchases?|orders?|buys?|sales|shopping)\b",
    re.IGNORECASE,
)

CONCEPTS: tuple[Concept, ...] = (
    _c(
        "support",
        r"support|ticket|complain|helpdesk|escalat",
        (
            "Support-reliant",
            "support seeker",
            "Get problems resolved quickly when they ask for help",
            "Running into issues that need support more often than most",
        ),
        (
            "Self-sufficient",
            "self-starter",
            "Solve problems on their own without waiting",
            "Being pushed towards support for things they can handle themselves",
        ),
    ),
    _c(
        "recency",
        r"recency|days since|since last|last (login|visit|order|purchase|seen|active)"
        r"|inactiv|dormant",
        (
            "Lapsing",
            "drifting regular",
            "Find a clear reason to come back",
            "Too little that draws them back, so gaps since their last activity grow",
        ),
        (
            "Recently active",
            "active regular",
            "Pick up where they left off without friction",
            "Seeing nothing new when they come back soon after their last visit",
        ),
    ),
    _c(
        "tenure",
        r"tenure|account age|customer since|member since|months active|years active"
        r"|seniority|dt customer",
        (
            "Long-standing",
            "loyal veteran",
            "Be recognised for a long relationship",
            "Changes that disrupt routines they have relied on for a long time",
        ),
        (
            "Newly joined",
            "newcomer",
            "Get up to speed quickly",
            "A learning curve that slows them down early on",
        ),
    ),
    _c(
        "income",
        r"income|salary|wage|earning|wealth",
        (
            "Affluent",
            "affluent customer",
            "Choose quality and convenience over price",
            "Offers that feel generic or low-end for their means",
        ),
        (
            # Not "budget-minded": a lower income says nothing of how they spend, and
            # "Big-spending budget-minded" contradicts itself.
            "Lower-income",
            "lower-income customer",
            "Make a limited budget go further",
            "Prices and fees that strain their budget",
        ),
        commerce=True,
    ),
    _c(
        "deals",
        r"deal|discount|coupon|promo|voucher|\bsale\b",
        (
            "Deal-seeking",
            "deal hunter",
            "Catch deals and promotions when they buy",
            "Paying full price when they expected an offer",
        ),
        (
            "Full-price",
            "full-price buyer",
            "Buy what they want without hunting for offers",
            "Promotions that clutter what they came for",
        ),
        commerce=True,
    ),
    _c(
        "channel",
        _CHANNEL.pattern,
        (
            "{Channel}-loyal",
            "{channel} shopper",
            "Buy through the {channel} channel they prefer",
            "Gaps or friction in the {channel} channel they rely on",
        ),
        (
            "{Channel}-shy",
            "{channel}-shy shopper",
            "Buy through channels other than {channel}",
            "Being steered to the {channel} channel they rarely use",
        ),
        commerce=True,
    ),
    _c(
        "spend",
        r"spend|spent|monetary|revenue|\bvalue\b|amount|price|basket|\baov\b|\bltv\b"
        r"|\bclv\b|\bcost\b|\bcharges?\b|\bbill(?:ed|s)?\b",
        (
            "Big-spending",
            "big spender",
            "Get quality that justifies their higher {label}",
            "Feeling that their higher {label} goes unrewarded",
        ),
        (
            "Thrifty",
            "light spender",
            "Keep their {label} low and still get good value",
            "Prices that feel high for what they get",
        ),
        commerce=True,
    ),
    _c(
        "frequency",
        # Purchases only: a bare "frequency" (of cash advances, of visits) is not buying.
        r"purchase|order|transaction|\bbuy|bought|checkout",
        (
            "Frequent",
            "frequent buyer",
            "Buy again quickly and easily",
            "Friction that slows down their frequent purchases",
        ),
        (
            "Occasional",
            "occasional buyer",
            "Buy only when there is a clear need",
            "Pressure to buy more often than they want",
        ),
        commerce=True,
    ),
    _c(
        "returns",
        r"return|refund|churn|cancel|unsubscrib",
        (
            "Hesitant",
            "hesitant buyer",
            "Be sure before they commit",
            "Purchases that do not work out and have to be undone",
        ),
        (
            "Committed",
            "committed buyer",
            "Keep what they choose",
            "Hassle they are rarely exposed to but would not accept",
        ),
    ),
    _c(
        "campaign",
        r"campaign|accepted|response|responded|offer",
        (
            "Campaign-responsive",
            "campaign responder",
            "Hear about offers that fit them",
            "Offers that miss what they actually want",
        ),
        (
            "Campaign-resistant",
            "campaign skeptic",
            "Be left alone unless an offer really fits",
            "Marketing messages that do not speak to them",
        ),
        commerce=True,
    ),
    _c(
        "engagement",
        r"login|log in|session|visit|page ?view|click|active days|time on|minutes"
        r"|duration|engagement",
        (
            "Highly engaged",
            "engaged regular",
            "Get things done efficiently in frequent visits",
            "Slow or cluttered screens that they meet again and again",
        ),
        (
            "Light-touch",
            "casual visitor",
            "Get what they need in a few short visits",
            # Why they come less often is not in the data: the evidence is stated instead.
            None,
        ),
    ),
    _c(
        "features",
        r"feature|usage|\buses\b|adoption|\bapi\b|integration|tools",
        (
            "Power-using",
            "power user",
            "Use advanced features to the full",
            "Limits on the features they depend on",
        ),
        (
            "Basic",
            "basic user",
            "Keep the product simple",
            "Features that are hard to discover or understand",
        ),
    ),
    _c(
        "satisfaction",
        r"\bnps\b|satisf|csat|sentiment|rating|happiness|\bscore\b|recommend",
        (
            "Satisfied",
            "promoter",
            "Keep the experience that works for them",
            "Changes that put at risk what already works for them",
        ),
        (
            "Dissatisfied",
            "critic",
            "See their concerns addressed",
            "An experience that falls short of what they expect",
        ),
    ),
)


def concept_of(label: str) -> Concept | None:
    return next((c for c in CONCEPTS if c.pattern.search(label)), None)


def _short(label: str) -> str:
    """The last two words of a label, hyphenated: ``detergents paper`` -> ``detergents-paper``."""
    tokens = [t for t in label.split() if t.lower() not in {"of", "on", "number", "the", "per"}]
    short = "-".join(tokens[-2:]) or label
    return short if len(short) <= MAX_SHORT else short[: MAX_SHORT - 1] + "…"


def traits(label: str, higher: bool) -> tuple[str, Traits, bool]:
    """(concept key, traits, commerce) for a contrast on ``label`` in one direction."""
    concept = concept_of(label)
    if concept is None:
        short = _short(label)
        # A name term from the column's name; the goal and frustration are the evidence.
        if higher:
            t = Traits(f"{capitalise(short)}-heavy", f"{short}-heavy", None, None)
        else:
            t = Traits(f"Low-{short}", f"low-{short}", None, None)
        return f"generic:{label}", t, False
    t = concept.high if higher else concept.low
    if concept.key == "channel":
        m = _CHANNEL.search(label)
        channel = _CHANNELS.get(m.group(1).lower(), "this") if m else "this"
        t = Traits(*(_fill(s, Channel=channel, channel=channel.lower()) for s in _parts(t)))
        return f"channel:{channel}", t, True
    t = Traits(t.adjective, t.noun, _fill(t.goal, label=label), _fill(t.frustration, label=label))
    return concept.key, t, concept.commerce


def _parts(t: Traits) -> tuple[str, str, str | None, str | None]:
    return (t.adjective, t.noun, t.goal, t.frustration)


def _fill(text: str | None, **values: str) -> str | None:
    return None if text is None else text.format(**values)


_YES = {"yes", "y", "true"}
_NO = {"no", "n", "false", "none"}
# Values that say nothing about a person: never a name term.
UNNAMEABLE = {"(missing)", "other", "unknown", "n/a", "na", "nan", "null", ""}


def category_phrase(label: str, value: str) -> str:
    """A category as a name term: ``Month-to-month``, ``no-internet-service`` for
    InternetService "No", ``paperless-billing`` for "Yes", ``region-2`` for a code."""
    v = " ".join(value.split())
    low = v.casefold()
    if low in _YES:
        phrase = label
    elif low in _NO:
        phrase = f"no {label}"
    elif re.fullmatch(r"[\d.,+-]+", v):
        phrase = f"{label} {v}"
    else:
        # "Fiber optic" -> "fiber optic"; acronyms and "PhD" keep their capitals.
        phrase = v[:1].lower() + v[1:] if v[1:2].islower() or len(v) == 1 else v
    short = "-".join(phrase.split())
    return short if len(short) <= MAX_SHORT else short[: MAX_SHORT - 1] + "…"


def category_traits(label: str, value: str, higher: bool) -> tuple[str, Traits, bool]:
    """(key, traits, commerce) for one category of a categorical feature. Its goal and
    frustration are the evidence (what a contract type means to a person is not in the
    data); only a category above everyone's share names a persona."""
    phrase = category_phrase(label, value)
    if higher:
        t = Traits(capitalise(phrase), phrase, None, None)
    else:
        t = Traits(f"Rarely-{phrase}", f"rarely-{phrase}", None, None)
    return f"category:{label}={value}", t, False
