"""Categorical behaviour as contrasts: per-category share vs everyone, ranked with the numeric
contrasts on one scale, tested before it is called over- or under-represented, and shown in
names, summaries, cards and reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fake_openai import persona
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency
from test_narration_offline import narrate_table

from apg.cli.main import main
from apg.narration.facts import build_fact_sheet
from apg.narration.grounding import check
from apg.narration.offline import draft, name_parts
from apg.profiles.narrative import Item, Narrative
from apg.profiles.persona import CategoryContrast

CONTRACTS = ("Month-to-month", "One year", "Two year")
INTERNET = ("Fiber optic", "DSL", "No")
# Three planted groups: contract and internet service decide them; charges and tenure help.
GROUPS = [
    ("Month-to-month", "Fiber optic", 85.0, 8.0),
    ("Two year", "DSL", 60.0, 60.0),
    ("One year", "No", 22.0, 30.0),
]
BEHAVIORAL = ["Contract", "InternetService", "MonthlyCharges", "tenure", "PaymentMethod"]


def telecom(seed: int = 0, n: int = 300) -> pd.DataFrame:
    """A telecom-like table: 85% of each group holds its planted contract and service."""
    rng = np.random.default_rng(seed)
    parts = []
    for contract, internet, charge, tenure in GROUPS:
        other_c = [c for c in CONTRACTS if c != contract]
        other_i = [i for i in INTERNET if i != internet]
        parts.append(
            pd.DataFrame(
                {
                    "Contract": np.where(rng.random(n) < 0.85, contract, rng.choice(other_c, n)),
                    "InternetService": np.where(
                        rng.random(n) < 0.85, internet, rng.choice(other_i, n)
                    ),
                    "MonthlyCharges": rng.normal(charge, 12, n).round(2).clip(15),
                    "tenure": rng.normal(tenure, 10, n).round().clip(0, 72),
                    "PaymentMethod": rng.choice(["Electronic check", "Mailed check", "Card"], n),
                    "gender": rng.choice(["Female", "Male"], n),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "customerID", [f"C{i:04d}" for i in range(len(table))])
    return table


@pytest.fixture(scope="module")
def narrated():
    table = telecom()
    personas, narratives, n_users = narrate_table(
        table, "customerID", 3, behavioral=BEHAVIORAL, demographic=["gender"]
    )
    return table, personas, narratives, n_users


def test_categories_contrasts_match_the_table(narrated):
    table, personas, _, _ = narrated
    n = len(table)
    for p in personas:
        assert p.category_contrasts, p.persona_id
        for c in p.category_contrasts:
            indicator = (table[c.feature].astype(str) == c.value).astype(float)
            everyone = indicator.mean()
            # The persona's members: the share and count must reproduce from the table.
            assert c.population_share == pytest.approx(everyone)
            assert c.count == round(c.share * p.size)
            # Same scale as a numeric contrast: the indicator's standardised mean difference.
            assert c.std_diff == pytest.approx((c.share - everyone) / indicator.std(ddof=1))
            # Two-proportion test against the rest = Pearson's chi-square without correction.
            rest_x = int(indicator.sum()) - c.count
            grid = [[c.count, p.size - c.count], [rest_x, (n - p.size) - rest_x]]
            if min(sum(r) for r in zip(*grid, strict=True)) > 0:
                _, want, _, _ = chi2_contingency(grid, correction=False)
                assert c.p_value == pytest.approx(want, rel=1e-6, abs=1e-12)


def test_categories_name_or_summary_of_every_planted_group(narrated):
    _, personas, narratives, n_users = narrated
    assert len(personas) == 3
    for p, n in zip(personas, narratives, strict=True):
        # The group's planted contract and internet service: its over-represented categories.
        top = {c.feature: c.value for c in p.category_contrasts if c.direction == "higher"}
        contract, internet = top["Contract"], top["InternetService"]
        assert (contract, internet) in {(g[0], g[1]) for g in GROUPS}
        said = f"{n.name} {n.summary}"
        assert f'"{contract}"' in said or contract.lower().replace(" ", "-") in said.lower()
        assert f'"{internet}"' in n.summary or f'"{contract}"' in n.summary, n.summary
        assert n.validation and n.validation["ok"], n.validation
        sheet = build_fact_sheet(p, n_users=n_users)
        facts = [f for f in sheet.contrasts() if f.category is not None]
        assert any(f.category == contract and "over-represented" in f.text for f in facts)


def test_categories_names_use_only_significant_over_represented_categories(narrated):
    _, personas, _, n_users = narrated
    for p in personas:
        sheet = build_fact_sheet(p, n_users=n_users)
        for fact, key, *_ in name_parts(sheet):
            if fact.category is not None:
                assert key.startswith("category:")
                assert fact.direction == "higher" and fact.category in fact.over_represented


def test_categories_rank_with_numeric_contrasts_by_standard_deviations(narrated):
    _, personas, _, n_users = narrated
    for p in personas:
        sheet = build_fact_sheet(p, n_users=n_users)
        sds = [abs(f.std_diff or 0) for f in sheet.contrasts()]
        assert sds == sorted(sds, reverse=True)
        assert {f.category is None for f in sheet.contrasts()} == {True, False}


def _cat(value: str, count: int, size: int, pop: float, p: float) -> CategoryContrast:
    share = count / size
    sd = math.sqrt(pop * (1 - pop))
    diff = (share - pop) / sd
    return CategoryContrast(
        feature="Contract",
        value=value,
        role="behavioral",
        count=count,
        share=share,
        population_share=pop,
        lift=share / pop,
        std_diff=diff,
        direction="higher" if diff > 0 else "lower" if diff < 0 else "same",
        p_value=p,
    )


def _sheet_with(*cats: CategoryContrast, size: int = 400):
    p = persona(size=size, contrasts=[], demographics={}).model_copy(
        update={"category_contrasts": list(cats)}
    )
    return build_fact_sheet(p, n_users=1000)


def test_categories_not_significant_is_said_so_and_never_names():
    # 44% vs 40%: p = 0.2 -> not significant, though the lift is 1.1.
    sheet = _sheet_with(
        _cat("Month-to-month", 176, 400, 0.40, 0.2),
        _cat("Two year", 40, 400, 0.3, 0.5),
        _cat("One year", 120, 400, 0.3, 1.0),  # a third value: not two complements
    )
    fact = next(f for f in sheet.contrasts() if f.category == "Month-to-month")
    assert "not a significant difference" in fact.text and not fact.over_represented
    assert all(f.category is None for f, *_ in name_parts(sheet))
    claim = Narrative(
        name="Contract holders",
        tagline="x",
        summary='Contract "Month-to-month" is over-represented: 44% of them.',
        goals=[Item(text="a", facts=["F1"]), Item(text="b", facts=["F1"])],
        frustrations=[Item(text="c", facts=["F1"]), Item(text="d", facts=["F1"])],
    )
    assert any("over-represented" in v for v in check(claim, sheet).violations)


def test_categories_under_represented_needs_the_test_too():
    # 10% vs 30%: p tiny -> significantly under-represented; 28% vs 30%, p = 0.4 is not.
    sheet = _sheet_with(
        _cat("Two year", 40, 400, 0.30, 1e-12),
        _cat("One year", 112, 400, 0.3, 0.4),
        _cat("Month-to-month", 160, 400, 0.4, 1.0),
    )
    two = next(f for f in sheet.contrasts() if f.category == "Two year")
    assert "significantly under-represented" in two.text and two.under_represented == ["Two year"]

    def said(summary: str) -> list[str]:
        n = Narrative(
            name="Flexible customer",
            tagline="x",
            summary=summary,
            goals=[Item(text="a", facts=["F1"]), Item(text="b", facts=["F1"])],
            frustrations=[Item(text="c", facts=["F1"]), Item(text="d", facts=["F1"])],
        )
        return check(n, sheet).violations

    assert said('Contract "Two year" is under-represented: 10% of them.') == []
    assert any("under-represented" in v for v in said('"One year" is under-represented.'))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cats=st.lists(
        st.tuples(
            st.sampled_from(
                ["Yes", "No", "Month-to-month", "PhD", "(missing)", "2", "Fiber optic"]
            ),
            st.integers(0, 400),
            st.floats(0.01, 0.99),
            st.floats(0.0, 1.0),
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda t: t[0],
    )
)
def test_categories_property_offline_text_is_grounded_and_names_agree(cats):
    sheet = _sheet_with(*(_cat(v, c, 400, pop, p) for v, c, pop, p in cats if c / 400 != pop))
    n = draft(sheet)
    assert n.validation and n.validation["ok"], (sheet.render(), n.validation)
    for fact, *_ in name_parts(sheet):
        assert fact.category in fact.over_represented and fact.direction == "higher"
        assert fact.category not in ("(missing)",)


def test_categories_reach_cards_reports_and_json(tmp_path: Path):
    (tmp_path / "t.csv").write_text(telecom(n=150).to_csv(index=False))
    config = {
        "sources": [{"kind": "file", "path": "t.csv"}],
        "id_column": "customerID",
        "features": {"behavioral": BEHAVIORAL, "demographic": ["gender"]},
        "search": {"kmeans": {"k": [3], "n_init": 2}, "seed": 0},
    }
    (tmp_path / "c.yaml").write_text(json.dumps(config))
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--config",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "o"),
            "-q",
            "--no-store",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "o" / "personas.json").read_text())
    html = (tmp_path / "o" / "report.html").read_text()
    md = (tmp_path / "o" / "report.md").read_text()
    for p in doc["personas"]:
        assert "contrasts" in p and "categories" in p  # older fields stay
        top = max(p["category_contrasts"], key=lambda c: c["std_diff"])
        assert top["feature"] in ("Contract", "InternetService")
        # Card: "Contract: Month-to-month" with both shares; report.md: "Contract = ...".
        assert (
            f"{'Contract' if top['feature'] == 'Contract' else 'Internet service'}: {top['value']}"
            in html
        )
        # report.md's table: the display name, the column in parentheses when they differ.
        name = "Contract" if top["feature"] == "Contract" else "Internet service (InternetService)"
        assert f"| {name} = {top['value']} | {top['share']:.1%} |" in md
