"""``--out`` never deletes what apg did not write: the manifest rule, protected inputs, the swap."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from apg.cli.main import main
from apg.report.folder import MANIFEST, OutputFolderError, check_output_folder
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL

FILES = {"personas.json", "candidates.csv", "assignments.csv", "report.md", "report.html"}
GRID: dict[str, Any] = {
    "kmeans": {"k": [2, 3], "n_init": 1},
    "agglomerative": None,
    "dbscan": None,
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


@pytest.fixture
def project(tmp_path: Path, sample_users: pd.DataFrame) -> Path:
    """A user's project folder: the table, a config and notes of their own."""
    sample_users.head(300).to_csv(tmp_path / "users.csv", index=False)
    config = {
        "sources": [{"kind": "file", "path": "users.csv"}],
        "id_column": "user_id",
        "features": {"behavioral": list(BEHAVIORAL), "attitudinal": list(ATTITUDINAL)},
        "search": GRID,
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def stored_runs(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM apg_runs").fetchone()[0])


def run_into(out: str, *extra: str) -> Result:
    return invoke("run", "--config", "run.yaml", "--out", out, "-q", *extra)


def test_output_folder_new_folder_gets_files_and_manifest(project: Path) -> None:
    result = run_into("out", "--no-store")
    assert result.exit_code == 0, result.output
    names = {p.name for p in (project / "out").iterdir()}
    assert names == FILES | {MANIFEST}
    manifest = json.loads((project / "out" / MANIFEST).read_text())
    assert manifest["written_by"] == "apg"
    assert set(manifest["files"]) == FILES


def test_output_folder_user_folder_is_refused_and_untouched(project: Path) -> None:
    precious = project / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "thesis.docx").write_bytes(b"years of work")
    (precious / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = snapshot(project)
    result = run_into("precious")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: output folder 'precious' holds files apg did not write ('sub', 'thesis.docx'); "
        "apg replaces its output folder whole and deletes nothing it did not write, so choose a "
        f"new or empty folder, e.g. --out '{precious / 'apg-output'}'\n"
    )
    assert snapshot(project) == before
    # Refused before the run: nothing was recorded, not even a failed run.
    assert stored_runs(project / "apg.db") == 0


def test_output_folder_dot_in_a_project_refuses_naming_the_input(project: Path) -> None:
    before = snapshot(project)
    result = run_into(".")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: --out '.' contains 'run.yaml', which this run reads; apg replaces its output "
        f"folder whole, so choose a folder that holds no input, config or database, e.g. "
        f"--out '{project / 'apg-output'}'\n"
    )
    assert snapshot(project) == before


def test_output_folder_home_like_folder_is_refused(project: Path) -> None:
    home = project / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("secret")
    result = run_into(str(home), "--no-store")
    assert result.exit_code == 1
    assert "holds files apg did not write ('.ssh')" in result.stderr
    assert (home / ".ssh" / "id_ed25519").read_text() == "secret"


@pytest.mark.parametrize("where", ["data", "store"])
def test_output_folder_holding_the_input_or_store_is_refused(
    project: Path, sample_users: pd.DataFrame, where: str
) -> None:
    # An apg-written folder that a later run reads from or stores into: still never replaced.
    assert run_into("out", "--no-store").exit_code == 0
    if where == "data":
        sample_users.head(300).to_csv(project / "out" / "assignments.csv", index=False)
        args = [
            "--data",
            "out/assignments.csv",
            "--id",
            "user_id",
            "--behavioral",
            "sessions_per_week",
        ]
        result = invoke("run", *args, "--out", "out", "--no-store", "-q")
        culprit = project / "out" / "assignments.csv"
    else:
        result = run_into("out", "--db", "out/apg.db")
        culprit = Path("out/apg.db")
    before = snapshot(project / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: --out 'out' contains {str(culprit)!r}, which this run")
    assert snapshot(project / "out") == before
    assert not (project / "out" / "apg.db").exists()


def test_output_folder_rerun_replaces_only_apg_files(project: Path) -> None:
    assert run_into("out", "--no-store").exit_code == 0
    first = snapshot(project / "out")
    assert run_into("out", "--no-store", "--seed", "7").exit_code == 0
    second = snapshot(project / "out")
    assert set(second) == set(first)
    assert {p.name for p in project.iterdir() if p.name.startswith(".out")} == set()


def test_output_folder_apg_folder_with_a_user_file_is_refused(project: Path) -> None:
    assert run_into("out", "--no-store").exit_code == 0
    (project / "out" / "my-analysis.ipynb").write_text("{}")
    before = snapshot(project / "out")
    result = run_into("out", "--no-store")
    assert result.exit_code == 1
    assert "holds files apg did not write ('my-analysis.ipynb')" in result.stderr
    assert snapshot(project / "out") == before


def test_output_folder_empty_folder_is_used(project: Path) -> None:
    (project / "empty").mkdir()
    assert run_into("empty", "--no-store").exit_code == 0
    assert {p.name for p in (project / "empty").iterdir()} == FILES | {MANIFEST}


def test_output_folder_existing_file_is_refused(project: Path) -> None:
    result = run_into("notes.txt", "--no-store")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: output path 'notes.txt' exists and is not a folder; choose another --out\n"
    )
    assert (project / "notes.txt").read_text() == "my notes\n"


def test_output_folder_uncreatable_is_refused_before_the_run(project: Path) -> None:
    result = run_into("notes.txt/out")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot create output folder 'notes.txt/out': '{project / 'notes.txt'}' is a "
        "file, not a folder; choose another --out\n"
    )
    assert stored_runs(project / "apg.db") == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_folder_read_only_parent_is_refused_before_the_run(project: Path) -> None:
    (project / "ro").mkdir()
    (project / "ro").chmod(0o555)
    try:
        result = run_into("ro/out")
    finally:
        (project / "ro").chmod(0o755)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: cannot create output folder 'ro/out': Permission denied; choose a folder you "
        "can write to\n"
    )
    assert stored_runs(project / "apg.db") == 0


def test_output_folder_symlink_to_a_user_folder_is_refused(project: Path) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "plan.md").write_text("plan")
    os.symlink(project / "docs", project / "link")
    result = run_into("link", "--no-store")
    assert result.exit_code == 1
    assert "holds files apg did not write ('plan.md')" in result.stderr
    assert (project / "docs" / "plan.md").read_text() == "plan"
    assert (project / "link").is_symlink()


def test_output_folder_forged_manifest_cannot_reach_outside(project: Path) -> None:
    out = project / "out"
    out.mkdir()
    forged = {"written_by": "apg", "files": ["../notes.txt", "..", "/etc/passwd", "a/b"]}
    (out / MANIFEST).write_text(json.dumps(forged))
    assert run_into("out", "--no-store").exit_code == 0
    assert (project / "notes.txt").read_text() == "my notes\n"
    assert {p.name for p in out.iterdir()} == FILES | {MANIFEST}


def test_output_folder_manifest_cannot_vouch_for_a_subfolder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "personas.json").mkdir(parents=True)
    (out / "personas.json" / "keep.txt").write_text("x")
    (out / MANIFEST).write_text(json.dumps({"written_by": "apg", "files": ["personas.json"]}))
    with pytest.raises(
        OutputFolderError, match=r"holds files apg did not write \('personas.json'\)"
    ):
        check_output_folder(out)


@settings(max_examples=40, deadline=None)
@given(
    names=st.sets(
        st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).filter(
            lambda n: n not in (".", "..", MANIFEST)
        ),
        min_size=1,
        max_size=6,
    )
)
def test_output_folder_any_unmanifested_content_is_refused_intact(
    tmp_path_factory: pytest.TempPathFactory, names: set[str]
) -> None:
    out = tmp_path_factory.mktemp("out")
    for name in names:
        (out / name).write_text(name)
    with pytest.raises(OutputFolderError, match="holds files apg did not write"):
        check_output_folder(out)
    assert {p.name: p.read_text() for p in out.iterdir()} == {n: n for n in names}
