"""The offline narrator: deterministic, grounded, distinct names, any dataset's columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import shared_dataset
from fake_openai import persona
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans

from apg.config import FeaturesConfig, NarrationConfig, PreprocessingConfig
from apg.narration import NarrationContext, make_narrator, narrative_text
from apg.narration.facts import build_fact_sheet
from apg.narration.grounding import check
from apg.narration.offline import OfflineNarrator, draft, name_candidates, pick_name
from apg.prepare.features import select_features
from apg.prepare.preprocessing import prepare
from apg.profiles.narrative import Narrative
from apg.profiles.persona import (
    CategoryShare,
    Contrast,
    DemographicProfile,
    PersonaProfile,
    build_profiles,
)

CTX = NarrationContext(run_id="r", n_users=1000, outliers=None, feature_roles={}, out_dir=None)


def narrate_table(
    table: pd.DataFrame, id_column: str, k: int, **roles: list[str]
) -> tuple[list[PersonaProfile], list[Narrative], int]:
    frame = select_features(table, id_column, FeaturesConfig(**roles))
    prepared = prepare(frame, PreprocessingConfig(), seed=0)
    labels = KMeans(k, random_state=0, n_init=3).fit_predict(prepared.X)
    personas, _ = build_profiles(prepared.frame, prepared.X, labels)
    ctx = NarrationContext(
        run_id="r",
        n_users=len(labels),
        outliers=None,
        feature_roles={c: prepared.frame.role_of(c) for c in frame.features},
        out_dir=None,
    )
    return personas, OfflineNarrator().narrate(personas, ctx), len(labels)


def assert_grounded(
    personas: list[PersonaProfile], narratives: list[Narrative], n_users: int
) -> None:
    names = [n.name for n in narratives]
    assert len(set(names)) == len(names), names
    for p, n in zip(personas, narratives, strict=True):
        sheet = build_fact_sheet(p, n_users=n_users)
        assert n.source == "offline" and n.reason is None
        assert n.validation and n.validation["ok"], (n.name, n.validation)
        assert check(n, sheet).ok
        assert 2 <= len(n.goals) <= 5 and 2 <= len(n.frustrations) <= 5
        assert all(i.facts for i in n.goals + n.frustrations) and not n.hypotheses
        assert n.facts == sheet.as_dict()
        assert "lorem" not in narrative_text(n).lower()


def test_offline_is_the_default_and_deterministic():
    narrator = make_narrator(NarrationConfig())
    assert isinstance(narrator, OfflineNarrator) and narrator.calls == []
    personas = [persona("P1"), persona("P2", size=100)]
    first = narrator.narrate(personas, CTX)
    assert first == make_narrator(NarrationConfig()).narrate(personas, CTX)
    assert first[0].name == "Frequent big spender"
    assert first[0].summary.startswith("400 users (40% of the 1,000 clustered) share this profile.")
    assert "their average order value is 150% higher (150 vs 60)" in first[0].summary
    assert first[0].goals[0].text == "Get quality that justifies their higher average order value."
    assert first[0].goals[0].facts == ["F2"]


def test_offline_names_stay_distinct_with_more_contrasts_then_numerals():
    same = [persona(f"P{i}") for i in range(1, 5)]
    names = [n.name for n in OfflineNarrator().narrate(same, CTX)]
    assert names == [
        "Frequent big spender",
        "Dissatisfied frequent big spender",
        "Frequent big spender II",
        "Frequent big spender III",
    ]
    assert pick_name(["A b"], ["a B", "A b II"]) == "A b III"


def test_offline_names_avoid_names_carried_over_from_earlier_runs():
    ctx = NarrationContext(
        run_id="r",
        n_users=1000,
        outliers=None,
        feature_roles={},
        out_dir=None,
        taken_names=("Frequent big spender",),
    )
    names = [n.name for n in OfflineNarrator().narrate([persona("P1")], ctx)]
    assert names == ["Dissatisfied frequent big spender"]


def test_offline_generic_columns_get_readable_names():
    p = persona(
        contrasts=[
            ("Delicassen", "behavioral", 3000.0, 1500.0, 1.1),
            ("Frozen", "behavioral", 500.0, 3000.0, -0.9),
        ],
        demographics={},
    )
    sheet = build_fact_sheet(p, n_users=1000)
    assert name_candidates(sheet) == ["Low-frozen delicassen-heavy user"]
    n = draft(sheet)
    # No template with the column's name pasted in: the evidence, as the fact sheet says it
    # (3,000 vs 1,500 is 100% higher; 500 vs 3,000 is 83% lower).
    assert n.goals[0].text == "Their delicassen is 100% higher than everyone's (3,000 vs 1,500)."
    assert n.frustrations[0].text == "Their frozen is 83% lower than everyone's (500 vs 3,000)."
    assert n.validation and n.validation["ok"]


def test_offline_without_distinguishing_contrasts_is_typical():
    p = persona(contrasts=[("x", "behavioral", 1.0, 1.0, 0.0)], demographics={})
    n = draft(build_fact_sheet(p, n_users=1000))
    assert n.name == "Typical user" and len(n.goals) == 2 and len(n.frustrations) == 2
    assert n.validation and n.validation["ok"]


def test_offline_fallback_source_and_reason():
    n = draft(
        build_fact_sheet(persona(), n_users=1000),
        source="offline-fallback",
        reason="the request timed out",
    )
    assert (n.source, n.reason) == ("offline-fallback", "the request timed out")
    assert "Source: offline-fallback (the request timed out)" in narrative_text(n)


def test_offline_sample_data_is_grounded(sample_users):
    personas, narratives, n_users = narrate_table(
        sample_users,
        "user_id",
        5,
        behavioral=[
            "logins_per_month",
            "sessions_per_week",
            "avg_session_minutes",
            "features_used",
            "purchases_per_year",
            "avg_order_value",
            "support_tickets",
            "days_since_last_login",
            "tenure_months",
        ],
        attitudinal=["nps", "satisfaction"],
        demographic=["age", "gender", "country", "occupation", "company_size"],
    )
    assert_grounded(personas, narratives, n_users)


@pytest.mark.parametrize(
    "dataset", ["Mall_Customers.csv", "marketing_campaign.csv", "wholesale_customers.csv"]
)
def test_offline_public_datasets_are_grounded(dataset):
    path = shared_dataset(dataset)
    if dataset == "Mall_Customers.csv":
        table = pd.read_csv(path)
        roles: dict[str, Any] = {
            "behavioral": ["Annual Income (k$)"],
            "attitudinal": ["Spending Score (1-100)"],
            "demographic": ["Genre", "Age"],
        }
        id_column = "CustomerID"
    elif dataset == "marketing_campaign.csv":
        table = pd.read_csv(path, sep="\t")
        roles = {
            "behavioral": [
                "Income",
                "Recency",
                "MntWines",
                "MntMeatProducts",
                "MntGoldProds",
                "NumDealsPurchases",
                "NumWebPurchases",
                "NumCatalogPurchases",
                "NumStorePurchases",
                "NumWebVisitsMonth",
            ],
            "demographic": ["Year_Birth", "Education", "Marital_Status", "Kidhome"],
        }
        id_column = "ID"
    else:
        table = pd.read_csv(path).reset_index(names="row")
        roles = {
            "behavioral": ["Fresh", "Milk", "Grocery", "Frozen", "Detergents_Paper", "Delicassen"],
            "demographic": ["Channel", "Region"],
        }
        id_column = "row"
    assert_grounded(*narrate_table(table, id_column, 6, **roles))


_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
_values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    features=st.lists(_names, min_size=1, max_size=8, unique=True),
    means=st.lists(st.tuples(_values, _values, st.floats(-5, 5)), min_size=8, max_size=8),
    size=st.integers(1, 10_000),
    seed=st.integers(0, 3),
    column=_names,
    categories=st.lists(_names, min_size=1, max_size=4, unique=True),
)
def test_offline_any_columns_and_values_pass_grounding(
    features, means, size, seed, column, categories
):
    rng = np.random.default_rng(seed)
    contrasts = []
    for feature, (cm, pm, sd) in zip(features, means, strict=False):
        role = "attitudinal" if rng.random() < 0.3 else "behavioral"
        contrasts.append(
            Contrast(
                feature=feature,
                role=role,
                cluster_mean=cm,
                population_mean=pm,
                std_diff=sd,
                direction="higher" if sd > 0 else "lower" if sd < 0 else "same",
            )
        )
    counts = rng.multinomial(size, [1 / len(categories)] * len(categories))
    demo = DemographicProfile(
        kind="categorical",
        categories=[
            CategoryShare(
                value=v, count=int(c), share=c / size, population_share=0.2, lift=c / size / 0.2
            )
            for v, c in zip(categories, counts, strict=True)
        ],
    )
    p = persona(size=size, n_users=size * 3, demographics={column: demo})
    p = p.model_copy(update={"contrasts": contrasts})
    sheet = build_fact_sheet(p, n_users=size * 3)
    twins = [draft(sheet)]
    twins.append(draft(sheet, used_names=[twins[0].name]))
    for n in twins:
        result = check(n, sheet)
        assert result.ok, (sheet.render(), narrative_text(n), result.violations)
    assert twins[0].name != twins[1].name
