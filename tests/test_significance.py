"""Only real differences: over-representation needs a test, BH and min_cell; names need effect."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import shared_dataset
from fake_openai import persona
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency
from test_narration_offline import CTX, narrate_table

from apg.config import NarrationConfig
from apg.narration.facts import build_fact_sheet
from apg.narration.grounding import check
from apg.narration.offline import OfflineNarrator, draft
from apg.profiles.narrative import Item, Narrative
from apg.profiles.persona import CategoryShare, DemographicProfile
from apg.profiles.significance import bh_adjust, two_proportion_p, vs_rest_p


def scipy_p(x1: int, n1: int, x2: int, n2: int) -> float:
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(chi2_contingency(table, correction=False)[1])


@settings(max_examples=300, deadline=None)
@given(
    n1=st.integers(1, 5000),
    n2=st.integers(1, 5000),
    f1=st.floats(0, 1),
    f2=st.floats(0, 1),
)
def test_significance_z_test_is_pearson_chi_square(n1, n2, f1, f2):
    x1, x2 = round(f1 * n1), round(f2 * n2)
    assert two_proportion_p(x1, n1, x2, n2) == pytest.approx(scipy_p(x1, n1, x2, n2), abs=1e-9)


def test_significance_vs_rest_excludes_the_persona():
    # 60 of 100 members; 300 of 1,000 users overall: the rest is 240 of 900.
    assert vs_rest_p(60, 100, 300, 1000) == pytest.approx(scipy_p(60, 100, 240, 900))
    assert vs_rest_p(60, 100, 300, 1000) != pytest.approx(scipy_p(60, 100, 300, 1000))
    assert vs_rest_p(30, 100, 30, 100) == 1.0  # a persona that is everyone


def bh_rejected(p: list[float], alpha: float) -> set[int]:
    """The step-up procedure as written by Benjamini and Hochberg (1995)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    k = max((r for r in range(1, m + 1) if p[order[r - 1]] <= r * alpha / m), default=0)
    return set(order[:k])


@settings(max_examples=300, deadline=None)
@given(
    p=st.lists(st.floats(0, 1), min_size=1, max_size=30),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]),
)
def test_significance_bh_adjusted_values_reject_what_the_step_up_rejects(p, alpha):
    q = bh_adjust(p)
    assert {i for i, v in enumerate(q) if v <= alpha} == bh_rejected(p, alpha)
    assert all(pi <= qi <= 1 for pi, qi in zip(p, q, strict=True))


def cats(size: int, n_users: int, rows: list[tuple[str, int, int]]) -> DemographicProfile:
    """Categories from (value, persona count, everyone's count); p-values left to the sheet."""
    return DemographicProfile(
        kind="categorical",
        categories=[
            CategoryShare(
                value=v,
                count=c,
                share=c / size,
                population_share=pc / n_users,
                lift=(c / size) / (pc / n_users),
            )
            for v, c, pc in rows
        ],
    )


def issue_persona() -> Any:
    """The issue's noise: Education "Basic" 3.8% vs 2.4%; siblings "5.0" 1.7% vs 0.89%."""
    size, n = 400, 2240
    demographics = {
        "Education": cats(
            size,
            n,
            [
                ("Graduation", 200, 1127),
                ("PhD", 90, 486),
                ("Master", 70, 370),
                ("Basic", 15, 54),
                ("2n Cycle", 25, 203),
            ],
        ),
        "Number of siblings": cats(size, n, [("0.0", 300, 1700), ("1.0", 93, 520), ("5.0", 7, 20)]),
        "Kidhome": cats(size, n, [("0", 360, 1293), ("1", 40, 947)]),
    }
    return persona(size=size, n_users=n, demographics=demographics)


def test_significance_noise_is_not_called_over_represented():
    p = issue_persona()
    sheet = build_fact_sheet(p, n_users=2240)
    text = sheet.render()
    assert (
        '"Basic" 3.8% of this persona (15 users) vs 2.4% of everyone (lift 1.56; not a '
        "significant difference)" in text
    )
    assert '"5.0" 1.8% of this persona (7 users) vs 0.89% of everyone (lift 1.96; not a' in text
    assert '"0" 90% of this persona (360 users) vs 57.7% of everyone (lift 1.56; significantly' in (
        text
    )
    n = draft(sheet)
    assert n.validation and n.validation["ok"]
    assert 'Kidhome "0" is over-represented' in n.summary
    assert "Basic" not in n.summary and "5.0" not in n.summary
    # Independently: Basic is not significant against the rest even alone (p = 0.054);
    # siblings "5.0" is (p = 0.044) but not after Benjamini-Hochberg over the 10 categories.
    assert 0.05 < scipy_p(15, 400, 54 - 15, 2240 - 400) < 0.06
    p_five = scipy_p(7, 400, 20 - 7, 2240 - 400)
    assert p_five < 0.05
    raw = [
        scipy_p(c.count, 400, round(c.population_share * 2240) - c.count, 1840)
        for d in issue_persona().demographics.values()
        if d.kind == "categorical"
        for c in d.categories
    ]
    assert p_five in raw and not bh_rejected(raw, 0.05) & {raw.index(p_five)}
    # An LLM that promotes it anyway is rejected.
    for claim in (
        'Education "Basic" is over-represented: 3.8% vs 2.4%.',
        'Number of siblings "5.0" is over-represented: 1.75% vs 0.89%.',
        "They are disproportionately Basic educated.",
    ):
        reply = Narrative(
            name="Young family",
            summary=claim,
            goals=[Item(text="a", facts=["F1"]), Item(text="b", facts=["F2"])],
            frustrations=[Item(text="c", facts=["F1"]), Item(text="d", facts=["F2"])],
        )
        found = check(reply, sheet).violations
        assert any("over-represented, but" in v for v in found), (claim, found)


def test_significance_min_cell_and_level_are_honoured():
    size, n = 400, 4000
    # 4 users of 400 vs 4 of 4,000: p < 1e-3, but fewer than min_cell users.
    demo = {"segment": cats(size, n, [("rare", 4, 4), ("common", 396, 3996)])}
    sheet = build_fact_sheet(persona(size=size, demographics=demo), n_users=n)
    assert sheet.get("F5").over_represented == []  # type: ignore[union-attr]
    assert sheet.get("F5") is not None
    # min_cell 3: now it counts.
    sheet = build_fact_sheet(persona(size=size, demographics=demo), n_users=n, min_cell=3)
    assert sheet.get("F5").over_represented == ["rare"]  # type: ignore[union-attr]
    # A difference significant at 0.2 but not at 0.05 (BH over this one column's 2 categories).
    demo = {"segment": cats(size, n, [("a", 50, 400), ("b", 350, 3600)])}
    p = two_proportion_p(50, 400, 350, 3600)
    assert 0.05 < min(1.0, p * 2) <= 0.2
    p5 = persona(size=size, demographics=demo)
    narr = OfflineNarrator(NarrationConfig(significance=0.2))
    ctx = CTX.__class__(**{**CTX.__dict__, "n_users": n})
    (loose,) = narr.narrate([p5], ctx)
    (strict,) = OfflineNarrator(NarrationConfig()).narrate([p5], ctx)
    assert 'Segment "a" is over-represented' in loose.summary
    assert "over-represented" not in strict.summary
    with pytest.raises(ValueError):
        NarrationConfig(significance=0)


def test_significance_real_table_claims_pass_a_two_proportion_test():
    """Every offline "over-represented" claim on the marketing table survives the test vs the
    rest of the users at 5%, recomputed from the raw table with pandas and scipy."""
    table = pd.read_csv(shared_dataset("marketing_campaign.csv"), sep="\t")
    demographic = ["Education", "Marital_Status", "Kidhome", "Teenhome"]
    roles = {
        "behavioral": ["Income", "MntWines", "NumCatalogPurchases", "NumWebVisitsMonth"],
        "demographic": demographic,
    }
    claim = re.compile(r'([A-Z][\w ]*?) "([^"]+)" is over-represented')
    for k in (3, 6, 8):
        personas, narratives, _ = narrate_table(table, "ID", k, **roles)
        for p, n in zip(personas, narratives, strict=True):
            for label, value in claim.findall(n.summary):
                col = next(c for c in demographic if c.lower().replace("_", " ") == label.lower())
                demo = p.demographics[col]
                cat = next(c for c in demo.categories if c.value == value)
                in_table = int((table[col].astype(str) == value).sum())
                size = p.size
                p_value = scipy_p(cat.count, size, in_table - cat.count, len(table) - size)
                assert p_value < 0.05, (k, p.persona_id, col, value, p_value)
                assert cat.count >= 5 and cat.p_value == pytest.approx(p_value, rel=1e-6)
