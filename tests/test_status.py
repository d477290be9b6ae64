"""``apg status``: daemon liveness, the run in progress, the last runs, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from daemon_helpers import write_config, write_text, write_users

from apg.cli.main import main
from apg.service.scheduler import scheduled_run
from apg.store import Store, locks, now, runstate
from apg.store.locks import HOST


def _status(url: str, *args: str) -> Any:
    result = CliRunner().invoke(main, ["status", "--db", url, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'apg.db'}"


def test_status_of_a_fresh_database(url: str) -> None:
    Store(url).close()
    assert _status(url) == (
        "daemon: not running\nnext run: none scheduled (start `apg daemon`)\n\nno runs yet\n"
    )


def test_status_needs_an_existing_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--db", str(tmp_path / "typo.db")])
    assert result.exit_code == 1 and "no database at" in result.stderr


def test_status_lists_last_runs_with_status_duration_personas_reason(
    tmp_path: Path, url: str
) -> None:
    data = write_users(tmp_path / "users.csv")
    config = str(write_config(tmp_path / "d.yaml", {"kind": "file", "path": "users.csv"}))
    assert scheduled_run(config, url) == "succeeded"
    assert scheduled_run(config, url, trigger="run-now") == "unchanged"
    write_text(data, "broken\n")
    assert scheduled_run(config, url, trigger="retry", attempt=1) == "failed"
    lines = _status(url, "--limit", "3").splitlines()
    assert lines[:3] == ["daemon: not running", "next run: none scheduled (start `apg daemon`)", ""]
    assert lines[3].split() == [
        "run",
        "status",
        "trigger",
        "started",
        "duration",
        "personas",
        "reason",
    ]
    starts = [lines[3].index(word) for word in lines[3].split()] + [None]

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in pairwise(starts)]

    failed, unchanged, succeeded = (cells(line) for line in lines[4:])
    assert failed[1:3] == ["failed", "retry 1"] and failed[5] == ""
    assert failed[6].startswith("SourceError: source #1 (file users.csv): '")
    assert failed[6].endswith("…") and len(failed[6]) == 100  # one line, cut
    assert unchanged[1:3] == ["unchanged", "run-now"] and unchanged[6].startswith("same data")
    with Store(url) as store:
        personas = [r["n_clusters"] for r in store.runs() if r["status"] == "succeeded"]
    assert succeeded[1:3] == ["succeeded", "schedule"] and succeeded[5:] == [str(personas[0]), ""]
    assert succeeded[4].endswith("s") and float(succeeded[4][:-1]) > 0
    doc = _status(url, "--json", "--limit", "2")
    assert [r["status"] for r in doc["runs"]] == ["failed", "unchanged"]
    assert set(doc["runs"][0]) == {
        "id",
        "status",
        "trigger",
        "attempt",
        "started_at",
        "finished_at",
        "seconds",
        "personas",
        "reason",
        "pid",
        "host",
        "previous_run_id",
        "weak",
    }
    assert doc["runs"][0]["seconds"] > 0 and doc["runs"][0]["personas"] is None
    assert doc["runs"][0]["weak"] is None  # a failed run has no structure to judge


def test_status_shows_a_live_daemon_and_the_run_in_progress(url: str) -> None:
    token = locks.new_token()
    run_token = locks.new_token()
    detail = {"schedule": "cron '0 3 * * mon' (UTC)", "heartbeat_every": 10.0}
    with Store(url) as store, store.write() as conn:
        locks.acquire(conn, locks.DAEMON, token=token, command="apg daemon", detail=detail)
        locks.acquire(conn, locks.RUN, token=run_token, command="apg schedule", run_id="run-x")
        runstate.insert_running(conn, "run-x", started_at=now(), config=None, trigger="schedule")
    try:
        text = _status(url)
        assert text.startswith(
            f"daemon: running, pid {os.getpid()} on host {HOST}, heartbeat 0s ago, since "
        )
        assert "\nschedule: cron '0 3 * * mon' (UTC)\n" in text
        assert f"\nin progress: run-x by pid {os.getpid()} on host {HOST} (apg schedule)" in text
        doc = _status(url, "--json")
        assert doc["daemon"]["state"] == "running" and doc["daemon"]["pid"] == os.getpid()
        assert doc["current_run"]["run_id"] == "run-x"
        assert doc["runs"][0]["status"] == "running" and doc["marked_interrupted"] == []
    finally:
        locks.forget(token)
        locks.forget(run_token)


def test_status_reports_a_dead_daemon_and_marks_its_run_interrupted(url: str) -> None:
    script = f"""
import os
from apg.store import Store, locks
from apg.store.runner import begin_run
store = Store({url!r})
with store.write() as conn:
    locks.acquire(conn, locks.DAEMON, token="t", command="apg daemon", detail={{}})
begin_run(store, None, trigger="schedule")
os._exit(9)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    with Store(url) as store:
        (run,) = store.runs()
    pid = run["pid"]
    text = _status(url)
    gone = f"pid {pid} on host {HOST} is gone (killed or crashed)"
    assert text.startswith(f"daemon: not running ({gone}; last heartbeat ")
    assert f"\nmarked {run['id']} {gone}; found by apg status\n" in text
    doc = _status(url, "--json")
    assert doc["runs"][0]["status"] == "interrupted"
    assert doc["runs"][0]["reason"] == f"{gone}; found by apg status"
    assert doc["marked_interrupted"] == [] and doc["current_run"] is None
