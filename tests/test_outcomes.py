"""The outcome role: never clustered; each persona's rate or mean against everyone, equal to
pandas' group figures, in personas.json, the fact sheet, the reports, exports and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import shared_dataset
from markupsafe import escape

from apg.cli.main import main
from apg.config import FeaturesConfig, parse_config
from apg.narration.facts import build_fact_sheet
from apg.pipeline import run
from apg.prepare.features import select_features
from apg.profiles.outcomes import OutcomeRule, outcome_summary
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL

GRID: dict[str, Any] = {
    "kmeans": {"k": [3, 4], "n_init": 2},
    "agglomerative": None,
    "dbscan": None,
}


def users_with_outcomes(sample_users: pd.DataFrame) -> pd.DataFrame:
    frame = sample_users.head(600).copy()
    rng = np.random.default_rng(7)
    # Churn depends on behaviour, so personas differ in it; a few unknowns.
    p = 1 / (1 + np.exp(0.3 * (frame["logins_per_month"] - frame["logins_per_month"].mean())))
    frame["churn"] = (rng.random(len(frame)) < p).astype(int)
    frame["churned"] = np.where(frame["churn"] == 1, "Yes", "No")
    frame.loc[frame.index[:15], "churned"] = None
    frame["revenue"] = rng.gamma(2.0, 40.0, len(frame))
    frame["plan"] = rng.choice(["free", "team", "enterprise"], len(frame))
    return frame


def write_config(tmp_path: Path, csv: str, **features: list[str]) -> Path:
    raw = {
        "sources": [{"kind": "file", "path": csv}],
        "id_column": "user_id",
        "features": {"behavioral": list(BEHAVIORAL), "attitudinal": list(ATTITUDINAL), **features},
        "search": GRID,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("values", "kind", "positive"),
    [
        ([1, 0, 0, 1, None], "rate", "1"),
        ([True, False, False, True, None], "rate", "True"),
        (["Yes", "No", "No", "Yes", None], "rate", "Yes"),
        (["stayed", "left", "stayed", "stayed", None], "rate", "left"),  # the rarer value
        ([3.5, 1.0, 2.0, 9.0, None], "mean", None),
        (["a", "b", "c", "a", None], "shares", None),
    ],
    ids=["0/1", "bool", "yes/no", "two words", "numeric", "many values"],
)
def test_outcome_rule_kind_and_positive_value(
    values: list[object], kind: str, positive: str | None
) -> None:
    series = pd.Series(values, dtype="boolean" if isinstance(values[0], bool) else None)
    rule = OutcomeRule("o", series)
    assert (rule.kind, rule.positive) == (kind, positive)


def test_outcome_rates_and_means_equal_pandas_groups(sample_users: pd.DataFrame) -> None:
    frame = users_with_outcomes(sample_users)
    labels = (np.arange(len(frame)) % 3).astype(np.intp)
    churned = frame["churned"].map({"Yes": 1.0, "No": 0.0})  # None stays missing
    for col, expected_all in (("churn", frame["churn"]), ("churned", churned)):
        rule = OutcomeRule(col, frame[col].reset_index(drop=True))
        for c in range(3):
            stat = rule.describe(labels == c)
            group = expected_all[labels == c]
            assert stat.value == pytest.approx(group.mean(), abs=1e-12)
            assert stat.population == pytest.approx(expected_all.mean(), abs=1e-12)
            assert stat.difference == pytest.approx(group.mean() - expected_all.mean(), abs=1e-12)
            assert stat.lift == pytest.approx(group.mean() / expected_all.mean(), rel=1e-12)
            assert stat.known == int(group.notna().sum())
    rule = OutcomeRule("revenue", frame["revenue"].reset_index(drop=True))
    stat = rule.describe(labels == 1)
    assert stat.kind == "mean"
    assert stat.value == pytest.approx(frame["revenue"][labels == 1].mean(), rel=1e-12)
    plan = OutcomeRule("plan", frame["plan"].reset_index(drop=True)).describe(labels == 2)
    shares = frame["plan"][labels == 2].value_counts(normalize=True)
    assert {s.value: s.share for s in plan.shares} == pytest.approx(shares.to_dict())


def test_outcome_summary_speaks_in_points_and_multiples() -> None:
    rule = OutcomeRule("Churn", pd.Series(["Yes"] * 3 + ["No"] * 7 + ["Yes"] * 1 + ["No"] * 9))
    mask = np.array([True] * 10 + [False] * 10)
    assert outcome_summary(rule.describe(mask)) == (
        "Churn = Yes rate 30.0% vs 20.0% of everyone (+10.0 points, 1.50× everyone's)"
    )


def test_outcome_is_never_clustered_and_matches_assignments(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    frame = users_with_outcomes(sample_users)
    frame.to_csv(tmp_path / "users.csv", index=False)
    with_outcome = parse_config(
        yaml.safe_load(
            write_config(tmp_path, "users.csv", outcome=["churn", "churned", "revenue"]).read_text()
        ),
        base_dir=tmp_path,
    )
    without = parse_config(
        yaml.safe_load(write_config(tmp_path, "users.csv").read_text()), base_dir=tmp_path
    )
    a, b = run(with_outcome), run(without)
    assert np.array_equal(a.labels, b.labels)  # the outcome changes nothing in the clustering
    assert a.prepared.columns == b.prepared.columns
    for p in a.personas:
        members = frame["churn"].to_numpy()[a.labels == p.cluster]
        assert p.outcomes["churn"].value == pytest.approx(members.mean(), abs=1e-12)
        assert p.outcomes["churn"].population == pytest.approx(frame["churn"].mean(), abs=1e-12)
    sheet = build_fact_sheet(a.personas[0], n_users=len(a.labels))
    (fact,) = [f for f in sheet.of_kind("outcome") if f.feature == "churn"]
    o = a.personas[0].outcomes["churn"]
    assert fact.text == (
        f'"churn" (outcome rate): {o.value:.1%} of this persona vs {o.population:.1%} of everyone '
        f"({o.difference * 100:+.1f} points, {o.lift:.2f}× everyone's rate)."
    )


def test_outcome_in_reports_exports_and_cli(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    frame = users_with_outcomes(sample_users)
    frame.to_csv(tmp_path / "users.csv", index=False)
    cfg = write_config(tmp_path, "users.csv", outcome=["churn"])
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--config", str(cfg), "--out", "out", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "personas.json").read_text())
    assign = pd.read_csv(tmp_path / "out" / "assignments.csv", dtype={"user_id": str})
    merged = assign.merge(frame[["user_id", "churn"]], on="user_id")
    rates = merged.groupby("persona_id")["churn"].mean()
    lines = []
    for p in doc["personas"]:
        stat = p["outcomes"]["churn"]
        assert stat["value"] == pytest.approx(rates[p["persona_id"]], abs=1e-12)
        lines.append(
            f"churn rate {stat['value']:.1%} vs {stat['population']:.1%} of everyone "
            f"({stat['difference'] * 100:+.1f} points, {stat['lift']:.2f}× everyone's)"
        )
    md = (tmp_path / "out" / "report.md").read_text()
    html = (tmp_path / "out" / "report.html").read_text()
    for line in lines:
        assert f"- {line}" in md
        assert str(escape(line)) in html
    pid = doc["personas"][0]["persona_id"]
    shown = runner.invoke(main, ["personas", "show", pid])
    assert f"Outcomes:\n- {lines[0]}\n" in shown.stdout
    exported = runner.invoke(main, ["export", "--format", "csv"]).stdout
    rows = pd.read_csv(pd.io.common.StringIO(exported))
    assert rows.set_index("persona_id").loc[pid, "outcomes"] == lines[0]
    # A stored model needs no outcome column to place new users.
    frame.drop(columns=["churn"]).head(50).to_csv(tmp_path / "new.csv", index=False)
    placed = runner.invoke(main, ["assign", "--data", "new.csv", "--out", "labels.csv"])
    assert placed.exit_code == 0, placed.output


def test_outcome_role_conflicts_are_config_errors() -> None:
    with pytest.raises(ValueError, match="column 'churn' is given both behavioral and outcome"):
        FeaturesConfig(behavioral=["churn"], outcome=["churn"])


def test_outcome_missing_column_names_it(sample_users: pd.DataFrame) -> None:
    from apg.errors import DataError

    with pytest.raises(DataError, match=r"outcome column\(s\) 'churn' not found"):
        select_features(
            sample_users,
            "user_id",
            FeaturesConfig(behavioral=["logins_per_month"], outcome=["churn"]),
        )


def run_marketing(tmp_path: Path, **roles: list[str]) -> tuple[pd.DataFrame, Any]:
    """A small grid run on marketing_campaign.csv with four spend and visit features."""
    table = pd.read_csv(shared_dataset("marketing_campaign.csv"), sep="\t")
    table.to_csv(tmp_path / "m.csv", index=False)
    behavioral = ["Recency", "MntWines", "MntMeatProducts", "NumWebPurchases"]
    raw = {
        "sources": [{"kind": "file", "path": "m.csv"}],
        "id_column": "ID",
        "features": {"behavioral": behavioral, **roles},
        "search": GRID,
    }
    return table, run(parse_config(raw, base_dir=tmp_path))


def test_outcome_response_rates_on_the_marketing_table(tmp_path: Path) -> None:
    table, result = run_marketing(tmp_path, outcome=["Response"])
    response = table.set_index("ID").loc[result.frame.ids.astype(int), "Response"].to_numpy()
    for p in result.personas:
        assert p.outcomes["Response"].value == pytest.approx(
            response[result.labels == p.cluster].mean(), abs=1e-12
        )


def test_demographic_dates_are_described_by_median_dates(tmp_path: Path) -> None:
    table, result = run_marketing(tmp_path, demographic=["Dt_Customer"])
    assert result.frame.demographic_dates == ["Dt_Customer"]
    dates = pd.to_datetime(
        table.set_index("ID").loc[result.frame.ids.astype(int), "Dt_Customer"].to_numpy(),
        format="%d-%m-%Y",
    )
    for p in result.personas:
        demo = p.demographics["Dt_Customer"]
        assert demo.kind == "date" and demo.categories == []  # not one share per day
        members = np.sort(dates[result.labels == p.cluster].to_numpy())
        lower_median = pd.Timestamp(members[(len(members) - 1) // 2]).date().isoformat()
        assert demo.cluster_dates is not None and demo.cluster_dates.median == lower_median
        sheet = build_fact_sheet(p, n_users=len(result.labels))
        (fact,) = [f for f in sheet.facts if f.feature == "Dt_Customer"]
        assert fact.text.startswith(
            f'"Dt_Customer" (demographic): persona median date {lower_median}'
        )
