"""``apg run --data``, the quick form: row numbers as ids, separator detection, --na-values,
--outcome, --k, --algorithms and column lists from files; whole stdout/stderr and exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result
from test_cli import GRID, expected_summary

from apg.cli.main import main
from apg.cli.run import ROW_ID, apply_search_options, quick_config
from apg.cli.run import run as run_command

FEATURES = ["--behavioral", "logins_per_month,sessions_per_week,purchases_per_year"]
FAST = ["--k", "2-3", "--algorithms", "kmeans", "--no-store"]
NO_ID_NOTE = (
    "read: no --id, so users are numbered by row in a new column 'row' (1 = the first data "
    "row); matching personas across runs then relies on the rows keeping their order"
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=True)


def users(sample_users: pd.DataFrame, rows: int = 300) -> pd.DataFrame:
    """Sample users without an id column, with a 0/1 outcome the clustering never sees."""
    frame = sample_users.head(rows).drop(columns="user_id").reset_index(drop=True)
    return frame.assign(churned=(frame["support_tickets"] >= 2).astype(int))


def candidates(out: str = "out") -> pd.DataFrame:
    return pd.read_csv(Path(out) / "candidates.csv")


# --------------------------------------------------------------------------- success


def test_cli_quick_without_id_numbers_rows_detects_separator_and_reports_outcome(
    sample_users: pd.DataFrame,
) -> None:
    frame = users(sample_users)
    frame.to_csv("users.csv", sep=";", index=False)
    result = invoke("--data", "users.csv", *FEATURES, "--outcome", "churned", *FAST)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected_summary(Path("apg-output"), ROW_ID)
    assert result.stderr.splitlines()[:5] == [
        "read: users.csv separated by ';' (detected)",
        NO_ID_NOTE,
        "read: loading sources",
        "read: 300 rows, 18 columns",
        "prepare: 300 rows x 3 columns",
    ]
    assign = pd.read_csv("apg-output/assignments.csv")
    assert list(assign.columns) == ["row", "cluster", "persona_id"]
    assert assign["row"].tolist() == list(range(1, 301))
    # The outcome of each persona is the pandas rate of its members, matched by row number.
    rates = frame["churned"].groupby(assign["persona_id"]).mean()
    doc = json.loads(Path("apg-output/personas.json").read_text(encoding="utf-8"))
    assert doc["data"]["features"] == {"behavioral": FEATURES[1].split(","), "attitudinal": []}
    for persona in doc["personas"]:
        stat = persona["outcomes"]["churned"]
        assert stat["kind"] == "rate"
        assert stat["value"] == pytest.approx(rates[persona["persona_id"]], abs=1e-12)
    assert set(candidates("apg-output")["algorithm"]) == {"kmeans"}


@pytest.mark.parametrize(
    ("sep", "name", "shown"),
    [(",", "u.csv", "','"), (";", "u.csv", "';'"), ("\t", "u.txt", "'\\t'"), ("|", "u.csv", "'|'")],
    ids=["comma", "semicolon", "tab", "pipe"],
)
def test_cli_quick_detects_each_separator_with_the_same_results(
    sample_users: pd.DataFrame, sep: str, name: str, shown: str
) -> None:
    frame = sample_users.head(200).copy()
    # A quoted text field holding the other separators, in every row.
    frame["note"] = ["a,b;c\td|e"] * len(frame)
    frame.to_csv("ref.csv", index=False)
    frame.to_csv(name, sep=sep, index=False)
    args = ["--id", "user_id", *FEATURES, "--demographic", "note", *FAST]
    ref = invoke("--data", "ref.csv", "--sep", ",", *args, "--out", "ref", "-q")
    got = invoke("--data", name, *args, "--out", "got")
    assert ref.exit_code == got.exit_code == 0, got.output
    assert got.stderr.splitlines()[0] == f"read: {name} separated by {shown} (detected)"
    assert Path("got/assignments.csv").read_bytes() == Path("ref/assignments.csv").read_bytes()


def test_cli_quick_reports_the_default_separator_when_none_fits(
    sample_users: pd.DataFrame,
) -> None:
    frame = sample_users.head(100)[["user_id", "nps", "logins_per_month"]]
    text = frame.to_csv(index=False)
    Path("u.csv").write_text(text + "u999,3,4,extra\n", encoding="utf-8")  # one ragged line
    result = invoke(
        "--data", "u.csv", "--id", "user_id", "--behavioral", "nps,logins_per_month", *FAST
    )
    assert result.stderr.splitlines()[0] == (
        "read: u.csv separated by ',' (the default for .csv: no separator splits every line "
        "into the same number of fields; pass --sep to choose)"
    )
    assert result.exit_code == 1


def test_cli_quick_quiet_prints_no_notes(sample_users: pd.DataFrame) -> None:
    users(sample_users).to_csv("users.csv", sep="|", index=False)
    result = invoke("--data", "users.csv", *FEATURES, *FAST, "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_cli_quick_na_values_mark_missing(sample_users: pd.DataFrame) -> None:
    frame = sample_users.head(200).copy()
    already = int(frame["nps"].isna().sum())
    frame["nps"] = frame["nps"].astype(object)
    frame.loc[[3, 7], "nps"] = "n/a"
    frame.loc[11, "nps"] = "unknown, asked twice"
    frame.to_csv("users.csv", index=False)
    args = ["--data", "users.csv", "--id", "user_id", *FEATURES, "--attitudinal", "nps", *FAST]
    plain = invoke(*args, "-q")
    assert plain.exit_code == 1
    assert plain.stderr == (
        "error: source #1 (file users.csv): column 'nps' is numeric but has non-numeric text, "
        "e.g. 'unknown, asked twice'; clean the value or mark it missing\n"
    )
    result = invoke(*args, "--na-values", 'n/a,"unknown, asked twice"', "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("apg-output/personas.json").read_text(encoding="utf-8"))
    assert doc["data"]["imputed"] == {"nps": already + 3}


def test_cli_quick_column_lists_from_files_and_quotes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(120)],
            "Spend, EUR": np.r_[rng.normal(10, 1, 60), rng.normal(50, 1, 60)],
            "visits": np.r_[rng.normal(2, 0.5, 60), rng.normal(9, 0.5, 60)],
            '"Score"': rng.normal(0, 1, 120),
            "# of orders": rng.integers(0, 5, 120),
        }
    )
    frame.to_csv("shop.csv", index=False)
    Path("behavioral.txt").write_text("# what people do\nSpend, EUR\n\nvisits\n", encoding="utf-8")
    Path("outcomes.txt").write_text('"# of orders"\n', encoding="utf-8")
    result = invoke(
        "--data",
        "shop.csv",
        "--id",
        "id",
        "--behavioral",
        "@behavioral.txt",
        "--attitudinal",
        '"""Score"""',
        "--outcome",
        "@outcomes.txt",
        *FAST,
        "-q",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("apg-output/personas.json").read_text(encoding="utf-8"))
    assert doc["data"]["features"] == {
        "behavioral": ["Spend, EUR", "visits"],
        "attitudinal": ['"Score"'],
    }
    assert set(doc["personas"][0]["outcomes"]) == {"# of orders"}


def test_cli_quick_k_range_and_algorithms(sample_users: pd.DataFrame) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    args = ["--data", "users.csv", "--id", "user_id", *FEATURES, "--no-store", "-q"]
    result = invoke(*args, "--k", "3-4", "--algorithms", "agglomerative,kmeans")
    assert result.exit_code == 0, result.output
    cands = candidates("apg-output")
    assert sorted(set(zip(cands["algorithm"], cands["n_clusters"], strict=True))) == [
        ("agglomerative", 3),
        ("agglomerative", 4),
        ("kmeans", 3),
        ("kmeans", 4),
    ]
    assert len(cands) == 2 + 2 * 3  # kmeans k=3,4; three linkages each at k=3,4


def test_k_and_algorithms_set_the_search_grid() -> None:
    """--k sets both k grids and raises search.max_clusters (10), which would otherwise reject
    every candidate of --k 11-12; --algorithms disables the others."""
    roles = {"behavioral": ["nps"]}
    config = quick_config(Path("u.csv"), "user_id", roles)
    apply_search_options(config, "11-12", None)
    assert config.search.kmeans is not None and config.search.agglomerative is not None
    assert config.search.kmeans.k == config.search.agglomerative.k == [11, 12]
    assert config.search.max_clusters == 12
    assert config.search.dbscan is not None
    config = quick_config(Path("u.csv"), "user_id", roles)
    apply_search_options(config, "3-5", "kmeans")
    assert config.search.kmeans is not None and config.search.kmeans.k == [3, 4, 5]
    assert config.search.agglomerative is None and config.search.dbscan is None
    assert config.search.max_clusters == 10  # never lowered


def test_cli_config_with_k_and_algorithms_overrides_the_grid(sample_users: pd.DataFrame) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    config: dict[str, Any] = {
        "sources": [{"kind": "file", "path": "users.csv"}],
        "id_column": "user_id",
        "features": {"behavioral": FEATURES[1].split(",")},
        "search": {**GRID, "kmeans": None},
    }
    Path("run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = invoke(
        "--config", "run.yaml", "--k", "3", "--algorithms", "kmeans,dbscan", "--no-store", "-q"
    )
    assert result.exit_code == 0, result.output
    cands = candidates("apg-output")
    assert set(cands["algorithm"]) == {"kmeans", "dbscan"}
    kmeans = cands[cands["algorithm"] == "kmeans"]
    assert [json.loads(p) for p in kmeans["params"]] == [{"k": 3}]  # default grid, k from --k


def test_cli_run_help_documents_every_option() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for param in run_command.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert opt in result.stdout
                assert re.search(rf"`apg run [^`]*{re.escape(opt)}\b", readme), opt
    assert "Examples:" in result.stdout
    assert "@cols.txt" in result.stdout
    assert "apg run --data export.csv --sep ';'" in result.stdout


# --------------------------------------------------------------------------- bad input

DATA = ["--data", "ok.csv", "--id", "user_id"]
BAD: list[tuple[str, list[str], str]] = [
    (
        "empty name",
        [*DATA, "--behavioral", "nps,,age"],
        "--behavioral 'nps,,age': column name 2 is empty (''); remove the extra comma",
    ),
    (
        "trailing comma and space",
        [*DATA, "--behavioral", "nps, "],
        "--behavioral 'nps, ': column name 2 is blank (' '); remove it (a column name made of "
        'spaces goes in double quotes: " ")',
    ),
    (
        "empty attitudinal",
        [*DATA, "--behavioral", "nps", "--attitudinal", ""],
        "--attitudinal '': no column names given; list them comma-separated, or give @FILE "
        "with one a line",
    ),
    (
        "outcome file missing",
        [*DATA, "--behavioral", "nps", "--outcome", "@outcomes.txt"],
        "--outcome '@outcomes.txt': file 'outcomes.txt' does not exist; a column name that "
        'starts with @ goes in double quotes: "@name"',
    ),
    (
        "bad na marker",
        [*DATA, "--behavioral", "nps", "--na-values", "n/a,"],
        "--na-values 'n/a,': marker 2 is empty (''); remove the extra comma",
    ),
    (
        "k backwards",
        [*DATA, "--behavioral", "nps", "--k", "8-3"],
        "--k '8-3': the range runs backwards; write MIN-MAX, e.g. 3-8",
    ),
    (
        "k below two",
        [*DATA, "--behavioral", "nps", "--k", "1-4"],
        "--k '1-4': every k must be at least 2 (two personas)",
    ),
    (
        "k not a number",
        [*DATA, "--behavioral", "nps", "--k", "three"],
        "--k 'three': give a number of clusters (5) or a range MIN-MAX (3-8) in digits",
    ),
    (
        "unknown algorithm",
        [*DATA, "--behavioral", "nps", "--algorithms", "kmeans,hdbscan"],
        "--algorithms 'kmeans,hdbscan': unknown algorithm 'hdbscan'; choose from kmeans, "
        "agglomerative, dbscan",
    ),
    (
        "k without its algorithms",
        [*DATA, "--behavioral", "nps", "--algorithms", "dbscan", "--k", "3-5"],
        "--k '3-5' sets the k of kmeans and agglomerative, but --algorithms 'dbscan' keeps "
        "neither; drop --k or run one of them",
    ),
    (
        "empty id",
        ["--data", "ok.csv", "--id", "", "--behavioral", "nps"],
        "--id '': give the id column's name, or leave --id out to number the rows",
    ),
    (
        "row listed without id",
        ["--data", "ok.csv", "--behavioral", "nps,row"],
        "without --id the rows are numbered into a new column 'row', but 'row' is listed in "
        "--behavioral; pass --id COLUMN naming the id column",
    ),
    (
        "row column exists",
        ["--data", "rows.csv", "--behavioral", "nps"],
        "source #1 (file rows.csv): the table already has a column 'row', so rows cannot be "
        "numbered into it; if it identifies the users, make it the id (apg run --id row), else "
        "give `row_id:` another name",
    ),
    (
        "stream without id",
        ["--data", "ok.parquet", "--behavioral", "nps", "--stream"],
        "--stream needs --id: numbering the rows (the id without --id) reads the table whole",
    ),
    (
        "na-values on parquet",
        [*DATA[:1], "ok.parquet", *DATA[2:], "--behavioral", "nps", "--na-values", "n/a"],
        "--na-values applies to text tables (.csv, .tsv, .txt); 'ok.parquet' is parquet",
    ),
    (
        "empty sep",
        [*DATA, "--behavioral", "nps", "--sep", ""],
        "--sep '': give the field separator, e.g. --sep ';' or --sep '\\t', or leave --sep out "
        "to detect it",
    ),
    (
        "wrong sep",
        [*DATA[:1], "semi.csv", *DATA[2:], "--behavioral", "nps", "--sep", ","],
        "source #1 (file semi.csv): '{tmp}/semi.csv' reads as a single column "
        "('user_id;nps;age') when split on ',', but its header contains ';': pass --sep ';' "
        '(apg run --data, apg assign) or set this source\'s `options: {{sep: ";"}}`',
    ),
    (
        "data options with config",
        ["--config", "c.yaml", "--outcome", "churn"],
        "--outcome applies only with --data; set it in the config",
    ),
    (
        "several data options with config",
        ["--config", "c.yaml", "--sep", ";", "--na-values", "n/a"],
        "--sep, --na-values apply only with --data; set them in the config",
    ),
    (
        "k when the config disables both",
        ["--config", "c.yaml", "--k", "3"],
        "--k '3' sets the k of kmeans and agglomerative, but the config disables both; drop "
        "--k or run one of them",
    ),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD, ids=[b[0] for b in BAD])
def test_cli_quick_bad_input_is_one_exact_error_line(
    tmp_path: Path, sample_users: pd.DataFrame, case: str, args: list[str], message: str
) -> None:
    small = sample_users.head(50)
    small.to_csv("ok.csv", index=False)
    small.to_parquet("ok.parquet", index=False)
    small[["user_id", "nps", "age"]].to_csv("semi.csv", sep=";", index=False)
    small[["nps"]].assign(row=range(50)).to_csv("rows.csv", index=False)
    config = {
        "sources": [{"kind": "file", "path": "ok.csv"}],
        "id_column": "user_id",
        "features": {"behavioral": ["nps"]},
        "search": {"kmeans": None, "agglomerative": None},
    }
    Path("c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(*args, "--out", "out", "--no-store", "-q")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr == "error: " + message.format(tmp=tmp_path) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
