"""The database locks: one run at a time across processes, dead holders taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import store_helpers as h
from click.testing import CliRunner

from apg.cli.main import main
from apg.store import Store, locks, now
from apg.store import schema as t
from apg.store.locks import HOST, LockHeld

db_url = h.db_url
store = h.store


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(store: Store, name: str, *, pid: int, host: str = HOST, age: float = 0.0) -> None:
    """A lock row as another process would have left it."""
    stamp = (datetime.now(UTC) - timedelta(seconds=age)).isoformat(timespec="microseconds")
    stamp = stamp.replace("+00:00", "Z")
    with store.write() as conn:
        conn.execute(
            t.locks.insert().values(
                name=name,
                token="other",
                run_id="run-other" if name == locks.RUN else None,
                pid=pid,
                host=host,
                command="apg run",
                started_at=stamp,
                heartbeat_at=stamp,
            )
        )


def _take(store: Store, name: str = locks.RUN) -> tuple[str, tuple[locks.Holder, str] | None]:
    token = locks.new_token()
    with store.write() as conn:
        return token, locks.acquire(conn, name, token=token, command="test", run_id="run-mine")


def test_lock_second_taker_is_refused_naming_the_holder(store: Store) -> None:
    token, _ = _take(store)
    with pytest.raises(LockHeld) as exc:
        _take(store)
    with store.read() as conn:
        holder = locks.read(conn, locks.RUN)
    assert holder is not None and holder.token == token
    since = holder.started_at[:19].replace("T", " ")
    assert str(exc.value) == (
        f"another run is in progress: run run-mine by pid {os.getpid()} on host {HOST} "
        f"since {since} UTC; wait for it or use --wait"
    )
    with store.write() as conn:
        assert locks.release(conn, locks.RUN, token)
        assert not locks.release(conn, locks.RUN, token)
    locks.forget(token)
    _take(store)  # free again


def test_lock_of_a_dead_pid_on_this_host_is_taken_over(store: Store) -> None:
    pid = _dead_pid()
    _plant(store, locks.RUN, pid=pid)
    _, taken = _take(store)
    assert taken is not None
    assert (
        taken[0].pid == pid and taken[1] == f"pid {pid} on host {HOST} is gone (killed or crashed)"
    )


def test_lock_on_another_host_is_taken_over_only_without_heartbeat(store: Store) -> None:
    _plant(store, locks.DAEMON, pid=1, host="elsewhere", age=locks.STALE_AFTER - 30)
    with pytest.raises(LockHeld, match="another apg daemon uses this database: pid 1 on host"):
        _take(store, locks.DAEMON)
    with store.write() as conn:
        conn.execute(t.locks.delete())
    _plant(store, locks.DAEMON, pid=1, host="elsewhere", age=locks.STALE_AFTER + 30)
    _, taken = _take(store, locks.DAEMON)
    assert taken is not None and taken[1].startswith("pid 1 on host elsewhere sent no heartbeat")


def test_lock_left_by_this_process_without_its_token_is_taken_over(store: Store) -> None:
    _plant(store, locks.RUN, pid=os.getpid())  # e.g. a release that failed on a DB error
    _, taken = _take(store)
    assert taken is not None and taken[1].endswith("(this process) no longer holds it")


def test_lock_heartbeat_refreshes_and_notices_a_takeover(store: Store) -> None:
    token, _ = _take(store)
    with store.read() as conn:
        before = locks.read(conn, locks.RUN)
    lost: list[bool] = []
    beat = locks.Heartbeat(store, locks.RUN, token, every=0.05, on_lost=lambda: lost.append(True))
    beat.start()
    try:
        time.sleep(0.3)
        with store.read() as conn:
            after = locks.read(conn, locks.RUN)
        assert before is not None and after is not None
        assert after.heartbeat_at > before.heartbeat_at
        with store.write() as conn:
            conn.execute(t.locks.delete())  # another process presumed us dead
        assert beat.lost.wait(5) and lost == [True]
    finally:
        beat.stop()


def _config_file(tmp_path: Path) -> Path:
    h.blobs().to_csv(tmp_path / "users.csv", index=False)
    raw = h.raw_config()
    raw["sources"] = [{"kind": "file", "path": "users.csv"}]
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_lock_apg_run_refuses_while_a_run_holds_it_and_waits_with_wait(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'apg.db'}"
    config = str(_config_file(tmp_path))
    with Store(url) as store:
        token, _ = _take(store)
        args = ["run", "--config", config, "--db", url, "-q", "--out", "out"]
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 1
        assert refused.stderr.startswith(
            f"error: another run is in progress: run run-mine by pid {os.getpid()} on host "
        )
        assert refused.stderr.endswith(" UTC; wait for it or use --wait\n")

        def release() -> None:
            time.sleep(0.5)
            with store.write() as conn:
                locks.release(conn, locks.RUN, token)

        releaser = threading.Thread(target=release)
        releaser.start()
        waited = CliRunner().invoke(main, [*args, "--wait"])
        releaser.join()
        assert waited.exit_code == 0, waited.output
        assert waited.stderr.startswith(f"waiting for run run-mine by pid {os.getpid()} on host ")
        assert [r["status"] for r in store.runs()] == ["succeeded"]
    assert CliRunner().invoke(main, [*args, "--no-store", "--wait"]).exit_code == 1


def test_lock_run_of_a_killed_process_is_marked_interrupted_by_the_next_run(
    store: Store, db_url: str
) -> None:
    script = textwrap.dedent(f"""
        import os
        from apg.store import Store
        from apg.store.runner import begin_run
        begin_run(Store({db_url!r}), None)
        os._exit(9)  # killed mid-run: the lock and the `running` row stay behind
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    (left,) = store.runs()
    # Any reader shows the dead run interrupted at once; the next run records it so.
    assert (left["status"], left["host"]) == ("interrupted", HOST)
    assert left["reason"] == f"pid {left['pid']} on host {HOST} is gone (killed or crashed) " + (
        "(not yet recorded)"
    )
    assert left["finished_at"] is None
    stored = h.run(store, h.blobs())
    marked = next(r for r in store.runs() if r["id"] == left["id"])
    assert marked["status"] == "interrupted" and marked["finished_at"] >= now()[:10]
    assert marked["reason"] == (
        f"pid {left['pid']} on host {HOST} is gone (killed or crashed); "
        f"found by the next run ({stored.run_id})"
    )
