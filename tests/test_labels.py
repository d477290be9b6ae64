"""The ``labels:`` section: display names, units, value labels and number formats, from the
config through fact sheets to report.md, report.html, the stored report and personas.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from apg.config import ColumnLabelConfig, parse_config
from apg.errors import ConfigError
from apg.narration.display import (
    Labels,
    check_display_names,
    check_value_labels,
    code_key,
    format_number,
)
from apg.narration.facts import build_fact_sheet
from apg.pipeline import run
from apg.prepare.features import select_features
from apg.profiles.persona import (
    Atypical,
    CategoryShare,
    DemographicProfile,
    NumericSummary,
    OutlierProfile,
    PersonaProfile,
)
from apg.report.data import ReportData
from apg.report.html import _demographics
from apg.report.markdown import demographic_lines
from apg.report.outputs import write_outputs
from apg.store.reports import from_document, to_document

FEATURES = {"behavioral": ["Fresh", "Milk"], "demographic": ["Channel", "Year_Birth"]}


def config(labels: Any = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sources": [{"kind": "file", "path": "users.csv"}],
        "id_column": "id",
        "features": FEATURES,
        **extra,
    }
    if labels is not None:
        data["labels"] = labels
    return data


# ------------------------------------------------------------------------- number formats


def test_labels_formats_by_kind() -> None:
    assert format_number(1971.0, "year") == "1971"
    assert format_number(1970.6, "year") == "1971"
    assert format_number(12.0, "count") == "12"
    assert format_number(1234.0, "count") == "1,234"
    assert format_number(4.37, "count") == "4.4"  # a mean of counts
    assert format_number(12669.0, "currency", unit="$") == "$12,669"
    assert format_number(4.5, "currency", unit="$") == "$4.50"
    assert format_number(-20.0, "currency", unit="€") == "-€20"
    assert format_number(61.5, "currency", unit="k$") == "61.50 k$"
    assert format_number(0.253, "percent") == "25.3%"
    assert format_number(0.253, "percent", decimals=0) == "25%"
    assert format_number(12.5, "plain", unit="days") == "12.5 days"
    assert format_number(45.0, "plain", unit="%") == "45%"
    assert format_number(3.14159, "plain", decimals=2) == "3.14"
    assert format_number(2919.33, "plain") == "2,919"
    assert format_number(float("nan"), "year") == "n/a"


def test_labels_defaults_read_well_without_a_labels_section() -> None:
    shown = Labels()
    assert shown.display_name("Year_Birth") == "birth year"
    assert shown.title("CASH_ADVANCE_FREQUENCY") == "Cash advance frequency"
    assert shown.display_name("MntWines") == "spend on wines"
    # Years: no separator, no decimals; whole numbers without ".0".
    assert shown.format_value("Year_Birth", 1971.0) == "1971"
    assert shown.format_value("Kidhome", 1.0) == "1"
    assert shown.format_value("Income", 51381.5) == "51,382"
    # A unit in the column name's brackets is kept; a score range is not a unit.
    assert shown.format_value("Annual Income (k$)", 61.5) == "61.50 k$"
    assert shown.format_value("Spending Score (1-100)", 50.0) == "50"
    assert shown.format_value("price_usd", 1500.0) == "$1,500"
    assert shown.value_label("Channel", "1") == "1"


def test_labels_configured_names_units_values_and_formats() -> None:
    cfg = parse_config(
        config(
            {
                "Channel": {"name": "sales channel", "values": {1: "Horeca", 2: "Retail"}},
                "Fresh": {"name": "fresh food", "unit": "m.u.", "format": "currency"},
                "Milk": "milk products",
                "Year_Birth": {"format": "year"},
            }
        )
    )
    shown = Labels.from_config(cfg.labels)
    assert shown.display_name("Channel") == "sales channel"
    assert shown.title("Milk") == "Milk products"
    assert shown.format_value("Fresh", 13973.13) == "13,973 m.u."
    # Codes are matched as text: 1, 1.0 and "1" are the same code.
    assert [shown.value_label("Channel", c) for c in (1, 1.0, "1", " 2 ", 3)] == [
        "Horeca",
        "Horeca",
        "Horeca",
        "Retail",
        "3",
    ]
    # The stored form reads back to the same labels (reports rebuilt from the store).
    assert Labels.from_config(shown.to_config()) == shown
    assert Labels.from_config(json.loads(json.dumps(cfg.model_dump(mode="json")["labels"]))) == (
        shown
    )


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_labels_a_code_is_the_same_as_int_float_or_text(n: int) -> None:
    assert code_key(n) == code_key(str(n)) == code_key(f" {n} ") == str(n)
    if abs(n) < 2**53:
        assert code_key(float(n)) == code_key(f"{n}.0") == str(n)


# Letters, digits, punctuation and spaces: what labels are written in (control and
# unassigned characters are stripped by clean(), tested in test_narration_facts).
TEXT = st.characters(categories=["L", "N", "P", "Zs"])


@given(
    st.dictionaries(
        st.one_of(
            st.integers(-1000, 1000), st.text(TEXT, min_size=1, max_size=8).filter(str.strip)
        ),
        st.text(TEXT, min_size=1, max_size=20).filter(str.strip),
        max_size=8,
    )
)
def test_labels_value_keys_parse_to_codes_or_fail_naming_the_repeat(
    values: dict[object, str],
) -> None:
    keys = [code_key(k) for k in values]
    if len(set(keys)) < len(keys):
        with pytest.raises(ValueError, match="is given twice"):
            ColumnLabelConfig.model_validate({"values": values})
        return
    parsed = ColumnLabelConfig.model_validate({"values": values})
    assert parsed.values == {code_key(k): v for k, v in values.items()}
    shown = Labels.from_config({"c": parsed})
    assert all(shown.value_label("c", k) == " ".join(v.split()) for k, v in values.items())


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_labels_every_kind_formats_any_number(value: float) -> None:
    for kind in ("auto", "currency", "percent", "count", "year", "plain"):
        text = format_number(value, kind, unit="$")  # type: ignore[arg-type]
        assert text and "e" not in text.lower().replace("n/a", "")
    assert "," not in format_number(value, "year") and "." not in format_number(value, "year")


# ----------------------------------------------------------------------------- validation


def test_labels_for_a_column_that_is_no_feature_is_an_error_listing_the_features() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config({"Chanel": {"name": "sales channel"}}))
    assert (
        "labels: 'Chanel' is not a feature of this config; label one of Fresh, Milk, Channel, "
        "Year_Birth (names are case-sensitive), or list 'Chanel' under features"
    ) in str(err.value)


def test_labels_value_labels_for_an_amount_are_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config({"Fresh": {"format": "currency", "values": {1: "low"}}}))
    assert "labels.Fresh: value labels name the codes of a category column" in str(err.value)


def names_of(raw: dict[str, Any]) -> None:
    """The check a run makes before reading data (apg.pipeline): display names are told
    apart only once the narration layer humanises the unlabelled ones."""
    cfg = parse_config(raw)
    f = cfg.features
    columns = [*f.behavioral, *f.attitudinal, *f.demographic, *f.outcome]
    check_display_names(Labels.from_config(cfg.labels), columns)


def test_labels_duplicate_display_names_are_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        names_of(config({"Milk": "Fresh"}))
    assert (
        "labels: 'Fresh' and 'Milk' would both be shown as 'Fresh'; give labels.Milk.name "
        "(or labels.Fresh.name) a different name"
    ) in str(err.value)
    # Humanised defaults that meet are no error (no name was chosen); a chosen one is.
    two = {"sources": [{"kind": "file", "path": "u.csv"}], "id_column": "id"}
    names_of({**two, "features": {"behavioral": ["spend", "spend_cents"]}})
    with pytest.raises(ConfigError, match="'spend' and 'spend_cents' would both be shown"):
        names_of(
            {
                **two,
                "features": {"behavioral": ["spend", "spend_cents"]},
                "labels": {"spend_cents": "Spend"},
            }
        )
    with pytest.raises(ConfigError, match="is given twice"):
        parse_config(config({"Channel": {"values": {1: "Horeca", "1.0": "Retail"}}}))
    with pytest.raises(ConfigError, match=r"unknown key 'labels\.Channel\.label'"):
        parse_config(config({"Channel": {"label": "x"}}))


def test_labels_value_labels_on_a_measured_column_are_an_error_at_run_time() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "id": range(50),
            "Fresh": rng.gamma(2.0, 500.0, 50),
            "Milk": rng.gamma(2.0, 500.0, 50),
            "Channel": rng.integers(1, 3, 50),
            "Year_Birth": rng.integers(1940, 2000, 50),
        }
    )
    cfg = parse_config(config({"Fresh": {"values": {1: "one"}}}))
    frame = select_features(table, "id", cfg.features)
    with pytest.raises(ConfigError) as err:
        check_value_labels(Labels.from_config(cfg.labels), frame)
    assert str(err.value).startswith(
        "labels.Fresh.values: 'Fresh' is not a code column (it has fractional values)"
    )
    ok = parse_config(config({"Channel": {"values": {1: "Horeca"}}}))
    check_value_labels(Labels.from_config(ok.labels), frame)  # codes: no error


# ---------------------------------------------------------------------- sheets and reports


def _persona() -> PersonaProfile:
    channel = DemographicProfile(
        kind="categorical",
        categories=[
            CategoryShare(value="1", count=240, share=0.96, population_share=0.68, lift=1.41),
            CategoryShare(value="2", count=10, share=0.04, population_share=0.32, lift=0.125),
        ],
    )
    born = DemographicProfile(
        kind="numeric",
        cluster=NumericSummary(mean=1968.4, median=1967.0, q1=1959.0, q3=1976.0),
        population=NumericSummary(mean=1968.8, median=1970.0, q1=1959.0, q3=1977.0),
    )
    return PersonaProfile(
        persona_id="P1",
        cluster=0,
        size=250,
        share=0.25,
        centroid={},
        contrasts=[],
        demographics={"Channel": channel, "Year_Birth": born},
        representatives=[],
        atypical=Atypical(count=0, ids=[]),
    )


LABELS = Labels.from_config(
    {"Channel": {"name": "sales channel", "values": {1: "Horeca", 2: "Retail"}}}
)


def test_labels_reach_the_fact_sheet() -> None:
    sheet = build_fact_sheet(_persona(), n_users=1000, labels=LABELS)
    channel = next(f for f in sheet.facts if f.feature == "Channel")
    assert channel.label == "sales channel"
    assert channel.text.startswith(
        '"Channel" (sales channel, demographic): "Horeca" 96% of this persona (240 users) vs 68% '
        "of everyone (lift 1.41; significantly over-represented)"
    )
    assert channel.over_represented == ["Horeca"]
    assert [c.value for c in sheet.demographics["Channel"].categories] == ["Horeca", "Retail"]
    born = next(f for f in sheet.facts if f.feature == "Year_Birth")
    assert born.label == "birth year"
    assert born.text == (
        '"Year_Birth" (demographic): persona median 1967 (middle half 1959 to 1976), mean 1968; '
        "everyone median 1970, mean 1969."
    )
    assert {"sales channel", "Horeca", "birth year"} <= set(sheet.labels)
    # Without labels: codes as given, years still without separators.
    plain = build_fact_sheet(_persona(), n_users=1000)
    assert '"1" 96% of this persona' in plain.render() and "1,967" not in plain.render()


def test_labels_reach_the_report_demographics() -> None:
    lines = demographic_lines(_persona(), LABELS)
    assert lines == [
        "- Sales channel: Horeca 96% (×1.41), Retail 4% (×0.12)",
        "- Birth year: median 1967 (everyone 1970)",
    ]
    cards = _demographics(_persona(), 5, LABELS)
    assert [c["label"] for c in cards] == ["Sales channel", "Birth year"]
    assert [b["value"] for b in cards[0]["bars"]] == ["Horeca", "Retail"]
    assert (cards[1]["median"], cards[1]["range"], cards[1]["everyone"]) == (
        "1967",
        "1959–1976",
        "1970",
    )


# ------------------------------------------------------------------------------ a whole run


def wholesale_like(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Two sales channels with different spend, as in the UCI wholesale table."""
    rng = np.random.default_rng(seed)
    channel = rng.choice([1, 2], n, p=[0.65, 0.35])
    retail = channel == 2
    return pd.DataFrame(
        {
            "id": range(n),
            "Fresh": np.where(retail, rng.gamma(2, 2000, n), rng.gamma(2, 8000, n)).round(),
            "Milk": np.where(retail, rng.gamma(4, 2500, n), rng.gamma(2, 1000, n)).round(),
            "Channel": channel,
            "Year_Birth": rng.integers(1945, 2000, n),
        }
    )


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("labels")
    table = wholesale_like()
    table.to_csv(folder / "users.csv", index=False)
    cfg = parse_config(
        config(
            {
                "Channel": {"name": "sales channel", "values": {1: "Horeca", 2: "Retail"}},
                "Fresh": {"name": "fresh food", "unit": "m.u.", "format": "currency"},
            },
            search={"kmeans": {"k": [2, 3], "n_init": 2}, "agglomerative": None, "dbscan": None},
        ),
        base_dir=folder,
    )
    result = run(cfg)
    write_outputs(result, folder / "out")
    return folder / "out", table


def test_labels_reach_report_md_html_and_personas_json(
    labelled_run: tuple[Path, pd.DataFrame],
) -> None:
    out, table = labelled_run
    doc = json.loads((out / "personas.json").read_text(encoding="utf-8"))
    assert doc["data"]["labels"]["Channel"] == {
        "name": "sales channel",
        "format": "plain",
        "values": {"1": "Horeca", "2": "Retail"},
    }
    assert doc["data"]["labels"]["Fresh"] == {
        "name": "fresh food",
        "format": "currency",
        "unit": "m.u.",
    }
    assert doc["data"]["labels"]["Year_Birth"] == {"name": "birth year", "format": "year"}
    # Files and JSON keep the column names and codes.
    assert {c["value"] for c in doc["personas"][0]["demographics"]["Channel"]["categories"]} <= {
        "1",
        "2",
    }
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assignments = pd.read_csv(out / "assignments.csv")
    for p in doc["personas"]:
        rows = table.set_index("id").loc[assignments.loc[assignments.cluster == p["cluster"], "id"]]
        top = rows["Channel"].value_counts(normalize=True)
        name = {1: "Horeca", 2: "Retail"}[int(top.index[0])]
        assert f"- Sales channel: {name} {top.iloc[0]:.0%}" in md
        median = f"{rows['Year_Birth'].median():.0f}"
        assert f"- Birth year: median {median} (everyone {table['Year_Birth'].median():.0f})" in md
    assert "Sales channel" in html and "Horeca" in html and "Birth year" in html
    assert "1,9" not in md.split("## Personas")[1]  # no "1,971.0"


def test_labels_survive_the_stored_report_document() -> None:
    data = ReportData(
        run_id="r",
        created_at="2024-01-01T00:00:00Z",
        personas=[_persona()],
        outliers=OutlierProfile(size=0, share=0.0),
        candidates=[],
        labels=LABELS,
    )
    again = from_document(json.loads(json.dumps(to_document(data))))
    assert again.labels == LABELS
    # Reports stored before labels existed read with the defaults.
    assert from_document({**to_document(data), "labels": None}).labels == Labels()
