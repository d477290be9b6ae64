"""Hardening (issue 18): bad seeds, impossible k ranges, duplicate YAML keys, spreadsheet
formulas in exports, HTML in report.md: one clear error or inert text, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from apg.cli.main import main
from apg.config import DbscanGrid, FeaturesConfig, SearchConfig, check_config_size, load_config
from apg.errors import ApgError, ConfigError, DataError
from apg.prepare.features import select_features
from apg.prepare.values import formatted_numbers
from apg.report.markdown import _md
from apg.search.candidates import Candidate, dbscan_candidates
from apg.search.selection import score_candidates
from apg.sources.base import SourceContext
from apg.sources.file import FileSource
from apg.store.export import spreadsheet_safe


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_hardening_seed_out_of_range_is_one_error_line(seed: str, sample_csv: Path) -> None:
    code, out, err = invoke(
        "run", "--data", str(sample_csv), "--id", "user_id", "--behavioral", "nps",
        "--seed", seed, "--no-store",
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err == f"error: --seed {seed}: a seed is a whole number from 0 to 4294967295\n"


def test_hardening_config_seed_out_of_range_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"less than or equal to 4294967295"):
        SearchConfig(seed=2**32)


def test_hardening_k_beyond_max_clusters_is_an_error_not_a_silent_clip() -> None:
    with pytest.raises(ValueError) as info:
        SearchConfig.model_validate({"kmeans": {"k": [2, 100000]}})
    assert (
        "kmeans.k goes up to 100000 but max_clusters is 10: candidates above it could never be "
        "chosen; lower the k range or raise search.max_clusters"
    ) in str(info.value)


def test_hardening_duplicate_yaml_keys_are_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "sources: [{kind: file, path: u.csv}]\nid_column: user_id\n"
        "features: {behavioral: [a]}\nsearch:\n  seed: 1\n  seed: 2\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: not valid YAML at line 6, column 3: key 'seed' is given twice (lines 5 and "
        "6); keep one"
    )


def test_hardening_yaml_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}: not valid YAML at line 2, column 1: ")


def test_hardening_same_key_in_different_mappings_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "sources": [{"kind": "file", "path": "u.csv"}],
                "id_column": "user_id",
                "features": {"behavioral": ["a"]},
                "search": {"kmeans": {"k": [2, 3]}, "agglomerative": {"k": [2, 3]}},
            }
        ),
        encoding="utf-8",
    )
    assert load_config(path).search.kmeans.k == [2, 3]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Loyal buyer", "Loyal buyer"),
        (3, 3),
    ],
)
def test_hardening_csv_cells_never_start_a_formula(value: object, expected: object) -> None:
    assert spreadsheet_safe(value) == expected
    # Through the csv module and back, the cell is what a spreadsheet would read.
    cell = next(csv.reader(io.StringIO(csv_line(spreadsheet_safe(value)), newline="")))[0]
    assert cell == str(expected)


def csv_line(value: object) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow([value])
    return buf.getvalue()


def test_hardening_report_md_shows_html_from_the_data_as_text() -> None:
    assert _md("<script>alert(1)</script> | x") == "&lt;script&gt;alert(1)&lt;/script&gt; \\| x"


# --- cell values: nested, infinite, formatted numbers; tables of 10 to 19 rows -------------


def _table(rows: int, **extra: object) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    return pd.DataFrame({"user_id": range(rows), "a": rng.normal(size=rows), **extra})


@pytest.mark.parametrize(
    ("cells", "shown"),
    [
        ([{"x": 1}] * 30, "holds structs (e.g. {'x': 1})"),
        ([[1, 2]] * 30, "holds lists (e.g. [1, 2])"),
        ([np.array([1, 2])] * 30, "holds lists (e.g. [1, 2])"),
    ],
)
@pytest.mark.parametrize("role", ["behavioral", "demographic", "outcome"])
def test_hardening_nested_cells_are_named_by_column(cells: list, shown: str, role: str) -> None:
    roles = (
        FeaturesConfig(behavioral=["a", "n"])
        if role == "behavioral"
        else FeaturesConfig.model_validate({"behavioral": ["a"], role: ["n"]})
    )
    with pytest.raises(DataError) as info:
        select_features(_table(30, n=pd.Series(cells, dtype=object)), "user_id", roles)
    assert str(info.value) == (
        f"the data: column 'n' {shown}, not plain values; flatten it into one column per field "
        "before using it"
    )


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e308, -1e101])
@pytest.mark.parametrize("role", ["behavioral", "demographic", "outcome"])
def test_hardening_unscalable_numbers_are_named_by_column(value: float, role: str) -> None:
    values = np.linspace(0, 1, 30)
    values[7] = value
    roles = (
        FeaturesConfig(behavioral=["a", "n"])
        if role == "behavioral"
        else FeaturesConfig.model_validate({"behavioral": ["a"], role: ["n"]})
    )
    with pytest.raises(DataError) as info:
        select_features(_table(30, n=values), "user_id", roles)
    assert str(info.value) == (
        f"the data: column 'n' has 1 value(s) that are infinite or beyond ±1e+100 (e.g. "
        f"{value!r}), too large to scale; mark them missing or fix them"
    )


def test_hardening_currency_percent_and_thousands_are_numbers_with_a_warning() -> None:
    price = ["$36.88", "-$1,200.50", "$0.99"] * 10
    share = ["12.5%", "100%", "0.5%"] * 10
    with pytest.warns(UserWarning) as said:
        frame = select_features(
            _table(30, price=price, share=share),
            "user_id",
            FeaturesConfig(behavioral=["a", "price", "share"]),
        )
    messages = [str(w.message) for w in said]
    assert messages == [
        "the data: column 'price' holds numbers written as text with currency signs and "
        "thousands separators (e.g. '$36.88'); using them as numbers",
        "the data: column 'share' holds numbers written as text with percent signs (e.g. "
        "'12.5%'); using them as numbers",
    ]
    assert frame.numeric_features == ["a", "price", "share"]
    assert frame.raw["price"].tolist() == [36.88, -1200.5, 0.99] * 10
    assert frame.raw["share"].tolist() == [12.5, 100.0, 0.5] * 10


@pytest.mark.parametrize("text", ["1,5", "12,34", "$", "1.2.3", "%", "1,2345", "EUR 5"])
def test_hardening_text_that_is_not_a_formatted_number_is_not_read_as_one(text: str) -> None:
    assert formatted_numbers(pd.Series([text, "$1.00"])) is None


@given(
    value=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False).map(lambda v: round(v, 2)),
    currency=st.sampled_from(["", "$", "€", "£"]),
    grouped=st.booleans(),
    percent=st.booleans(),
)
def test_hardening_formatted_numbers_read_back_exactly(
    value: float, currency: str, grouped: bool, percent: bool
) -> None:
    body = f"{abs(value):,.2f}" if grouped else f"{abs(value):.2f}"
    text = ("-" if value < 0 else "") + currency + body + ("%" if percent else "")
    parsed = formatted_numbers(pd.Series([text, "$1,000.00"]))
    assert parsed is not None
    assert parsed[0].iloc[0] == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("rows", [10, 12, 15, 19])
def test_hardening_ten_to_nineteen_rows_run_without_a_traceback(rows: int, tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    _table(rows, b=np.arange(rows) % 2 * 10.0).to_csv(path, index=False)
    result = CliRunner().invoke(
        main,
        ["run", "--data", str(path), "--id", "user_id", "--behavioral", "a,b", "--no-store",
         "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if result.exit_code == 0:
        sizes = json.loads((tmp_path / "out" / "personas.json").read_text())["personas"]
        assert min(p["size"] for p in sizes) >= 5
    else:
        assert result.stderr.startswith("error: ")


def test_hardening_dbscan_min_samples_above_the_row_count_is_skipped() -> None:
    X = np.random.default_rng(0).normal(size=(12, 2))
    said: list[str] = []
    groups = dbscan_candidates(X, DbscanGrid(min_samples=[5, 10, 20]), said.append)
    assert [m for m, _ in groups] == [5, 10]
    assert said[0] == "search: dbscan min_samples >= 12 skipped: the table has 12 rows"
    assert dbscan_candidates(X, DbscanGrid(min_samples=[12, 40]), said.append) == []


def test_hardening_clusters_under_min_cluster_size_are_not_personas() -> None:
    X = np.r_[np.zeros((20, 2)), np.full((4, 2), 9.0)]
    cfg = SearchConfig(min_cluster_share=0)
    cands = [Candidate("kmeans", {"k": 2}, np.r_[np.zeros(20), np.ones(4)].astype(np.intp))]
    score_candidates(X, cands, cfg)
    assert cands[0].reason == "smallest cluster 4 user(s) < min_cluster_size=5"
    cands[0].labels[19] = 1
    score_candidates(X, cands, cfg)
    assert cands[0].eligible


# --- the store: corrupt files, other applications' databases ---------------------------------


@pytest.mark.parametrize("command", [["runs", "list"], ["personas", "list"], ["status"]])
def test_hardening_a_corrupt_database_is_one_error_line(command: list[str], tmp_path: Path) -> None:
    path = tmp_path / "apg.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    code, out, err = invoke(*command, "--db", str(path))
    assert (code, out) == (1, "")
    assert err == (
        f"error: database sqlite:///{path}: file is not a database; it is damaged or not a "
        "database. Check --db, or restore the file from a backup\n"
    )


def test_hardening_reading_commands_leave_another_apps_database_alone(tmp_path: Path) -> None:
    path = tmp_path / "other_app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = path.read_bytes()
    for command in (["runs", "list"], ["personas", "list"], ["status"], ["export"]):
        code, out, err = invoke(*command, "--db", str(path))
        assert (code, out) == (1, ""), command
        assert err == (
            f"error: sqlite:///{path} is not an apg database (it holds tables customers); point "
            "--db at the database `apg run` records to\n"
        ), command
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


# --- input files: bounded before pandas parses them ------------------------------------------


def test_hardening_a_file_of_one_giant_line_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(b"x" * (2 << 20))
    code, _out, err = invoke(
        "run", "--data", str(path), "--id", "id", "--behavioral", "a", "--no-store",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1 and not (tmp_path / "out").exists()
    assert err.splitlines()[-1] == (
        f"error: source #1 (file {path}): the first line of '{path}' is longer than "
        "1,048,576 bytes (max_line_bytes): not a table with a header line; check the file, or "
        "raise max_line_bytes"
    )


def test_hardening_a_header_wider_than_max_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    header = ",".join(f"c{i}" for i in range(12))
    path.write_text(header + "\n" + "\n".join(",".join(["1"] * 12) for _ in range(20)) + "\n")
    spec = {"kind": "file", "path": str(path), "max_columns": 11}
    source = FileSource.model_validate(spec)
    with pytest.raises(ApgError) as info:
        source.read(SourceContext(base_dir=tmp_path, id_column="c0"))
    assert str(info.value).endswith(
        f"'{path}' has 12 columns in its header, more than max_columns (11); check the "
        "separator, or raise max_columns"
    )
    spec["max_columns"] = 12
    assert FileSource.model_validate(spec).read(SourceContext(tmp_path, "c0")).shape == (20, 12)


# --- configs: bounded size and alias expansion, folders -----------------------------------


def test_hardening_yaml_alias_bomb_stops_at_the_value_budget(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["${HOME}", "${HOME}", "${HOME}", "${HOME}", "${HOME}", "${HOME}"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 6)}]" for i in range(1, 12)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")  # 6**12 ≈ 2e9 strings
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: the config expands to more than 100,000 values (YAML aliases repeating large "
        "anchors?); write the values out or shorten the lists"
    )


def test_hardening_config_size_budget_counts_every_use_of_a_shared_value() -> None:
    shared = list(range(10))
    check_config_size({"a": [shared] * 9}, "c", budget=101)  # 1 + 1 + 9 + 90 values
    with pytest.raises(ConfigError, match=r"^c: the config expands to more than 100 values"):
        check_config_size({"a": [shared] * 9}, "c", budget=100)


def test_hardening_config_path_that_is_a_folder_says_so(tmp_path: Path) -> None:
    code, out, err = invoke("run", "--config", str(tmp_path), "--no-store")
    assert (code, out) == (1, "")
    assert (
        err == f"error: config {str(tmp_path)!r} is a folder; pass a YAML file as --config FILE\n"
    )


def test_hardening_oversized_config_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: 1,048,579 bytes is too large for a config (at most 1,048,576); is it the "
        "right file?"
    )


def test_hardening_a_grid_of_more_than_max_candidates_is_an_error() -> None:
    assert SearchConfig().grid_size() == 9 + 9 * 3 + 8 * 3
    eps = [round(0.01 * i, 2) for i in range(1, 200)]
    with pytest.raises(ValueError) as info:
        SearchConfig.model_validate({"dbscan": {"eps": eps}})
    assert (
        "the grid names 633 candidates, more than max_candidates (500); shorten the k, linkage, "
        "eps or min_samples lists, or raise search.max_candidates"
    ) in str(info.value)
    assert SearchConfig.model_validate({"dbscan": {"eps": eps}, "max_candidates": 633})


def test_hardening_output_folder_failing_after_the_run_is_not_stored_as_succeeded(
    sample_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk filling up between the check before the run and the write after it cannot be
    # produced for real as root (permissions do not bind root, and mounting a small tmpfs
    # needs privileges CI lacks), so the write itself is made to fail.
    from apg.api import run as api_run

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(api_run, "write_outputs", full_disk)
    db = tmp_path / "apg.db"
    code, out, err = invoke(
        "run", "--data", str(sample_csv), "--id", "user_id", "--behavioral", "nps,logins_per_month",
        "--algorithms", "kmeans", "--k", "2-3", "--db", str(db), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1 and out == ""
    with sqlite3.connect(db) as conn:
        ((run_id, status, reason),) = conn.execute("SELECT id, status, reason FROM apg_runs")
    assert status == "failed"
    assert reason == "the output folder could not be written: No space left on device"
    assert err.splitlines()[-1] == (
        f"error: cannot write the output folder '{tmp_path / 'out'}': No space left on device; "
        f"the run {run_id} is recorded as failed"
    )


def test_hardening_assign_refuses_a_file_of_one_giant_line_before_parsing(
    sample_csv: Path, tmp_path: Path
) -> None:
    db = str(tmp_path / "apg.db")
    code, _, err = invoke(
        "run", "--data", str(sample_csv), "--id", "user_id", "--behavioral", "nps,logins_per_month",
        "--algorithms", "kmeans", "--k", "2-3", "--db", db, "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 0, err
    garbage = tmp_path / "new.csv"
    garbage.write_bytes(b"x" * (2 << 20))
    code, out, err = invoke("assign", "--data", str(garbage), "--db", db, "--out", "labels.csv")
    assert (code, out) == (1, "")
    assert err == (
        f"error: file {garbage}: the first line of '{garbage}' is longer than 1,048,576 bytes "
        "(max_line_bytes): not a table with a header line; check the file, or raise "
        "max_line_bytes\n"
    )


def test_hardening_sample_out_under_a_file_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "users.csv"
    blocker.write_text("x\n")
    code, out, err = invoke("sample", "--rows", "10", "--out", str(blocker / "more.csv"))
    assert (code, out) == (1, "")
    assert err == (f"error: --out '{blocker / 'more.csv'}': '{blocker}' is a file, not a folder\n")
