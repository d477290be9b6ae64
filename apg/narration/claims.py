"""Demographic claims in text, checked against the fact sheet.

- A protected attribute (gender, age, ethnicity, religion, marital status, disability, sexual
  orientation) may be mentioned only when the fact sheet carries it: a demographic or categorical
  column whose name (or, for gender, whose category values) reveals it. Column names and
  category values shown on the sheet, and each of their words, are masked first: quoting the
  data is never a violation.
- When the sheet carries it, a claim must agree: "mostly women" needs women above 50% of the
  persona, "more women than average" a lift above 1, "she" a female majority; "in their 30s"
  needs the persona's median age in [30, 40); "younger"/"older" compare the persona's median
  with everyone's (an age column or a birth-year column).
- A category called over-represented ("over-represented", "disproportionately", "skews
  towards", "more women than average") must be one the fact sheet marks as significantly
  over-represented (``Fact.over_represented``: a two-proportion test against the rest of the
  users, Benjamini–Hochberg across the persona's categories, at least ``min_cell`` users; see
  ``apg.profiles.significance``). A higher share that is not significant is only a share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apg.narration.facts import OTHER, FactSheet
from apg.narration.labels import fmt, fmt_pct, humanise
from apg.profiles.persona import DemographicProfile

_PEOPLE = (
    r"(?:\s+\w+)?\s+(?:people|adults?|users?|customers?|buyers?|shoppers?|clients?|"
    r"professionals?|parents?|families|crowd|audience|demographic|members?|women|men)\b"
)


@dataclass(frozen=True)
class Attribute:
    name: str
    columns: re.Pattern[str]  # matches a humanised column name that carries it
    mentions: re.Pattern[str]  # words in text that mention it
    values: re.Pattern[str] | None = None  # category values that reveal it


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_FEMALE = _rx(r"^(f|female|females|woman|women|w|girl|girls)$")
_MALE = _rx(r"^(m|male|males|man|men|boy|boys)$")
GENDER = Attribute(
    "gender",
    _rx(r"\b(gender|sex|genre)\b"),
    _rx(
        r"\b(genders?|sex|wom[ae]n|m[ae]n|females?|males?|lad(?:y|ies)|gentlem[ae]n|girls?|boys?|"
        r"mothers?|fathers?|moms?|dads?|she|her|hers|herself|he|him|his|himself|non-?binary)\b"
    ),
    _rx(r"^(female|male|woman|women|man|men|non-?binary)$"),
)
AGE = Attribute(
    "age",
    _rx(r"\b(age|ages|aged|birth|born|dob|birthday)\b"),
    _rx(
        r"\b(ages?|aged|years? old|youth|elderly|seniors|senior citizens|retirees?|retired|"
        r"teens|teenagers?|adolescents?|millennials?|gen[- ]?[xyz]|boomers?|middle[- ]aged|"
        r"[1-9]0s|twenties|thirties|forties|fifties|sixties|seventies|eighties|[2-9]0-somethings?|"
        r"(?:young|younger|youngest|old|older|oldest)" + _PEOPLE + r")"
    ),
)
PROTECTED: tuple[Attribute, ...] = (
    GENDER,
    AGE,
    Attribute(
        "ethnicity",
        _rx(r"\b(ethnicity|ethnic|race|racial)\b"),
        _rx(
            r"\b(ethnicity|ethnic|race|racial|caucasian|hispanic|latin[oax]s?|asians?|"
            r"african[- ]americans?|arabs?|indigenous|(?:black|white)" + _PEOPLE + r")"
        ),
    ),
    Attribute(
        "religion",
        _rx(r"\b(religion|religious|faith|denomination)\b"),
        _rx(
            r"\b(religions?|religious|christians?|muslims?|jewish|jews|hindus?|buddhists?|"
            r"catholics?|protestants?|atheists?|church|mosque|synagogue)\b"
        ),
    ),
    Attribute(
        "marital status",
        _rx(r"\b(marital|married|marriage|spouse|relationship status)\b"),
        _rx(
            r"\b(married|unmarried|divorced|widow(?:ed|er)?s?|spouses?|husbands?|wives|wife|"
            r"marital|single (?:people|parents?|users|customers))\b"
        ),
    ),
    Attribute(
        "disability",
        _rx(r"\b(disability|disabled|handicap)\b"),
        _rx(r"\b(disabled|disabilit(?:y|ies)|handicapped|wheelchair)\b"),
    ),
    Attribute(
        "sexual orientation",
        _rx(r"\b(orientation|lgbt\w*)\b"),
        _rx(r"\b(gay|lesbian|bisexual|lgbt\w*|queer|heterosexual|homosexual)\b"),
    ),
)

_MAJORITY = _rx(
    r"\b(mostly|mainly|predominantly|largely|primarily|overwhelmingly|majority|"
    r"most)\b(?:\W+\w+){0,3}?\W+(wom[ae]n|females?|lad(?:y|ies)|m[ae]n|males?)\b"
)
_SKEW = _rx(
    r"\b(more|skews?|skewed|over-?represented|disproportionately)\b(?:\W+\w+){0,3}?\W+"
    r"(wom[ae]n|females?|lad(?:y|ies)|m[ae]n|males?)\b"
)
_PRONOUN = _rx(r"\b(she|her|hers|herself|he|him|his|himself)\b")
_DECADE = _rx(
    r"\b([1-9])0(?:s|-somethings?)\b|\b(twenties|thirties|forties|fifties|sixties|"
    r"seventies|eighties)\b"
)
_DECADE_WORDS = {
    "twenties": 2,
    "thirties": 3,
    "forties": 4,
    "fifties": 5,
    "sixties": 6,
    "seventies": 7,
    "eighties": 8,
}
_YOUNGER = _rx(r"\b(?:(?:young|younger|youngest)" + _PEOPLE + r"|youth)")
_OLDER = _rx(r"\b(?:(?:old|older|oldest)" + _PEOPLE + r"|elderly|seniors|retirees?|retired)\b")


def _carrier(sheet: FactSheet, attr: Attribute) -> list[str]:
    """Columns on the sheet that carry ``attr``."""
    out = []
    for fact in sheet.facts:
        categorical = fact.kind in ("demographic", "category") or fact.category is not None
        if not categorical or not fact.feature:
            continue  # a numeric behaviour ("account age") never carries a protected attribute
        if attr.columns.search(humanise(fact.feature)):
            out.append(fact.feature)
    if attr.values is not None:
        for col, demo in sheet.demographics.items():
            if any(attr.values.match(c.value) for c in demo.categories):
                out.append(col)
    return sorted(set(out))


def _mask(text: str, labels: list[str]) -> str:
    """Blank out the sheet's labels, whole and word by word: quoting data is not a claim."""
    for label in labels:  # longest first
        if len(label) >= 2:
            # Whole words only: a label "e t" must not eat "share this" into "shar his".
            text = re.sub(rf"(?<!\w){re.escape(label)}(?!\w)", " ", text, flags=re.IGNORECASE)
    words = {w.casefold() for label in labels for w in re.findall(r"\w{2,}", label)}
    if words:
        pattern = (
            r"\b(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b"
        )
        text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    return text


def _gender_share(demo: DemographicProfile, female: bool) -> tuple[float, float] | None:
    pattern = _FEMALE if female else _MALE
    cats = [c for c in demo.categories if pattern.match(c.value.strip())]
    if not cats:
        return None
    share = sum(c.share for c in cats)
    pop = sum(c.population_share for c in cats)
    return share, (share / pop if pop else 0.0)


def _fact_of(sheet: FactSheet, col: str) -> str:
    return next((f.id for f in sheet.facts if f.feature == col), "the fact sheet")


def _gender_checks(where: str, text: str, sheet: FactSheet, col: str) -> list[str]:
    demo = sheet.demographics.get(col)
    if demo is None or demo.kind != "categorical":
        return []
    fid, out = _fact_of(sheet, col), []
    claims: list[tuple[str, bool, str]] = []  # (phrase, female, kind)
    for m in _MAJORITY.finditer(text):
        claims.append(
            (m.group(0), m.group(2).lower().startswith(("wom", "fem", "lad")), "majority")
        )
    for m in _SKEW.finditer(text):
        claims.append((m.group(0), m.group(2).lower().startswith(("wom", "fem", "lad")), "skew"))
    for m in _PRONOUN.finditer(text):
        claims.append((m.group(0), m.group(1).lower().startswith(("s", "her")), "pronoun"))
    for phrase, female, kind in claims:
        found = _gender_share(demo, female)
        group = "women" if female else "men"
        if found is None:
            out.append(
                f"{where}: {phrase!r} is a claim about {group}, but {col!r} ({fid}) has no "
                f"such category; use the category names as given"
            )
            continue
        share, lift = found
        if kind == "majority" and share <= 0.5:
            out.append(
                f"{where}: {phrase!r} says most are {group}, but they are "
                f"{fmt_pct(share)} of this persona ({fid})"
            )
        elif kind == "skew" and lift <= 1:
            out.append(
                f"{where}: {phrase!r} says {group} are over-represented, but their lift is "
                f"{fmt(lift)} ({fid})"
            )
        elif kind == "skew" and not _significant(sheet, col, _FEMALE if female else _MALE):
            out.append(
                f"{where}: {phrase!r} says {group} are over-represented, but {fid} does not "
                f"mark them significantly over-represented (lift {fmt(lift)} is within chance); "
                f"give their share without calling it over-represented"
            )
        elif kind == "pronoun" and share < 0.5:
            out.append(
                f"{where}: the pronoun {phrase!r} makes the persona one of the {group}, who "
                f"are {fmt_pct(share)} of this persona ({fid}); write 'they'"
            )
    return out


def _significant(sheet: FactSheet, col: str, pattern: re.Pattern[str]) -> bool:
    fact = next((f for f in sheet.facts if f.feature == col), None)
    return fact is not None and any(pattern.match(v.strip()) for v in fact.over_represented)


_OVER = _rx(
    r"\bover-?represented\b|\bdisproportionate(?:ly)?\b|\bskew(?:s|ed|ing)?\b"
    r"|\bmore (?:common|prevalent|frequent) (?:than|among|here)"
)
_UNDER = _rx(r"\bunder-?represented\b|\bless (?:common|prevalent|frequent) (?:than|among|here)")
# Sentences end at . ; ! ? before a space or the end: "5.0" stays whole.
_SENTENCE = re.compile(r"(?:[^.;!?]|[.;!?](?=\S))+")


def _over_checks(where: str, text: str, sheet: FactSheet) -> list[str]:
    """Categories called over- (or under-) represented that the sheet does not mark so."""
    out = _tested_checks(where, text, sheet, under=False)
    return out + _tested_checks(where, text, sheet, under=True)


def _tested_checks(where: str, text: str, sheet: FactSheet, *, under: bool) -> list[str]:
    out: list[str] = []
    claim, word = (_UNDER, "under") if under else (_OVER, "over")
    facts = [
        f
        for f in sheet.facts
        if f.categories and (f.kind == "demographic" or f.category is not None)
    ]
    owners: dict[str, int] = {}
    for fact in facts:
        for c in fact.categories:
            owners[c.value.casefold()] = owners.get(c.value.casefold(), 0) + 1
    for sentence in _SENTENCE.findall(text):
        if not claim.search(sentence):
            continue
        for fact in facts:
            names = {n.casefold() for n in (fact.feature, fact.label) if n}
            about = any(n in sentence.casefold() for n in names)
            for c in fact.categories:
                marked = fact.under_represented if under else fact.over_represented
                if c.value == OTHER or c.value in marked:
                    continue
                # A value such as "1" may belong to several columns: then the sentence must
                # name this one.
                if not about and owners[c.value.casefold()] > 1:
                    continue
                quoted = re.search(rf"[\"'“‘]{re.escape(c.value)}[\"'”’]", sentence)
                named = len(c.value) >= 2 and re.search(
                    rf"(?<!\w){re.escape(c.value)}(?!\w)", sentence, re.IGNORECASE
                )
                if quoted or named:
                    out.append(
                        f"{where}: calls {c.value!r} {word}-represented, but {fact.id} gives "
                        f"it {fmt_pct(c.share)} of this persona vs "
                        f"{fmt_pct(c.population_share)} of everyone, which the fact sheet does "
                        f"not mark as significantly {word}-represented; state the share without "
                        f"calling it {word}-represented"
                    )
    return out


def _age_checks(where: str, text: str, sheet: FactSheet, cols: list[str]) -> list[str]:
    for col in cols:
        demo = sheet.demographics.get(col)
        if (
            demo is None
            or demo.kind != "numeric"
            or demo.cluster is None
            or demo.population is None
        ):
            continue
        med, pop = demo.cluster.median, demo.population.median
        if med is None or pop is None:
            continue
        fid, out = _fact_of(sheet, col), []
        birth_year = bool(re.search(r"birth|born|dob", humanise(col), re.IGNORECASE))
        younger = med > pop if birth_year else med < pop
        if _YOUNGER.search(text) and not younger:
            out.append(
                f"{where}: calls them young(er), but the persona's median {col!r} is "
                f"{fmt(med)} vs {fmt(pop)} for everyone ({fid})"
            )
        if _OLDER.search(text) and younger:
            out.append(
                f"{where}: calls them older, but the persona's median {col!r} is "
                f"{fmt(med)} vs {fmt(pop)} for everyone ({fid})"
            )
        if not birth_year:
            for m in _DECADE.finditer(text):
                decade = 10 * (int(m.group(1)) if m.group(1) else _DECADE_WORDS[m.group(2).lower()])
                if not decade <= med < decade + 10:
                    out.append(
                        f"{where}: {m.group(0)!r} does not fit the persona's median "
                        f"{col!r} of {fmt(med)} ({fid})"
                    )
        return out
    return []


def claim_violations(where: str, text: str, sheet: FactSheet) -> list[str]:
    """Protected attributes mentioned without data, and demographic claims the data contradict."""
    out: list[str] = _over_checks(where, text, sheet)
    masked = _mask(text, sheet.labels)
    for attr in PROTECTED:
        carriers = _carrier(sheet, attr)
        if not carriers:
            m = attr.mentions.search(masked)
            if m:
                hint = " (write 'they')" if attr is GENDER else ""
                out.append(
                    f"{where}: mentions {attr.name} ({m.group(0).strip()!r}) but the fact "
                    f"sheet has no {attr.name} data; leave it out{hint}"
                )
        elif attr is GENDER:
            for col in carriers:
                out += _gender_checks(where, text, sheet, col)
        elif attr is AGE:
            out += _age_checks(where, text, sheet, carriers)
    return out
