"""The pipeline on real public datasets (../shared/data), checked for the issue's invariants.

The datasets are read in place; derived tables go to tmp_path only, never into the repo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import shared_dataset
from test_pipeline import Outputs, check_invariants

from apg.cli.main import main
from apg.config import Config, parse_config

GRID: dict[str, Any] = {
    "kmeans": {"k": [2, 6], "n_init": 2},
    "agglomerative": {"k": [2, 6], "linkage": ["ward", "average"]},
    "dbscan": {"min_samples": [5, 10]},
}
MARKETING_BEHAVIORAL = [
    "Income",
    "Recency",
    "MntWines",
    "MntFruits",
    "MntMeatProducts",
    "MntFishProducts",
    "MntSweetProducts",
    "MntGoldProds",
    "NumDealsPurchases",
    "NumWebPurchases",
    "NumCatalogPurchases",
    "NumStorePurchases",
    "NumWebVisitsMonth",
]


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def config_from(out_yaml: dict[str, Any]) -> Config:
    return parse_config(out_yaml, "test")


# --------------------------------------------------------------------------- Mall customers


def test_real_mall_customers_full_default_grid(tmp_path: Path) -> None:
    path = shared_dataset("Mall_Customers.csv")
    behavioral = ["Spending Score (1-100)", "Annual Income (k$)"]
    result = cli(
        "run",
        "--data",
        str(path),
        "--id",
        "CustomerID",
        "--behavioral",
        ",".join(behavioral),
        "--demographic",
        "Genre,Age",
        "--out",
        "out",
        "-q",
        "--no-store",
    )
    assert result.exit_code == 0, result.output
    raw = pd.read_csv(path, dtype={"CustomerID": str})  # ids as written: '0001'
    out = Outputs(tmp_path / "out", "CustomerID")
    config = config_from(
        {
            "sources": [{"kind": "file", "path": str(path)}],
            "id_column": "CustomerID",
            "features": {"behavioral": behavioral, "demographic": ["Genre", "Age"]},
        }
    )
    check_invariants(out, raw, "CustomerID", config)
    assert len(out.candidates) > 40  # the default grid, not a restricted one
    assert out.doc["data"]["matrix_columns"] == behavioral
    assert out.doc["data"]["rows_used"] == 200


def test_real_mall_customers_demographics_equal_group_counts(tmp_path: Path) -> None:
    path = shared_dataset("Mall_Customers.csv")
    raw = pd.read_csv(path, dtype={"CustomerID": str})
    config = {
        "sources": [{"kind": "file", "path": str(path)}],
        "id_column": "CustomerID",
        "features": {
            "behavioral": ["Spending Score (1-100)"],
            "attitudinal": [],
            "demographic": ["Genre", "Age"],
        },
        "search": GRID,
    }
    (tmp_path / "mall.yaml").write_text(json.dumps(config))
    result = cli("run", "--config", "mall.yaml", "--out", "out", "-q", "--no-store")
    assert result.exit_code == 0, result.output
    out = Outputs(tmp_path / "out", "CustomerID")
    check_invariants(out, raw, "CustomerID", config_from(config))
    merged = out.assignments.merge(raw, on="CustomerID", validate="one_to_one")
    assert len(merged) == len(raw)
    counts = pd.crosstab(merged["persona_id"], merged["Genre"])
    for p in out.doc["personas"]:
        got = {c["value"]: c["count"] for c in p["demographics"]["Genre"]["categories"]}
        row = counts.loc[p["persona_id"]]
        assert got == {k: int(v) for k, v in row.items() if v > 0}
        ages = merged.loc[merged["persona_id"] == p["persona_id"], "Age"]
        assert p["demographics"]["Age"]["cluster"]["median"] == pytest.approx(ages.median())
    assert "Genre" not in out.doc["data"]["matrix_columns"]
    assert "Age" not in out.features


# --------------------------------------------------------------------------- wholesale


def test_real_wholesale_customers_with_a_made_up_id(tmp_path: Path) -> None:
    path = shared_dataset("wholesale_customers.csv")
    raw = pd.read_csv(path)
    assert "id" not in raw.columns
    raw.insert(0, "id", range(1, len(raw) + 1))
    derived = tmp_path / "wholesale_with_id.csv"
    raw.to_csv(derived, index=False)
    spend = ["Fresh", "Milk", "Grocery", "Frozen", "Detergents_Paper", "Delicassen"]
    config = {
        "sources": [{"kind": "file", "path": str(derived)}],
        "id_column": "id",
        "features": {"behavioral": spend, "demographic": ["Channel", "Region"]},
        "search": GRID,
    }
    (tmp_path / "w.yaml").write_text(json.dumps(config))
    result = cli("run", "--config", "w.yaml", "--out", "out", "-q", "--no-store")
    assert result.exit_code == 0, result.output
    out = Outputs(tmp_path / "out", "id")
    check_invariants(out, raw, "id", config_from(config))
    assert out.doc["data"]["imputed"] == {}
    assert set(out.doc["data"]["matrix_columns"]) == set(spend)
    # Channel (1 = Horeca, 2 = Retail) is a code: described by shares, equal to pandas counts.
    merged = out.assignments.merge(raw.assign(id=raw["id"].astype(str)), on="id")
    counts = pd.crosstab(merged["persona_id"], merged["Channel"])
    for p in out.doc["personas"]:
        channel = p["demographics"]["Channel"]
        assert channel["kind"] == "categorical"
        got = {c["value"]: c["count"] for c in channel["categories"]}
        row = counts.loc[p["persona_id"]]
        assert got == {str(k): int(v) for k, v in row.items() if v > 0}


# --------------------------------------------------------------------------- marketing campaign


def marketing_config(path: Path, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "sources": [{"kind": "file", "path": str(path), "options": {"sep": "\t"}}],
        "id_column": "ID",
        "features": {
            "behavioral": MARKETING_BEHAVIORAL,
            "demographic": ["Education", "Marital_Status", "Year_Birth"],
        },
        "search": {
            "kmeans": {"k": [2, 5], "n_init": 2},
            "agglomerative": {"k": [2, 5], "linkage": ["ward"]},
            "dbscan": {"min_samples": [10]},
        },
    }
    config.update(changes)
    return config


def test_real_marketing_campaign_tab_separated_with_missing_income(tmp_path: Path) -> None:
    path = shared_dataset("marketing_campaign.csv")
    raw = pd.read_csv(path, sep="\t")
    config = marketing_config(path)
    (tmp_path / "m.yaml").write_text(json.dumps(config))
    result = cli("run", "--config", "m.yaml", "--out", "out", "-q", "--no-store")
    assert result.exit_code == 0, result.output
    out = Outputs(tmp_path / "out", "ID")
    check_invariants(out, raw, "ID", config_from(config))
    assert out.doc["data"]["imputed"] == {"Income": int(raw["Income"].isna().sum())}
    assert out.doc["data"]["imputed"]["Income"] > 0
    # The Income outlier is kept as is (no clipping or log transform was configured): its
    # persona's centroid is the plain mean including it, and check_invariants above matched
    # the winner's silhouette on a matrix rebuilt from the unclipped values.
    merged = out.assignments.merge(raw.assign(ID=raw["ID"].astype(str)), on="ID")
    top = merged.loc[merged["Income"].idxmax()]
    assert top["Income"] == raw["Income"].max() > 600_000
    if top["cluster"] >= 0:
        persona = next(p for p in out.doc["personas"] if p["persona_id"] == top["persona_id"])
        members = merged.loc[merged["persona_id"] == top["persona_id"], "Income"]
        assert persona["centroid"]["Income"] == pytest.approx(members.mean())
        assert persona["centroid"]["Income"] > members.drop(members.idxmax()).mean()


def test_real_marketing_campaign_cli_sep_option(tmp_path: Path) -> None:
    path = shared_dataset("marketing_campaign.csv")
    result = cli(
        "run",
        "--data",
        str(path),
        "--sep",
        "\t",
        "--id",
        "ID",
        "--behavioral",
        "MntWines,MntMeatProducts",
        "--demographic",
        "Education",
        "--out",
        "out",
        "-q",
        "--no-store",
    )
    # The default grid runs; the only claim here is that --sep reaches the reader.
    assert result.exit_code == 0, result.output
    assign = pd.read_csv(tmp_path / "out" / "assignments.csv")
    assert sorted(assign["ID"]) == sorted(pd.read_csv(path, sep="\t")["ID"])


def test_real_marketing_campaign_without_sep_is_a_clear_error(tmp_path: Path) -> None:
    path = shared_dataset("marketing_campaign.csv")
    result = cli(
        "run",
        "--data",
        str(path),
        "--id",
        "ID",
        "--behavioral",
        "Income",
        "--sep",
        ",",
        "--out",
        "out",
        "-q",
        "--no-store",
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: source #1 (file {path}): {str(path)!r} reads as a single column "
        "('ID\\tYear_Birth\\tEducation"
    )
    assert result.stderr.endswith(
        "when split on ',', but its header contains '\\t': pass --sep '\\t' (apg run --data, "
        'apg assign) or set this source\'s `options: {sep: "\\t"}`\n'
    )
    assert not (tmp_path / "out").exists()


def test_real_marketing_campaign_constant_column_is_an_error(tmp_path: Path) -> None:
    path = shared_dataset("marketing_campaign.csv")
    config = marketing_config(
        path,
        features={
            "behavioral": [*MARKETING_BEHAVIORAL, "Z_CostContact"],
            "demographic": ["Education"],
        },
    )
    (tmp_path / "m.yaml").write_text(json.dumps(config))
    result = cli("run", "--config", "m.yaml", "--out", "out", "-q", "--no-store")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"error: source #1 (file {path}): column 'Z_CostContact' is constant ("
    )
    assert result.stderr.endswith(
        " in every row) and cannot separate users; remove it from features or set "
        "preprocessing.degenerate_columns: drop\n"
    )
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("default::UserWarning")
def test_real_marketing_campaign_constant_columns_dropped_with_warning(tmp_path: Path) -> None:
    path = shared_dataset("marketing_campaign.csv")
    raw = pd.read_csv(path, sep="\t")
    assert raw["Z_CostContact"].nunique() == raw["Z_Revenue"].nunique() == 1
    config = marketing_config(
        path,
        features={
            "behavioral": [*MARKETING_BEHAVIORAL, "Z_CostContact", "Z_Revenue"],
            "demographic": ["Education", "Marital_Status"],
        },
        preprocessing={"degenerate_columns": "drop"},
    )
    (tmp_path / "m.yaml").write_text(json.dumps(config))
    result = cli("run", "--config", "m.yaml", "--out", "out", "-q", "--no-store")
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert [w.split(": it is")[0] for w in warnings] == [
        f"warning: source #1 (file {path}): dropped column 'Z_CostContact'",
        f"warning: source #1 (file {path}): dropped column 'Z_Revenue'",
    ]
    out = Outputs(tmp_path / "out", "ID")
    assert out.doc["data"]["dropped_columns"] == ["Z_CostContact", "Z_Revenue"]
    assert out.features == MARKETING_BEHAVIORAL
    check_invariants(
        out,
        raw,
        "ID",
        config_from(
            {
                **config,
                "features": {
                    "behavioral": MARKETING_BEHAVIORAL,
                    "demographic": ["Education", "Marital_Status"],
                },
            }
        ),
    )
