"""A real ``apg daemon`` process over a real SQLite file: runs, unchanged data, changed data,
a failing source, the run lock against ``apg run``, SIGTERM and ``kill -9``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from daemon_helpers import (
    Daemon,
    Db,
    Gate,
    daemons,
    gate,
    wait_for,
    write_config,
    write_text,
    write_users,
)

from apg.cli.main import main
from apg.store.locks import HOST

__all__ = ["daemons", "gate"]  # fixtures


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'apg.db'}"


def _after(db: Db, run_id: str | None, **want: Any) -> dict[str, Any] | None:
    """The first run started after ``run_id`` whose columns match ``want``."""
    runs = db.runs()
    ids = [r["id"] for r in runs]
    start = ids.index(run_id) + 1 if run_id in ids else 0
    return next((r for r in runs[start:] if all(r[k] == v for k, v in want.items())), None)


def _status(db_url: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["status", "--db", db_url, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_daemon_runs_skips_unchanged_picks_up_changes_and_survives_a_failing_source(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    data = write_users(tmp_path / "users.csv", seed=0)
    config = write_config(
        tmp_path / "daemon.yaml",
        {"kind": "file", "path": "users.csv"},
        retry={"attempts": 3, "delay_seconds": 0.2},
    )
    url = _url(tmp_path)
    d = Daemon(tmp_path, config, url, "--interval", "1", "--run-now")
    daemons.append(d)
    db = Db(url)
    first = wait_for(lambda: _after(db, None, status="succeeded"), "a first run", log=d.log)
    assert first["trigger"] == "run-now" and first["pid"] == d.pid and first["n_clusters"]
    same = wait_for(
        lambda: _after(db, first["id"], status="unchanged"), "an unchanged run", log=d.log
    )
    assert same["previous_run_id"] == first["id"] and same["fingerprint"] == first["fingerprint"]
    assert (
        same["reason"].startswith("same data (sha256:")
        and db.count("apg_candidates", same["id"]) == 0
    )

    write_users(data, seed=1)  # fresh data
    second = wait_for(lambda: _after(db, same["id"], status="succeeded"), "a rerun", log=d.log)
    assert second["fingerprint"] != first["fingerprint"]
    assert second["previous_run_id"] == first["id"]

    write_text(data, "name,score\nann,1\n")  # the source breaks
    failed = wait_for(lambda: _after(db, second["id"], status="failed"), "a failure", log=d.log)
    assert "SourceError" in failed["reason"] and "'user_id' not found" in failed["reason"]
    write_users(data, seed=2)  # ... and recovers
    wait_for(lambda: _after(db, failed["id"], status="succeeded"), "a recovery", log=d.log)

    status = _status(url)
    assert status["daemon"]["state"] == "running" and status["daemon"]["pid"] == d.pid
    assert status["schedule"] == "every 1s" and "schedule" in {
        f["job"] for f in status["next_runs"]
    }
    assert d.stop() == 0
    assert db.locks() == {}  # the daemon lock is released; no run is left running
    assert "running" not in {r["status"] for r in db.runs()}
    assert d.log().rstrip().endswith("daemon stopped")
    db.close()


def test_daemon_retries_failed_run_before_next_fire_and_logs_json(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    data = write_text(tmp_path / "users.csv", "not,the,table\n")
    config = write_config(
        tmp_path / "daemon.yaml",
        {"kind": "file", "path": "users.csv"},
        retry={"attempts": 3, "delay_seconds": 0.5},
    )
    url = _url(tmp_path)
    d = Daemon(tmp_path, config, url, "--interval", "3600", "--run-now", "--log-format", "json")
    daemons.append(d)
    db = Db(url)
    failed = wait_for(lambda: _after(db, None, status="failed"), "a failure", log=d.log)
    assert failed["trigger"] == "run-now" and failed["attempt"] == 0
    write_users(data)
    retried = wait_for(lambda: _after(db, None, status="succeeded"), "a retry", log=d.log)
    assert retried["trigger"] == "retry" and retried["attempt"] >= 1
    assert d.stop() == 0
    lines = [json.loads(line) for line in d.log().splitlines()]  # every line is one JSON event
    messages = [(e["run_id"], e["message"]) for e in lines]
    assert (failed["id"], "retry 1 of 3 at ") in [(r, m[:16]) for r, m in messages]
    assert any(r == failed["id"] and m.startswith("run failed: SourceError") for r, m in messages)
    assert any(r == retried["id"] and m == "run succeeded" for r, m in messages)
    assert {e["level"] for e in lines} <= {"info", "warning", "error"}
    db.close()


def test_daemon_run_lock_refuses_apg_run_waits_on_sigterm_and_apg_run_wait_follows(
    tmp_path: Path, daemons: list[Daemon], gate: Gate
) -> None:
    config = write_config(tmp_path / "daemon.yaml", gate.source(), shutdown_grace=30)
    url = _url(tmp_path)
    d = Daemon(tmp_path, config, url, "--interval", "3600", "--run-now")
    daemons.append(d)
    db = Db(url)
    running = wait_for(lambda: _after(db, None, status="running"), "a run in progress", log=d.log)
    assert running["pid"] == d.pid and running["host"] == HOST
    status = _status(url)
    assert status["current_run"]["run_id"] == running["id"]

    refused = CliRunner().invoke(main, ["run", "--config", str(config), "--db", url, "-q"])
    assert refused.exit_code == 1
    since = running["started_at"][:19].replace("T", " ")
    assert refused.stderr == (
        f"error: another run is in progress: run {running['id']} by pid {d.pid} on host {HOST} "
        f"since {since} UTC; wait for it or use --wait\n"
    )
    err_path = tmp_path / "waiter.err"
    with err_path.open("w") as err_file:
        waiter = subprocess.Popen(
            [sys.executable, "-m", "apg", "run", "--config", str(config), "--db", url, "--wait"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
    try:
        waiting = f"waiting for run {running['id']} by pid {d.pid} on host {HOST} since"
        wait_for(lambda: waiting in err_path.read_text(), "apg run --wait to wait")
        # SIGTERM: the daemon schedules nothing more but lets its run finish (grace 30 s).
        d.signal(signal.SIGTERM)
        wait_for(lambda: "waiting up to 30s" in d.log(), "the shutdown to wait", log=d.log)
        assert d.proc.poll() is None
        gate.opened.set()  # the daemon's run can finish now
        assert d.wait() == 0
        assert waiter.wait(timeout=60) == 0, err_path.read_text()
    finally:
        if waiter.poll() is None:
            waiter.kill()
    runs = db.runs()
    assert [(r["status"], r["trigger"]) for r in runs] == [
        ("succeeded", "run-now"),
        ("succeeded", "manual"),
    ]
    assert runs[1]["started_at"] > runs[0]["finished_at"]  # one run at a time
    assert db.count("apg_persona_runs", runs[0]["id"]) > 0 and db.locks() == {}
    db.close()


def test_daemon_after_kill_9_next_start_recovers_and_sigterm_past_grace_interrupts(
    tmp_path: Path, daemons: list[Daemon], gate: Gate
) -> None:
    config = write_config(tmp_path / "daemon.yaml", gate.source(), shutdown_grace=0.3)
    url = _url(tmp_path)
    first = Daemon(tmp_path, config, url, "--interval", "3600", "--run-now", name="first")
    daemons.append(first)
    db = Db(url)
    wait_for(gate.entered.is_set, "the source to be read", log=first.log)
    first.signal(signal.SIGKILL)
    first.wait()
    (stale,) = db.runs()
    assert stale["status"] == "running"  # all the killed run left: no content
    assert db.count("apg_persona_runs", stale["id"]) == db.count("apg_members", stale["id"]) == 0
    assert set(db.locks()) == {"run", "daemon"}

    gate.entered.clear()
    second = Daemon(tmp_path, config, url, "--interval", "3600", "--run-now", name="second")
    daemons.append(second)
    wait_for(gate.entered.is_set, "the next run to read", log=second.log)
    marked, current = db.runs()
    assert marked["status"] == "interrupted"
    assert marked["reason"] == (
        f"pid {first.pid} on host {HOST} is gone (killed or crashed); found by apg daemon "
        f"start (pid {second.pid} on host {HOST})"
    )
    warning = f"WARNING {stale['id']} run {stale['id']} marked interrupted: pid {first.pid}"
    assert warning in second.log()
    assert current["status"] == "running" and current["pid"] == second.pid

    # The read never returns: past shutdown_grace the run is abandoned and recorded.
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    _, run = db.runs()
    assert run["status"] == "interrupted" and run["finished_at"]
    assert run["reason"] == (
        "the daemon was stopped (SIGTERM) and the run did not finish within "
        "shutdown_grace=0.3s; aborted mid-stage"
    )
    assert db.count("apg_persona_runs", run["id"]) == 0 and db.locks() == {}
    db.close()


@pytest.mark.parametrize("grace", [None, 60])
def test_daemon_down_at_fire_time_runs_once_at_start_within_grace_else_skips(
    tmp_path: Path, daemons: list[Daemon], grace: int | None
) -> None:
    """Fires missed while the daemon was down (two weeks of them, the last 2 minutes ago)
    coalesce into one run at start, unless the last is older than misfire_grace_time."""
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    from apg.service.scheduler import JOB_FUNC, JOBS_TABLE, SCHEDULE_JOB
    from apg.store import Store

    write_users(tmp_path / "users.csv")
    fired = (datetime.now(UTC) - timedelta(minutes=2)).replace(second=0, microsecond=0)
    cron = f"{fired.minute} {fired.hour} * * {fired.strftime('%a').lower()}"
    schedule: dict[str, Any] = {"cron": cron}
    if grace is not None:
        schedule["misfire_grace_time"] = grace
    config = write_config(
        tmp_path / "daemon.yaml", {"kind": "file", "path": "users.csv"}, **schedule
    )
    url = _url(tmp_path)
    Store(url).close()  # an apg database, as a daemon that ran before left it
    jobs = SQLAlchemyJobStore(url=url, tablename=JOBS_TABLE)
    jobs.start(BlockingScheduler(timezone=UTC), "default")
    job = Job(
        jobs._scheduler,
        id=SCHEDULE_JOB,
        func=JOB_FUNC,
        trigger=CronTrigger.from_crontab(cron, timezone=ZoneInfo("UTC")),
        executor="default",
        args=(),
        kwargs={"config_path": str(config)},
        name="apg scheduled run",
        misfire_grace_time=6 * 3600,
        coalesce=True,
        max_instances=1,
        next_run_time=fired - timedelta(weeks=2),  # the daemon went down before that fire
    )
    jobs.add_job(job)
    jobs.shutdown()

    d = Daemon(tmp_path, config, url)
    daemons.append(d)
    db = Db(url)
    if grace is None:  # the default, 6 hours
        wait_for(lambda: "run succeeded" in d.log(), "the missed run", log=d.log)
        assert d.stop() == 0
        (run,) = db.runs()  # once, not once per missed week
        assert run["trigger"] == "schedule"
    else:
        missed = f"missed the run due at {fired:%Y-%m-%d %H:%M:%S} UTC by "
        wait_for(lambda: missed in d.log(), "the missed run to be skipped", log=d.log)
        assert "(more than misfire_grace_time=60s)" in d.log()
        assert d.stop() == 0
        assert db.runs() == []
    with db.engine.connect() as conn:
        (next_time,) = conn.execute(sa.text(f"SELECT next_run_time FROM {JOBS_TABLE}")).one()
    assert datetime.fromtimestamp(next_time, UTC) == fired + timedelta(weeks=1)
    db.close()
