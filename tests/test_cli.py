"""``apg run`` end to end: whole stdout/stderr, exit codes, and bad input without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

from apg.cli.main import main
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL

FEATURES = {
    "behavioral": list(BEHAVIORAL),
    "attitudinal": list(ATTITUDINAL),
    "demographic": ["age", "gender", "country"],
}
GRID: dict[str, Any] = {
    "kmeans": {"k": [2, 4], "n_init": 2},
    "agglomerative": {"k": [2, 4], "linkage": ["ward"]},
    "dbscan": {"min_samples": [5]},
}
FILES = {
    "personas.json",
    "candidates.csv",
    "assignments.csv",
    "report.md",
    "report.html",
    ".apg-output.json",
}
ORDER = {"kmeans": 0, "agglomerative": 1, "dbscan": 2}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)


def write_config(path: Path, csv: str = "users.csv", **changes: Any) -> Path:
    data: dict[str, Any] = {
        "sources": [{"kind": "file", "path": csv}],
        "id_column": "user_id",
        "features": FEATURES,
        "search": GRID,
    }
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def small_csv(tmp_path: Path, sample_users: pd.DataFrame) -> Path:
    path = tmp_path / "users.csv"
    sample_users.head(400).to_csv(path, index=False)
    return path


def expected_summary(out: Path, id_column: str = "user_id") -> str:
    """The stdout table, rebuilt from the files: sizes and shares from assignments.csv."""
    doc = json.loads((out / "personas.json").read_text(encoding="utf-8"))
    cands = pd.read_csv(out / "candidates.csv")
    assign = pd.read_csv(out / "assignments.csv", keep_default_na=False, dtype={id_column: str})
    n = len(assign)
    win = cands[cands["selected"]].iloc[0]
    params = json.loads(win["params"])
    key = f"{win['algorithm']}({', '.join(f'{k}={v}' for k, v in params.items())})"
    weak = doc["selection"]["structure_reasons"]
    lines = (
        [f"WEAK STRUCTURE: read these personas as tentative ({'; '.join(weak)})"] if weak else []
    )
    stab = "" if pd.isna(win["stability"]) else f", stability {win['stability']:.2f}"
    lines += [
        f"run {doc['run_id']}: {n:,} users, {len(cands)} candidates "
        f"({int(cands['eligible'].sum())} eligible)",
        f"chosen: {key}, silhouette {win['silhouette']:.3f}{stab}, "
        f"elbow k={doc['selection']['elbow_k']}",
        "",
    ]
    sizes = assign[assign["cluster"] >= 0]["persona_id"].value_counts()
    names = {p["persona_id"]: p["narrative"]["name"] for p in doc["personas"]}
    level = {p["persona_id"]: p["confidence"]["level"] for p in doc["personas"]}
    rows = [("persona", "size", "share", "confidence", "name")]
    ordered = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    rows += [(pid, f"{size:,}", f"{size / n:.1%}", level[pid], names[pid]) for pid, size in ordered]
    noise = int((assign["cluster"] == -1).sum())
    if noise:
        rows.append(("outliers", f"{noise:,}", f"{noise / n:.1%}", "", ""))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines += [
        f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:<{w[3]}}  {r[4]}".rstrip()
        for r in rows
    ]
    lines += ["", f"results: {out.relative_to(Path.cwd()) if out.is_absolute() else out}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- success


def test_cli_run_config_prints_summary_on_stdout_and_progress_on_stderr(
    tmp_path: Path, small_csv: Path
) -> None:
    cfg = write_config(tmp_path / "run.yaml")
    result = invoke("run", "--config", str(cfg.name), "--out", "out", "--no-store")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == FILES
    assert result.stdout == expected_summary(Path("out"))
    err = result.stderr.splitlines()
    assert err[:3] == [
        "read: loading sources",
        "read: 400 rows, 17 columns",
        "prepare: 400 rows x 11 columns",
    ]
    assert all(line.split(":")[0] in {"read", "prepare", "search", "narrate"} for line in err)
    doc = json.loads((tmp_path / "out" / "personas.json").read_text())
    assert f"search: chose {doc['selection']['algorithm']}(" in result.stderr
    assert err[-1] == f"narrate: {len(doc['personas'])} personas (offline)"
    assert "read:" not in result.stdout


def test_cli_run_quiet_prints_nothing_on_stderr(tmp_path: Path, small_csv: Path) -> None:
    cfg = write_config(tmp_path / "run.yaml")
    result = invoke("run", "--config", str(cfg), "--out", "out", "-q", "--no-store")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout == expected_summary(Path("out"))


def test_cli_run_default_out_is_apg_output(tmp_path: Path, small_csv: Path) -> None:
    cfg = write_config(tmp_path / "run.yaml")
    result = invoke("run", "--config", str(cfg), "-q", "--no-store")
    assert result.exit_code == 0
    assert {p.name for p in (tmp_path / "apg-output").iterdir()} == FILES
    assert result.stdout.endswith("\nresults: apg-output\n")


def test_cli_run_with_store_prints_summary_then_store_lines(
    tmp_path: Path, small_csv: Path
) -> None:
    cfg = write_config(tmp_path / "run.yaml")
    result = invoke("run", "--config", str(cfg), "--out", "out", "-q")
    assert result.exit_code == 0, result.output
    summary = expected_summary(Path("out"))
    assert result.stdout.startswith(summary)
    assert result.stdout[len(summary) :].startswith("stored in ")


def test_cli_run_data_mode_full_default_grid(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    """The quick form runs the default grid (issue 2 defaults: 9 + 27 + DBSCAN candidates)."""
    sample_users.head(300).to_csv("u.csv", index=False)
    result = invoke(
        "run",
        "--data",
        "u.csv",
        "--id",
        "user_id",
        "--behavioral",
        ",".join(BEHAVIORAL),
        "--attitudinal",
        ",".join(ATTITUDINAL),
        "--demographic",
        "age,gender",
        "--out",
        "out",
        "-q",
        "--no-store",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == expected_summary(Path("out"))
    cands = pd.read_csv(tmp_path / "out" / "candidates.csv")
    counts = cands["algorithm"].value_counts()
    assert counts["kmeans"] == 9 and counts["agglomerative"] == 27
    assert {
        json.loads(p)["min_samples"] for p in cands.loc[cands["algorithm"] == "dbscan", "params"]
    } <= {5, 10, 20}
    doc = json.loads((tmp_path / "out" / "personas.json").read_text())
    assert doc["data"]["demographics"] == ["age", "gender"]
    assert doc["data"]["features"] == {
        "behavioral": list(BEHAVIORAL),
        "attitudinal": list(ATTITUDINAL),
    }


def test_cli_run_data_mode_with_tab_separator(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    sample_users.head(200).to_csv("u.txt", sep="\t", index=False)
    result = invoke(
        "run",
        "--data",
        "u.txt",
        "--sep",
        "\t",
        "--id",
        "user_id",
        "--behavioral",
        "logins_per_month,nps",
        "--out",
        "out",
        "-q",
        "--no-store",
    )
    assert result.exit_code == 0, result.output
    assign = pd.read_csv(tmp_path / "out" / "assignments.csv")
    assert list(assign["user_id"]) == list(sample_users.head(200)["user_id"])


def test_cli_run_data_mode_accepts_backslash_t_separator(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    sample_users.head(200).to_csv("u.txt", sep="\t", index=False)
    result = invoke(
        "run",
        "--data",
        "u.txt",
        "--sep",
        "\\t",
        "--id",
        "user_id",
        "--behavioral",
        "logins_per_month,nps",
        "--out",
        "out",
        "-q",
        "--no-store",
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_cli_run_seed_option_equals_config_seed(
    tmp_path: Path, small_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    plain = write_config(tmp_path / "plain.yaml")
    seeded = write_config(tmp_path / "seeded.yaml", search={**GRID, "seed": 3})
    a = invoke("run", "--config", str(plain), "--seed", "3", "--out", "a", "-q", "--no-store")
    b = invoke("run", "--config", str(seeded), "--out", "b", "-q", "--no-store")
    assert a.exit_code == b.exit_code == 0
    for name in ("personas.json", "assignments.csv", "report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    ca = pd.read_csv(tmp_path / "a" / "candidates.csv").drop(columns="seconds")
    cb = pd.read_csv(tmp_path / "b" / "candidates.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(ca, cb)


def test_cli_run_twice_is_identical_but_for_created_at_and_seconds(
    tmp_path: Path, small_csv: Path
) -> None:
    cfg = write_config(tmp_path / "run.yaml")
    a = invoke("run", "--config", str(cfg), "--out", "a", "-q", "--no-store")
    b = invoke("run", "--config", str(cfg), "--out", "b", "-q", "--no-store")
    assert a.exit_code == b.exit_code == 0
    assert a.stdout.replace("results: a", "") == b.stdout.replace("results: b", "")
    assert (tmp_path / "a" / "assignments.csv").read_bytes() == (
        tmp_path / "b" / "assignments.csv"
    ).read_bytes()
    da = json.loads((tmp_path / "a" / "personas.json").read_text())
    db = json.loads((tmp_path / "b" / "personas.json").read_text())
    da.pop("created_at"), db.pop("created_at")
    assert da == db
    ca = (tmp_path / "a" / "candidates.csv").read_text().splitlines()
    cb = (tmp_path / "b" / "candidates.csv").read_text().splitlines()
    assert [r.rsplit(",", 1)[0] for r in ca] == [r.rsplit(",", 1)[0] for r in cb]


def test_cli_run_with_source_date_epoch_is_identical_but_for_seconds(
    tmp_path: Path, small_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cfg = write_config(tmp_path / "run.yaml")
    assert invoke("run", "--config", str(cfg), "--out", "a", "-q", "--no-store").exit_code == 0
    assert invoke("run", "--config", str(cfg), "--out", "b", "-q", "--no-store").exit_code == 0
    for name in ("personas.json", "assignments.csv", "report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    ca = pd.read_csv(tmp_path / "a" / "candidates.csv").assign(seconds="")
    cb = pd.read_csv(tmp_path / "b" / "candidates.csv").assign(seconds="")
    assert ca.to_csv(index=False) == cb.to_csv(index=False)


def test_cli_run_default_mode_is_reproducible_with_source_date_epoch(
    tmp_path: Path, small_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cfg = write_config(tmp_path / "run.yaml")
    a = invoke("run", "--config", str(cfg), "--out", "a", "-q", "--db", "sqlite:///a.db")
    b = invoke("run", "--config", str(cfg), "--out", "b", "-q", "--db", "sqlite:///b.db")
    assert a.exit_code == b.exit_code == 0
    for name in ("personas.json", "assignments.csv", "report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.filterwarnings("default::UserWarning")
def test_cli_run_degenerate_drop_prints_warning_on_stderr(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    sample_users.head(300).assign(blank=np.nan).to_csv("users.csv", index=False)
    cfg = write_config(
        tmp_path / "run.yaml",
        features={"behavioral": ["logins_per_month", "blank"], "attitudinal": ["nps"]},
        preprocessing={"degenerate_columns": "drop"},
    )
    result = invoke("run", "--config", str(cfg), "--out", "out", "-q", "--no-store")
    assert result.exit_code == 0, result.output
    assert (
        result.stderr
        == "warning: source #1 (file users.csv): dropped column 'blank': it is entirely missing\n"
    )


def test_cli_help_lists_options_and_examples() -> None:
    result = invoke("run", "--help")
    assert result.exit_code == 0
    for option in (
        "--config",
        "--data",
        "--id",
        "--behavioral",
        "--attitudinal",
        "--demographic",
        "--sep",
        "--out",
        "--seed",
    ):
        assert option in result.stdout
    assert "Examples:" in result.stdout
    assert invoke("-h").exit_code == 0


# --------------------------------------------------------------------------- bad input


def _bad_tables(tmp: Path, users: pd.DataFrame) -> None:
    users = users.head(200)
    (tmp / "empty.csv").write_text("")
    (tmp / "header.csv").write_text("user_id,nps\n")
    (tmp / "binary.csv").write_bytes(b"\xff\xfe\x00\x01\x02garbage\x00")
    (tmp / "folder.csv").mkdir()
    dup = users.copy()
    dup.loc[[5, 9, 12], "user_id"] = ["u000001", "u000002", "u000002"]
    dup.to_csv(tmp / "dup.csv", index=False)
    junk = users.copy()
    junk["nps"] = junk["nps"].astype(object)
    junk.loc[4, "nps"] = "very happy"
    junk.to_csv(tmp / "junk.csv", index=False)
    users.assign(blank=np.nan, tier="gold").to_csv(tmp / "degenerate.csv", index=False)
    users.head(9).to_csv(tmp / "few.csv", index=False)
    users.to_csv(tmp / "ok.csv", index=False)
    users.to_csv(tmp / "ok.xlsx", index=False)


COLUMNS = (
    "'user_id', 'logins_per_month', 'sessions_per_week', 'avg_session_minutes', "
    "'features_used', 'purchases_per_year', 'avg_order_value', 'support_tickets', "
    "'days_since_last_login', 'tenure_months', 'nps', 'satisfaction' (+5 more)"
)
DATA = ["--id", "user_id", "--behavioral", "logins_per_month,nps"]
BAD: list[tuple[str, list[str], str]] = [
    (
        "missing file",
        ["--data", "nope.csv", *DATA],
        "source #1 (file nope.csv): file '{tmp}/nope.csv' does not exist; check the path",
    ),
    (
        "empty file",
        ["--data", "empty.csv", *DATA],
        "source #1 (file empty.csv): cannot read '{tmp}/empty.csv' as csv: No columns to parse "
        "from file",
    ),
    (
        "header only",
        ["--data", "header.csv", *DATA],
        "source #1 (file header.csv): '{tmp}/header.csv' has no rows; check the file and its "
        "separator",
    ),
    (
        "binary file",
        ["--data", "binary.csv", *DATA],
        "source #1 (file binary.csv): cannot read '{tmp}/binary.csv' as csv: 'utf-8' codec can't "
        "decode byte 0xff in position 0: invalid start byte",
    ),
    (
        "a folder",
        ["--data", "folder.csv", *DATA],
        "source #1 (file folder.csv): '{tmp}/folder.csv' is not a file",
    ),
    (
        "unknown extension",
        ["--data", "ok.xlsx", *DATA],
        "source #1 (file ok.xlsx): cannot tell the format of '{tmp}/ok.xlsx' from its extension; "
        "use .csv, .tsv, .parquet or .jsonl, or set `format:`",
    ),
    (
        "id absent",
        ["--data", "ok.csv", "--id", "uid", "--behavioral", "nps"],
        "source #1 (file ok.csv): id column 'uid' not found; columns are "
        + COLUMNS
        + ". Set id_column (or this source's `id:`) to one of them",
    ),
    (
        "duplicate ids",
        ["--data", "dup.csv", *DATA],
        "source #1 (file dup.csv): 2 duplicate id(s) in column 'user_id', e.g. 'u000001', "
        "'u000002'; remove them or set `dedupe: first|last`",
    ),
    (
        "column absent",
        ["--data", "ok.csv", "--id", "user_id", "--behavioral", "nps,logins"],
        "source #1 (file ok.csv): behavioral column(s) 'logins' not found; columns are " + COLUMNS,
    ),
    (
        "demographic absent",
        [*["--data", "ok.csv", *DATA], "--demographic", "age,income"],
        "source #1 (file ok.csv): demographic column(s) 'income' not found; columns are " + COLUMNS,
    ),
    (
        "text in numeric",
        ["--data", "junk.csv", *DATA],
        "source #1 (file junk.csv): column 'nps' is numeric but has non-numeric text, "
        "e.g. 'very happy'; clean the value or mark it missing",
    ),
    (
        "all missing",
        ["--data", "degenerate.csv", "--id", "user_id", "--behavioral", "nps,blank"],
        "source #1 (file degenerate.csv): column 'blank' is entirely missing and cannot "
        "separate users; remove it from features or set preprocessing.degenerate_columns: drop",
    ),
    (
        "constant",
        ["--data", "degenerate.csv", "--id", "user_id", "--behavioral", "nps,tier"],
        "source #1 (file degenerate.csv): column 'tier' is constant ('gold' in every row) and "
        "cannot separate users; remove it from features or set "
        "preprocessing.degenerate_columns: drop",
    ),
    (
        "too few rows",
        ["--data", "few.csv", *DATA],
        "source #1 (file few.csv): 9 row(s) is too few to cluster; at least 10 are needed",
    ),
    (
        "two roles",
        [*["--data", "ok.csv", *DATA], "--demographic", "nps"],
        "command line: invalid config:\n  features: column 'nps' is given both behavioral and "
        "demographic; give each column one role",
    ),
    (
        "id as feature",
        ["--data", "ok.csv", "--id", "user_id", "--behavioral", "user_id,nps"],
        "command line: invalid config:\n  config: id column 'user_id' is also listed as "
        "behavioral; the id is never a feature",
    ),
    (
        "row id named like a feature",
        ["--data", "ok.csv", "--behavioral", "nps,row"],
        "without --id the rows are numbered into a new column 'row', but 'row' is listed in "
        "--behavioral; pass --id COLUMN naming the id column",
    ),
    (
        "no features",
        ["--data", "ok.csv", "--id", "user_id", "--demographic", "age"],
        "--data needs --behavioral and/or --attitudinal columns to cluster",
    ),
    ("nothing", [], "give --config FILE or --data FILE (see apg run --help)"),
    (
        "both",
        ["--data", "ok.csv", "--config", "c.yaml"],
        "give either --config FILE or --data FILE, not both",
    ),
    (
        "quick flag with config",
        ["--config", "c.yaml", "--id", "user_id"],
        "--id applies only with --data; set it in the config",
    ),
    (
        "missing config",
        ["--config", "nope.yaml"],
        "config file 'nope.yaml' does not exist; pass an existing --config FILE",
    ),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD, ids=[b[0] for b in BAD])
def test_cli_run_bad_input_is_one_error_line_and_writes_nothing(
    tmp_path: Path, sample_users: pd.DataFrame, case: str, args: list[str], message: str
) -> None:
    _bad_tables(tmp_path, sample_users)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("run", *args, "--out", "out", "--no-store", "-q")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr == "error: " + message.format(tmp=tmp_path) + "\n"
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_run_bad_input_with_store_writes_no_output_folder(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    _bad_tables(tmp_path, sample_users)
    result = invoke("run", "--data", "dup.csv", *DATA, "--out", "out")
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "error: source #1 (file dup.csv): 2 duplicate id(s) in column 'user_id', e.g. "
        "'u000001', 'u000002'; remove them or set `dedupe: first|last`\n"
    )
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"search": {"kmeans": {"kk": 3}}},
            "{cfg}: invalid config:\n  unknown key 'search.kmeans.kk'; check the spelling against "
            "the README's config reference",
        ),
        (
            {"preprocessing": {"scaling": "log"}},
            "{cfg}: invalid config:\n  preprocessing.scaling: Input should be 'standard', 'minmax' "
            "or 'robust' (got 'log')",
        ),
        (
            {"search": {"kmeans": {"k": [5, 2]}}},
            "{cfg}: invalid config:\n  search.kmeans.k: k range [5, 2] must satisfy 2 <= min <= "
            "max",
        ),
    ],
    ids=["unknown key", "bad scaling", "bad k"],
)
def test_cli_run_bad_config_is_an_error_naming_the_key(
    tmp_path: Path, small_csv: Path, changes: dict[str, Any], message: str
) -> None:
    cfg = write_config(tmp_path / "run.yaml", **changes)
    result = invoke("run", "--config", str(cfg), "--out", "out", "--no-store", "-q")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: " + message.format(cfg=cfg) + "\n"
    assert not (tmp_path / "out").exists()


def test_cli_run_no_eligible_candidate_lists_why(tmp_path: Path, small_csv: Path) -> None:
    cfg = write_config(
        tmp_path / "run.yaml",
        search={
            "min_cluster_share": 0.45,
            "kmeans": {"k": [3, 3], "n_init": 1},
            "agglomerative": None,
            "dbscan": None,
        },
    )
    result = invoke("run", "--config", str(cfg), "--out", "out", "--no-store", "-q")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: none of the 1 candidates meets the selection rules. Best few:"
    assert lines[1].startswith("  kmeans(k=3): silhouette 0.")
    assert ", rejected: smallest cluster " in lines[1]
    assert lines[1].endswith(" < min_cluster_share=45.0%")
    assert lines[2:] == [
        "What the leaderboard suggests:",
        "- check the features: the candidates break the rules in different ways (see "
        "candidates.csv and report.md for every rejection reason)",
        f"Every candidate and why it was rejected: {Path('out') / 'candidates.csv'}, "
        f"{Path('out') / 'report.md'}",
    ]
    # The evidence is written even though the run failed; no personas are.
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "candidates.csv",
        "report.md",
        ".apg-output.json",
    }
    cands = pd.read_csv(tmp_path / "out" / "candidates.csv")
    assert cands["reason"].str.startswith("smallest cluster").all()
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# No personas: no candidate met the selection rules\n")
    assert "| kmeans(k=3) | 3 | " in report


def test_cli_run_invalid_option_type_is_a_usage_error() -> None:
    result = invoke("run", "--data", "u.csv", "--id", "x", "--behavioral", "a", "--seed", "abc")
    assert result.exit_code == 2
    assert "Invalid value for '--seed': 'abc' is not a valid integer." in result.stderr
    assert result.stdout == ""


def test_cli_python_m_apg_bad_input_exits_1_without_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APG_", "OPENAI_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "apg",
            "run",
            "--data",
            "missing.csv",
            "--id",
            "user_id",
            "--behavioral",
            "nps",
            "--out",
            "out",
            "--no-store",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        f"read: loading sources\nerror: source #1 (file missing.csv): file "
        f"'{tmp_path}/missing.csv' does not exist; check the path\n"
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_python_m_apg_bad_config_exits_1(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "sources: [{kind: file, path: u.csv}]\nid_column: id\n"
        "features: {behavioral: [a]}\ncolour: blue\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "apg", "run", "--config", "c.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: c.yaml: invalid config:\n  unknown key 'colour'; check the spelling against "
        "the README's config reference\n"
    )
    assert "Traceback" not in proc.stderr
