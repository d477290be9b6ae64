"""A real ``apg daemon`` process notifying real receivers on 127.0.0.1: one well-formed
message per run with the right event and names, while a second receiver answers 500 and a
third hangs, and no secret in the log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from daemon_helpers import Daemon, Db, daemons, wait_for, write_config, write_users
from notify_helpers import HANG, Receiver, receivers

from apg.store import Store
from apg.store.notifications import for_run

__all__ = ["daemons", "receivers"]  # fixtures

TOKEN = "tok-Daemon-Secret-0815"


def test_daemon_sends_one_message_per_run_and_keeps_running_past_500_and_hang(
    tmp_path: Path,
    daemons: list[Daemon],
    receivers: list[Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, broken, hanging = Receiver(), Receiver([500]), Receiver([HANG])
    receivers += [good, broken, hanging]
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)  # the daemon inherits the environment
    write_users(tmp_path / "users.csv", seed=0)
    config = write_config(tmp_path / "daemon.yaml", {"kind": "file", "path": "users.csv"})
    raw = json.loads(config.read_text(encoding="utf-8"))
    bounded = {"timeout": 0.5, "attempts": 3, "backoff": 0.1, "max_seconds": 1.5}
    raw["notify"] = [
        {"url": good.url(), "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}},
        {"url": broken.url("/hook/${HOOK_TOKEN}"), "format": "slack", **bounded},
        {"url": hanging.url(), **bounded},
    ]
    config.write_text(json.dumps(raw), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'apg.db'}"
    d = Daemon(tmp_path, config, url, "--interval", "1", "--run-now")
    daemons.append(d)
    db = Db(url)
    try:
        wait_for(
            lambda: len([r for r in db.runs() if r["finished_at"]]) >= 3 and len(good.bodies) >= 3,
            "three finished runs, notified",
            timeout=90,
            log=d.log,
        )
        began = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - began < 15
        runs = [r for r in db.runs() if r["status"] != "interrupted"]
    finally:
        db.close()
    messages = good.bodies
    # Exactly one message per run, for that run, in run order.
    assert [m["run_id"] for m in messages] == [r["id"] for r in runs]
    assert [r["status"] for r in runs[:2]] == ["succeeded", "unchanged"]
    first, *rest = messages
    assert (first["event"], first["status"], first["trigger"]) == (
        "succeeded",
        "succeeded",
        "run-now",
    )
    with Store(url) as store, store.read() as conn:
        names = {p["persona_id"]: p["name"] for p in store.personas(runs[0]["id"])}
        recorded = [for_run(conn, r["id"]) for r in runs]
    assert {p["id"]: p["name"] for p in first["personas"]} == names
    assert all(names[p] in first["text"] for p in names)
    assert all((m["event"], m["status"]) == ("succeeded", "unchanged") for m in rest)
    assert good.received[0].headers["Authorization"] == f"Bearer {TOKEN}"
    # Every run tried each target; the broken and the hanging one are recorded failed.
    for rows in recorded:
        assert [(r["status"], r["http_status"]) for r in rows] == [
            ("sent", 200),
            ("failed", 500),
            ("failed", None),
        ]
        assert rows[1]["target"] == f"{broken.base}/hook/***" and rows[1]["attempts"] == 3
    assert len(broken.bodies) == 3 * len(runs)
    log = d.log()
    assert "notify[1] " + f"{broken.base}/hook/***: succeeded not delivered after 3 attempts" in log
    assert TOKEN not in log
