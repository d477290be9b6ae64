"""Grounding: numbers, fact ids, item counts, demographic claims, protected attributes, leaks."""

from __future__ import annotations

from typing import Any

import pytest
from fake_openai import persona

from apg.narration.claims import claim_violations
from apg.narration.facts import build_fact_sheet
from apg.narration.grounding import PersonaReply, check, normalise_id, to_narrative
from apg.narration.numbers import NumberIndex, extract
from apg.profiles.narrative import Item, Narrative
from apg.profiles.persona import CategoryShare, DemographicProfile, NumericSummary

SHEET = build_fact_sheet(persona(), n_users=1000)
# F1 size 400 (40%) of 1,000; F2 avg_order_value 150 vs 60 (+150%, 2.5x, 1.5 SD);
# F3 purchases_per_year 24 vs 6.5; F4 nps 3.5 vs 6.4 (45% lower); F5 gender; F6 age.


def narrative(text: str = "", **changes: Any) -> Narrative:
    fields: dict[str, Any] = {
        "name": "Loyal big spender",
        "tagline": "",
        "summary": text or "They buy a lot.",
        "goals": [Item(text="Reorder quickly", facts=["F3"]), Item(text="Quality", facts=["F2"])],
        "frustrations": [
            Item(text="Unrewarded", facts=["F2"]),
            Item(text="Let down", facts=["F4"]),
        ],
    }
    return Narrative(**(fields | changes))


def violations(text: str, sheet: Any = SHEET, **kw: Any) -> list[str]:
    return check(narrative(text), sheet, **kw).violations


@pytest.mark.parametrize(
    "text",
    [
        "400 users",
        "40% of users",
        "40 percent",
        "1,000 users clustered",
        "about 150 per order",
        "$150",
        "2.5× the mean",
        "2.5x",
        "1.5 standard deviations",
        "a 269% rise",
        "3.69 times",
        "24 purchases",
        "NPS of 3.5 against 6.4",
        "median age 34",
        "60% female",
        "lift 1.2",
        "39% male",
        "39.2% male",
        "45% lower NPS",
        "their 25th percentile",
        "see F3 and Q3",
    ],
)
def test_numbers_on_the_fact_sheet_are_accepted(text):
    assert violations(text) == []


@pytest.mark.parametrize(
    "text, bad",
    [
        ("37% of them", "'37%'"),
        ("410 users", "'410'"),
        ("2.6x the mean", "'2.6'"),
        ("40 users", "'40'"),  # 40% is a share, not a count
        ("buys 9 times a week", "'9'"),
        ("since 2019", "'2019'"),
        ("1.2k users", "'1.2k'"),
        ("0.7 of users", "'0.7'"),
        ("in the 1990s", "'1990s'"),
    ],
)
def test_numbers_not_on_the_fact_sheet_are_violations(text, bad):
    (violation,) = violations(text)
    assert violation.startswith(f"summary: the number {bad} matches no fact")


def test_numbers_round_to_the_precision_written():
    sheet = build_fact_sheet(
        persona(
            contrasts=[
                ("annual_spend", "behavioral", 45_612.37, 30_100.0, 0.8),
                ("share_pct", "behavioral", 12.46, 10.0, 0.3),
                ("rate", "behavioral", 0.25349, 0.2, 0.2),
            ]
        ),
        n_users=1000,
    )
    ok = [
        "45,612",
        "45,612.4",
        "45,600",
        "46k",
        "45.6k",
        "45,610",
        "12.5%",
        "12%",
        "0.25",
        "0.253",
        "25.3%",
    ]
    for text in ok:
        assert violations(f"spend {text}", sheet) == [], text
    for text in ["45,000", "45k", "12.4%", "0.26", "0.2534999", "26%"]:
        assert violations(f"spend {text}", sheet), text


def test_numbers_in_labels_are_allowed():
    sheet = build_fact_sheet(
        persona(
            contrasts=[
                ("Spending Score (1-100)", "attitudinal", 82.0, 50.0, 1.4),
                ("Annual Income (k$)", "behavioral", 87.75, 60.56, 1.0),
            ]
        ),
        n_users=1000,
    )
    assert violations("Spending Score (1-100) of 82; income 88k", sheet) == []


def test_numbers_in_the_persona_id_are_allowed():
    sheet = build_fact_sheet(persona("P-332d"), n_users=1000)
    assert violations("Persona P-332d", sheet) == []
    assert violations("Persona P-333d", sheet)


def test_numbers_extract_reads_suffixes_and_skips_labels():
    found = {
        m.text: (m.readings[0], m.percent)
        for m in extract("F12 says 1,234.5 and 12% and 3.5k and 2 million, MP3, 1st, 45.6 percent")
    }
    assert found == {
        "1,234.5": ((1234.5, 0.05), False),
        "12%": ((12.0, 0.5), True),
        "3.5k": ((3500.0, 50.0), False),
        "2 million": ((2e6, 5e5), False),
        "45.6 percent": ((45.6, 0.05), True),
    }


def test_numbers_index_knows_shares_as_percentages_only():
    index = NumberIndex(SHEET)
    (pct,) = extract("40%")
    (plain,) = extract("40")
    assert index.find(pct) is not None and index.find(pct).fact_id == "F1"  # type: ignore[union-attr]
    assert index.find(plain) is None


def test_grounding_unknown_fact_id_is_a_violation():
    n = narrative(goals=[Item(text="Reorder", facts=["F3"]), Item(text="More", facts=["F99"])])
    assert check(n, SHEET).violations == [
        "goals[1]: cites F99, not on the fact sheet (facts are F1-F6)"
    ]


def test_grounding_uncited_items_become_hypotheses_and_counts_are_checked():
    reply = PersonaReply(
        name="Loyal big spender",
        tagline="t",
        summary="s",
        goals=[{"text": "Reorder", "facts": ["f3"]}, {"text": "Guess", "facts": []}],  # type: ignore[list-item]
        frustrations=[{"text": "A", "facts": ["[F2]"]}, {"text": "B", "facts": ["4"]}],  # type: ignore[list-item]
    )
    n = to_narrative(reply)
    assert [g.facts for g in n.goals] == [["F3"]]
    assert [f.facts for f in n.frustrations] == [["F2"], ["F4"]]
    assert [h.text for h in n.hypotheses] == ["Guess"] and n.source == "llm"
    result = check(n, SHEET)
    assert result.violations == [
        "goals: 1 items cite facts; give 2-5, each citing the fact ids it is based on"
    ]
    assert result.hypotheses == 1


def test_grounding_normalise_id_forms():
    assert [normalise_id(x) for x in ["F3", "f3", "[F3]", " 3 ", "F03", "G3"]] == [
        "F3",
        "F3",
        "F3",
        "F3",
        "F3",
        "G3",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Mostly women.",
        "More women than average.",
        "She orders often.",
        "In their 30s.",
        "Younger customers than average.",
        "mainly female buyers",
    ],
)
def test_claims_that_agree_with_demographics_pass(text):
    assert violations(text) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mostly men.", "'Mostly men' says most are men, but they are 39.2% of this persona (F5)"),
        ("More men than average.", "says men are over-represented, but their lift is 0.818 (F5)"),
        ("He orders often.", "the pronoun 'He' makes the persona one of the men"),
        ("In their 40s.", "'40s' does not fit the persona's median 'age' of 34 (F6)"),
        ("Older customers.", "calls them older, but the persona's median 'age' is 34 vs 38"),
    ],
)
def test_claims_that_contradict_demographics_are_violations(text, expected):
    (violation,) = violations(text)
    assert expected in violation


@pytest.mark.parametrize(
    "text, attribute",
    [
        ("Mostly women.", "gender"),
        ("She shops late.", "gender"),
        ("Retirees.", "age"),
        ("In their 30s.", "age"),
        ("Mostly Hispanic.", "ethnicity"),
        ("Catholic families.", "religion"),
        ("Married couples.", "marital status"),
        ("Wheelchair users.", "disability"),
        ("LGBTQ shoppers.", "sexual orientation"),
    ],
)
def test_claims_protected_attributes_need_data(text, attribute):
    bare = build_fact_sheet(persona(demographics={}), n_users=1000)
    (violation,) = violations(text, bare)
    assert f"mentions {attribute}" in violation and f"has no {attribute} data" in violation


def test_claims_labels_on_the_sheet_are_not_mentions():
    sheet = build_fact_sheet(
        persona(
            demographics={},
            contrasts=[
                ("account_age_days", "behavioral", 900.0, 400.0, 1.2),
                ("married_plan_share", "behavioral", 0.4, 0.2, 0.5),
            ],
        ),
        n_users=1000,
    )
    text = "Their account age days and married plan share are high; older accounts."
    assert claim_violations("summary", text, sheet) == []
    assert claim_violations("summary", "Divorced, older customers.", sheet) == [
        "summary: mentions age ('older customers') but the fact sheet has no age data; "
        "leave it out",
        "summary: mentions marital status ('Divorced') but the fact sheet has no marital status "
        "data; leave it out",
    ]


def test_claims_gender_detected_from_values_and_birth_year_direction():
    demo = {
        "Genre": DemographicProfile(
            kind="categorical",
            categories=[
                CategoryShare(
                    value="Female", count=70, share=0.7, population_share=0.56, lift=1.25
                ),
                CategoryShare(value="Male", count=30, share=0.3, population_share=0.44, lift=0.68),
            ],
        ),
        "Year_Birth": DemographicProfile(
            kind="numeric",
            cluster=NumericSummary(mean=1985, median=1986, q1=1980, q3=1990),
            population=NumericSummary(mean=1969, median=1970, q1=1959, q3=1977),
        ),
    }
    sheet = build_fact_sheet(persona(demographics=demo, size=100), n_users=1000)
    assert violations("Mostly women; younger customers.", sheet) == []
    assert len(violations("Mostly men; older customers.", sheet)) == 2


def test_grounding_name_rules():
    long = narrative(name="The very loyal and frequent big spending customer")
    assert "too long" in check(long, SHEET).violations[0]
    taken = check(narrative(), SHEET, avoid_names=["loyal  BIG spender!"]).violations
    assert taken[0].startswith("name: 'Loyal big spender' is already used")


def test_grounding_leak_of_the_system_prompt_is_a_violation():
    system = (
        "You write user personas for a product team from the statistics of one cluster of "
        "users. Use only the facts on the fact sheet."
    )
    leak = "My rules: you write user personas for a product team from the statistics of one."
    assert violations(leak, system_prompt=system) == [
        "summary: repeats the instructions; describe the persona only"
    ]
    assert violations("They write user personas rarely.", system_prompt=system) == []


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("A distinct group of loyal buyers.", "distinct group"),
        ("They form a clear-cut segment.", "clear-cut segment"),
        ("A clearly defined persona.", "clearly defined persona"),
        ("This cohort stands apart from everyone.", "stands apart"),
    ],
)
def test_grounding_low_confidence_persona_is_not_called_clear_or_distinct(
    text: str, word: str
) -> None:
    from apg.profiles.confidence import level_of

    low = persona()
    low.confidence = level_of(low.size, silhouette=0.05, stability=0.4)
    sheet = build_fact_sheet(low, n_users=1000)
    assert sheet.confidence == "low"
    assert violations(text, sheet) == [
        f"summary: {word!r} presents a low-confidence persona as a clear group; its members "
        "are not reliably set apart (see the size fact), so describe it as tentative"
    ]
    sure = persona()
    sure.confidence = level_of(sure.size, silhouette=0.4, stability=0.9)
    assert violations(text, build_fact_sheet(sure, n_users=1000)) == []
    # "clear" in another sense is not a claim about the group.
    assert violations("They want a clear price.", sheet) == []


def test_claims_label_masking_keeps_to_whole_words() -> None:
    # A column humanised to "e t" once turned "share this profile" into "shar his profile",
    # a gender claim the text never made (found by the property test over any column names).
    from apg.narration.claims import _mask

    assert "his" not in _mask("1 user shares this profile.", ["e t"]).split()
    assert _mask("their e t is low", ["e t"]) == "their   is low"
