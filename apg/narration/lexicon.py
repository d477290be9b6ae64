"""What a contrast means for a person: name parts, goals and frustrations by feature concept.

A concept is recognised from the humanised column name (``MntWines`` -> ``spend on wines`` ->
spend). Each concept has words for "higher" and "lower" than everyone; ``{label}`` is replaced by
the humanised column name. Unknown columns get a generic reading built from their name.
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
    goal: str
    frustration: str


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
    high: tuple[str, str, str, str],
    low: tuple[str, str, str, str],
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
            "Budget-minded",
            "budget-minded customer",
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
        r"|\bclv\b|\bcost\b",
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
            "Having to relearn the product each time they drop in",
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
        if higher:
            t = Traits(
                f"{capitalise(short)}-heavy",
                f"{short}-heavy",
                f"Make the most of their {label}, where they stand well above everyone",
                f"Anything that gets in the way of their {label}",
            )
        else:
            t = Traits(
                f"Low-{short}",
                f"low-{short}",
                f"Get value without much {label}",
                f"Offers built for people with more {label} than they have",
            )
        return f"generic:{label}", t, False
    t = concept.high if higher else concept.low
    if concept.key == "channel":
        m = _CHANNEL.search(label)
        channel = _CHANNELS.get(m.group(1).lower(), "this") if m else "this"
        t = Traits(
            *(
                s.format(Channel=channel, channel=channel.lower())
                for s in (t.adjective, t.noun, t.goal, t.frustration)
            )
        )
        return f"channel:{channel}", t, True
    t = Traits(t.adjective, t.noun, t.goal.format(label=label), t.frustration.format(label=label))
    return concept.key, t, concept.commerce
