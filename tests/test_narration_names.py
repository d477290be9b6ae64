"""Offline names: only contrasts of a medium effect, and never against a feature's direction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_dataset
from fake_openai import persona
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_narration_offline import narrate_table

from apg.narration.facts import build_fact_sheet
from apg.narration.labels import humanise
from apg.narration.lexicon import CONCEPTS, concept_of, traits
from apg.narration.offline import name_candidates, name_parts, nameable_fact
from apg.profiles.persona import Contrast
from apg.profiles.significance import NAME_STD_DIFF, nameable

# A column per lexicon concept (a new concept must add one: see the coverage assertion).
SAMPLES = {
    "support": ["support_tickets", "complaints_count"],
    "recency": ["days_since_last_login", "Recency"],
    "tenure": ["tenure_months", "customer_since"],
    "income": ["Income", "annual_salary"],
    "deals": ["NumDealsPurchases", "coupon_uses"],
    "channel": ["NumWebPurchases", "NumCatalogPurchases", "store_orders"],
    "spend": ["MntWines", "avg_order_value"],
    "frequency": ["purchases_per_year", "PURCHASES_FREQUENCY"],
    "returns": ["returns_count", "churned_months"],
    "campaign": ["AcceptedCmp3", "campaign_responses"],
    "engagement": ["NumWebVisitsMonth", "sessions_per_week"],
    "features": ["feature_usage", "api_calls_per_day"],
    "satisfaction": ["nps", "csat_rating"],
}


def contrast(feature: str, cm: float, pm: float, sd: float, bounded: bool = False) -> Contrast:
    return Contrast(
        feature=feature,
        role="behavioral",
        cluster_mean=cm,
        population_mean=pm,
        std_diff=sd,
        direction="higher" if sd > 0 else "lower" if sd < 0 else "same",
        bounded=bounded,
    )


def sheet_of(*contrasts: Contrast) -> object:
    p = persona().model_copy(update={"contrasts": list(contrasts)})
    return build_fact_sheet(p, n_users=1000)


def words_of(term: str) -> set[str]:
    return {w for w in term.lower().replace("-", " ").split() if len(w) > 2}


def test_names_every_concept_sample_is_recognised():
    assert set(SAMPLES) == {c.key for c in CONCEPTS}
    for key, labels in SAMPLES.items():
        for label in labels:
            concept = concept_of(humanise(label))
            assert concept is not None and concept.key == key, (label, concept)


@pytest.mark.parametrize("key, label", [(k, v) for k, vs in SAMPLES.items() for v in vs])
@pytest.mark.parametrize("higher", [True, False])
def test_names_every_concept_and_direction_agree_with_the_feature(key, label, higher):
    sign = 1 if higher else -1
    # The concept's strongest contrast, a weaker one of the same concept the other way, and
    # a weak unrelated one that may not name the persona.
    twin = next(v for k, vs in SAMPLES.items() if k == key for v in vs if v != label)
    sheet = sheet_of(
        contrast(label, 10 + sign * 5, 10, sign * 1.2),
        contrast(twin, 10 - sign * 3, 10, -sign * 0.7),
        contrast("zz_weak_other", 11, 10, 0.3),
    )
    _, want, _ = traits(humanise(label), higher)
    _, opposite, _ = traits(humanise(label), not higher)
    for name in name_candidates(sheet):  # type: ignore[arg-type]
        lower = name.lower()
        assert want.noun.lower() in lower or want.adjective.lower() in lower, (name, want)
        assert opposite.noun.lower() not in lower, (name, opposite)
        assert opposite.adjective.lower() not in lower.replace(want.adjective.lower(), ""), name
        assert "zz" not in lower and "weak" not in lower, name


def test_names_frequent_buyer_needs_purchase_frequency_above_everyone():
    """The issue's credit-card persona: more cash advances, fewer purchases (-0.64 SD)."""
    sheet = sheet_of(
        contrast("CASH_ADVANCE_FREQUENCY", 0.447, 0.135, 1.5, bounded=True),
        contrast("PURCHASES_FREQUENCY", 0.3, 0.49, -0.64, bounded=True),
    )
    names = name_candidates(sheet)  # type: ignore[arg-type]
    assert all("frequent" not in n.lower() for n in names), names
    assert any("occasional" in n.lower() for n in names), names
    assert all("CASH" not in n and "FREQUENCY" not in n for n in names), names


def test_names_weak_contrasts_never_name_a_persona():
    sheet = sheet_of(contrast("MntWines", 280, 300, -0.2), contrast("Income", 54_000, 52_000, 0.45))
    assert name_candidates(sheet) == ["Typical customer"]  # type: ignore[arg-type]
    # A rate 0.6 SD up but only 3 points (a rare flag) does not name either.
    sheet = sheet_of(contrast("AcceptedCmp2", 0.043, 0.013, 0.6, bounded=True))
    assert name_candidates(sheet) == ["Typical customer"]  # type: ignore[arg-type]
    # 0.5 SD, 10 points and 2x do.
    sheet = sheet_of(contrast("AcceptedCmp2", 0.2, 0.1, 0.5, bounded=True))
    assert name_candidates(sheet) == ["Campaign responder"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sd, rate, ok",
    [
        (0.49, None, False),
        (-0.5, None, True),
        (0.8, (0.08, 0.007), True),  # 7.3 points, 11x
        (0.8, (0.04, 0.007), False),  # 3.3 points
        (0.8, (0.55, 0.45), False),  # 10 points but 1.22x
        (-0.8, (0.02, 0.3), True),  # 28 points, 0.07x
        (-0.8, (0.25, 0.3), False),  # 0.83x
    ],
)
def test_names_effect_size_rule(sd, rate, ok):
    assert nameable(sd, rate) is ok


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(
        st.tuples(
            st.sampled_from([v for vs in SAMPLES.values() for v in vs]),
            st.floats(0.001, 1000),
            st.floats(0.001, 1000),
            st.floats(-3, 3),
        ),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_names_property_every_term_is_strong_and_in_its_concepts_direction(picks):
    contrasts = [contrast(f, cm, pm, abs(sd) * float(np.sign(cm - pm))) for f, cm, pm, sd in picks]
    sheet = sheet_of(*contrasts)
    strongest: dict[str, str] = {}
    for f in sorted(sheet.contrasts(), key=lambda f: -abs(f.std_diff or 0)):  # type: ignore[attr-defined]
        key = traits(f.label, f.direction != "lower")[0]
        if f.direction != "same":
            strongest.setdefault(key, f.direction)
    for fact, key, t, _ in name_parts(sheet):  # type: ignore[arg-type]
        assert nameable_fact(fact) and abs(fact.std_diff or 0) >= NAME_STD_DIFF
        assert strongest[key] == fact.direction
        assert t == traits(fact.label or "", fact.direction == "higher")[1]


def test_names_real_tables_use_only_strong_contrasts():
    table = pd.read_csv(shared_dataset("marketing_campaign.csv"), sep="\t")
    roles = {
        "behavioral": [
            "Income",
            "MntWines",
            "MntMeatProducts",
            "NumDealsPurchases",
            "NumWebPurchases",
            "NumCatalogPurchases",
            "NumStorePurchases",
            "NumWebVisitsMonth",
            "AcceptedCmp1",
            "AcceptedCmp5",
        ],
        "demographic": ["Education"],
    }
    for k in (3, 6, 8):
        personas, narratives, n_users = narrate_table(table, "ID", k, **roles)
        for p, n in zip(personas, narratives, strict=True):
            sheet = build_fact_sheet(p, n_users=n_users)
            parts = name_parts(sheet)
            for fact, *_ in parts:
                assert abs(fact.std_diff or 0) >= NAME_STD_DIFF, (n.name, fact.text)
            candidates = name_candidates(sheet)
            assert n.name in candidates or n.name.rsplit(" ", 1)[0] in candidates, n.name
            if parts:  # the strongest nameable contrast gives the noun
                assert words_of(parts[0][2].noun) <= words_of(n.name), n.name
            else:
                assert n.name.startswith("Typical")
