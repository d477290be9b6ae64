"""The store's command line: runs, personas, review, export, assign, and ``apg run --db``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import store_helpers as h
from click.testing import CliRunner, Result

from apg.cli.main import main
from apg.store import Store
from apg.store.runner import StoredRun

URL = "sqlite:///apg.db"  # in the test's working folder (tmp_path)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def week1(tmp_path: Path) -> StoredRun:
    with Store(URL) as s:
        return h.run(s, h.blobs())


def by_segment(stored: StoredRun) -> dict[str, str]:
    return {seg: pid for pid, seg in h.segment_of(stored).items()}


def write_config(path: Path) -> Path:
    """A config file for blobs in users.csv with a small k-means grid (fast)."""
    h.blobs().to_csv(path.parent / "users.csv", index=False)
    raw = h.raw_config()
    raw["sources"] = [{"kind": "file", "path": "users.csv"}]
    path.write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
    return path


def test_cli_run_records_in_default_database_with_same_run_id(tmp_path: Path) -> None:
    args = ["run", "--config", str(write_config(tmp_path / "run.yaml")), "-q", "--out", "out"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    doc = json.loads((tmp_path / "out" / "personas.json").read_text(encoding="utf-8"))
    with Store(URL) as s:
        (run,) = s.runs()
        assert doc["run_id"] == run["id"]
        assert sorted(p["persona_id"] for p in doc["personas"]) == sorted(
            p["persona_id"] for p in s.personas()
        )
    ids = ", ".join(p["persona_id"] for p in doc["personas"])
    assert first.stdout.endswith(
        f"\nstored in sqlite:///apg.db: {len(doc['personas'])} new\nto review: {ids} "
        "(apg personas list --status draft)\n"
    )
    second = invoke(*args)
    assert second.stdout.endswith(
        f"\nstored in sqlite:///apg.db: {len(doc['personas'])} continuing (matched to "
        f"{run['id']} by members)\n"
    )


def test_cli_run_no_store_writes_no_database(tmp_path: Path) -> None:
    args = ["run", "--config", str(write_config(tmp_path / "run.yaml")), "-q"]
    assert invoke(*args, "--no-store").exit_code == 0
    assert not (tmp_path / "apg.db").exists()
    clash = invoke(*args, "--no-store", "--db", "x.db")
    assert clash.exit_code == 1
    assert clash.stderr == "error: --db and --no-store contradict each other; give one\n"


def test_cli_runs_list_table_and_json(week1: StoredRun) -> None:
    result = invoke("runs", "list")
    assert result.exit_code == 0
    w = week1.result.search.winner
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "run",
        "started",
        "status",
        "users",
        "chosen",
        "silhouette",
        "personas",
    ]
    assert row.split()[0] == week1.run_id
    assert row.split()[3:] == ["succeeded", "600", "kmeans(k=4)", f"{w.silhouette:.3f}", "4", "new"]
    (doc,) = json.loads(invoke("runs", "list", "--json").stdout)
    assert doc["id"] == week1.run_id and doc["personas"] == {
        "new": 4,
        "continuing": 0,
        "changed": 0,
        "retired": 0,
    }


def test_cli_runs_show_latest_and_unknown(week1: StoredRun) -> None:
    out = invoke("runs", "show").stdout
    assert out.startswith(f"run {week1.run_id}: succeeded\n")
    assert "data: 600 users used of 600 read; fingerprint sha256:" in out
    assert "model: centroid rule, reproduces 100.0% of this run's labels" in out
    assert "LLM calls: 0" in out
    doc = json.loads(invoke("runs", "show", week1.run_id, "--json").stdout)
    assert len(doc["candidates"]) == 5 and len(doc["personas"]) == 4
    typo = week1.run_id[:-1] + ("0" if week1.run_id[-1] != "0" else "1")
    bad = invoke("runs", "show", typo)
    assert bad.exit_code == 1
    assert bad.stderr == f"error: no run '{typo}'; did you mean '{week1.run_id}'?\n"


def test_cli_personas_list_and_status_filter(week1: StoredRun) -> None:
    result = invoke("personas", "list")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["persona", "status", "size", "share", "review", "name"]
    names = {p.persona_id: p.narrative.name for p in week1.result.personas if p.narrative}
    for line in lines[1:]:
        pid, status, size, share, review_state, *name = line.split()
        assert (status, size, share, review_state) == ("new", "150", "25.0%", "draft")
        assert " ".join(name) == names[pid]
    pid = week1.result.personas[0].persona_id
    assert invoke("review", "approve", pid, "--by", "ana").exit_code == 0
    approved = json.loads(invoke("personas", "list", "--status", "approved", "--json").stdout)
    assert [p["persona_id"] for p in approved] == [pid]
    assert len(invoke("personas", "list", "--status", "draft").stdout.splitlines()) == 4


def test_cli_personas_show_history_and_pending_draft(tmp_path: Path, week1: StoredRun) -> None:
    pid = by_segment(week1)["B"]
    assert invoke("review", "approve", pid, "--by", "ana").exit_code == 0
    with Store(URL) as s:
        week2 = h.run(s, h.blobs(centres={**h.CENTRES, "B": [10.0, 3.0, 0.0, 0.6]}))
    out = invoke("personas", "show", pid).stdout
    assert f"status: changed in {week2.run_id}; narrative v1 approved, by ana " in out
    assert "Pending draft v2 (generated by apg/offline, " in out
    # B moved +3 in f2 and +0.6 in f4: in week-1 standard deviations (about 4.4 and 1.0).
    assert (
        "  drift 0.45; centroid shift 0.45 sd; member overlap 100%; size +0 (+0.0 pts); "
        "top shifts: f2 +0.68, f4 +0.58, " in out
    )
    history = out.split("History:\n")[1].splitlines()
    assert [line.split()[0] for line in history] == ["run", week1.run_id, week2.run_id]
    assert [line.split()[3:6] for line in history[1:]] == [
        ["new", "150", "25.0%"],
        ["changed", "150", "25.0%"],
    ]
    doc = json.loads(invoke("personas", "show", pid, "--json").stdout)
    assert [r["status"] for r in doc["history"]] == ["new", "changed"]
    assert doc["pending_draft"]["version"] == 2


def test_cli_review_commands_and_history(week1: StoredRun, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = week1.result.personas[0].persona_id
    name = week1.result.personas[0].narrative.name  # type: ignore[union-attr]
    monkeypatch.setenv("USER", "dana")
    monkeypatch.setenv("LOGNAME", "dana")
    approved = invoke("review", "approve", pid, "--note", "fine")
    assert approved.stdout == f"approved {pid} v1 ({name}) by dana\n"
    again = invoke("review", "reject", pid, "--note", "changed my mind", "--by", "eve")
    assert again.exit_code == 1
    assert again.stderr.startswith(
        f"error: cannot reject {pid} v1: it is already approved by dana at "
    )
    edited = invoke(
        "review",
        "edit",
        pid,
        "--name",
        "Renamed",
        "--goal",
        "One",
        "--goal",
        "Two",
        "--by",
        "eve",
        "--note",
        "clearer",
    )
    assert edited.stdout == (
        f"{pid} v2 drafted by eve; approve it with `apg review approve {pid}`\n"
    )
    rejected = invoke("review", "reject", pid, "--by", "fay", "--note", "not better")
    assert rejected.stdout == f"rejected {pid} v2 by fay\n"
    missing = invoke("review", "reject", pid)
    assert missing.exit_code == 2 and "Missing option '--note'" in missing.stderr
    lines = invoke("review", "history", pid).stdout.splitlines()
    assert lines[0].split() == ["version", "action", "by", "at", "name", "note"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("v1", "generated", "apg/offline"),
        ("v1", "approved", "dana"),
        ("v2", "edited", "eve"),
        ("v2", "rejected", "fay"),
    ]
    assert lines[2].split()[5:] == [*name.split(), "fine"]
    assert rows[2][5:] == ["Renamed", "clearer"] and rows[3][5:] == ["Renamed", "not", "better"]
    doc = json.loads(invoke("review", "history", pid, "--json").stdout)
    assert [v["status"] for v in doc["versions"]] == ["approved", "rejected"]
    assert [g["text"] for g in doc["versions"][1]["body"]["goals"]] == ["One", "Two"]


def test_cli_review_edit_from_file(week1: StoredRun, tmp_path: Path) -> None:
    pid = week1.result.personas[0].persona_id
    (tmp_path / "persona.yaml").write_text("name: From File\nsummary: Short.\n", encoding="utf-8")
    assert invoke("review", "edit", pid, "--file", "persona.yaml", "--by", "gus").exit_code == 0
    shown = json.loads(invoke("personas", "show", pid, "--json").stdout)
    assert shown["pending_draft"] is None  # no approved text: the edit is the current draft
    assert shown["narrative"]["body"]["name"] == "From File"
    assert shown["narrative"]["body"]["summary"] == "Short."


def test_cli_unknown_persona_suggests_close_ids(week1: StoredRun) -> None:
    pid = week1.result.personas[0].persona_id
    wrong = pid[:-1] + ("0" if pid[-1] != "0" else "1")
    for args in (["personas", "show", wrong], ["review", "approve", wrong]):
        result = invoke(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: no persona '{wrong}'; did you mean '{pid}'")


def test_cli_export_formats_and_status(week1: StoredRun, tmp_path: Path) -> None:
    pid = week1.result.personas[0].persona_id
    invoke("review", "approve", pid, "--by", "ana")
    doc = json.loads(invoke("export", "--format", "json").stdout)
    assert doc["run_id"] == week1.run_id and len(doc["personas"]) == 4
    only = json.loads(invoke("export", "--status", "approved").stdout)["personas"]
    assert [
        (p["persona_id"], p["narrative"]["status"], p["narrative"]["reviewed_by"]) for p in only
    ] == [(pid, "approved", "ana")]
    rows = list(csv.DictReader(io.StringIO(invoke("export", "--format", "csv").stdout)))
    assert [r["persona_id"] for r in rows] == [p["persona_id"] for p in doc["personas"]]
    assert rows[0]["name"] == doc["personas"][0]["narrative"]["name"]
    result = invoke("export", "--format", "md", "--status", "approved", "--out", "p.md")
    assert result.stderr == "wrote md to p.md\n"
    md = (tmp_path / "p.md").read_text(encoding="utf-8")
    name = doc["personas"][0]["narrative"]["name"]
    assert md.startswith(f"# Personas of run {week1.run_id}\n\n## {name} ({pid})\n")
    assert "150 users (25.0%); new; narrative approved v1 by ana" in md


def test_cli_assign_reproduces_run_assignments(week1: StoredRun, tmp_path: Path) -> None:
    h.blobs().to_csv("users.csv", index=False)
    result = invoke("assign", "--data", "users.csv", "--out", "labels.csv")
    assert result.exit_code == 0, result.output
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert list(labels.columns) == ["user_id", "cluster", "persona_id"]
    assert labels["cluster"].tolist() == week1.result.labels.tolist()
    persona_of = {p.cluster: p.persona_id for p in week1.result.personas}
    assert labels["persona_id"].tolist() == [persona_of[c] for c in week1.result.labels]
    counts = ", ".join(f"{pid} 150" for pid in sorted(persona_of.values()))
    assert result.stdout == (
        f"assigned 600 users with run {week1.run_id}: {counts}\nlabels: labels.csv\n"
    )


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["assign", "--data", "users.csv", "--out", "users.csv"], "users.csv"),
        (["assign", "--data", "users.csv", "--out", "sub/../users.csv"], "users.csv"),
        (["export", "--out", "apg.db"], "apg.db"),
        (["report", "latest", "--out", "apg.db"], "apg.db"),
    ],
    ids=["assign onto its input", "assign onto its input by another name", "export", "report"],
)
def test_cli_file_out_never_overwrites_what_the_command_reads(
    week1: StoredRun, tmp_path: Path, args: list[str], culprit: str
) -> None:
    h.blobs().to_csv("users.csv", index=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    out = args[args.index("--out") + 1]
    assert result.stderr == (
        f"error: --out {out!r} is {culprit!r}, which this command reads; writing there would "
        "destroy it, so choose another file name\n"
    )
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after["users.csv"] == before["users.csv"]
    assert after["apg.db"] == before["apg.db"]


def test_cli_file_out_that_is_a_folder_is_refused(week1: StoredRun, tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    result = CliRunner().invoke(main, ["export", "--out", "exports"])
    assert result.exit_code == 1
    assert result.stderr == "error: --out 'exports' is a folder; give a file name\n"


def test_cli_read_commands_never_create_a_database(tmp_path: Path) -> None:
    result = invoke("runs", "list", "--db", "typo.db")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no database at 'typo.db' (sqlite:///typo.db); run `apg run` "
        "first, or pass --db URL / set APG_DATABASE_URL\n"
    )
    assert not (tmp_path / "typo.db").exists()


def test_cli_database_from_environment(week1: StoredRun, tmp_path: Path) -> None:
    (tmp_path / "apg.db").rename(tmp_path / "elsewhere.db")
    for suffix in ("-wal", "-shm"):
        if (tmp_path / f"apg.db{suffix}").exists():
            (tmp_path / f"apg.db{suffix}").rename(tmp_path / f"elsewhere.db{suffix}")
    result = invoke("runs", "list", "--json", env={"APG_DATABASE_URL": "sqlite:///elsewhere.db"})
    assert [r["id"] for r in json.loads(result.stdout)] == [week1.run_id]


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["runs", "show"],
        ["personas", "list"],
        ["personas", "show"],
        ["review", "approve"],
        ["review", "reject"],
        ["review", "edit"],
        ["review", "history"],
        ["export"],
        ["assign"],
    ],
)
def test_cli_store_commands_have_help_with_example_and_db(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and "--db URL" in result.stdout
    if command[-1] in ("list", "show", "history"):
        assert "--json" in result.stdout
    if command[0] == "review" and command[1] != "history":
        assert "--by NAME" in result.stdout and "--note" in result.stdout


def test_cli_review_edit_text_limits_are_the_shared_ones(week1: StoredRun, tmp_path: Path) -> None:
    pid = week1.result.personas[0].persona_id
    long_name = invoke("review", "edit", pid, "--name", "x" * 100_000, "--by", "gus")
    assert (long_name.exit_code, long_name.stdout) == (1, "")
    assert long_name.stderr == (
        f"error: the edited narrative of {pid} is not valid: name is 100,000 characters; at "
        "most 60; shorten it\n"
    )
    (tmp_path / "p.yaml").write_text("name: ' '\nsummary: " + "y" * 2001 + "\n", encoding="utf-8")
    from_file = invoke("review", "edit", pid, "--file", "p.yaml", "--by", "gus")
    assert from_file.stderr == (
        f"error: the edited narrative of {pid} is not valid: summary is 2,001 characters; at "
        "most 2,000; name is empty; shorten it\n"
    )
    assert len(json.loads(invoke("review", "history", pid, "--json").stdout)["versions"]) == 1
