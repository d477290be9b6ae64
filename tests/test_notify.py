"""Notifications: config, events and precedence, payloads, retries and bounds, masking and
the record in the store (real receivers on 127.0.0.1, real runs through the scheduled job,
real SQLite). The commands: test_notify_cli.py; a daemon process: test_notify_daemon.py."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from daemon_helpers import write_users
from notify_helpers import HANG, Receiver, db_url, fast, notify_config, receivers, recorded

from apg.cli.main import main
from apg.config import NotifyTarget, parse_config
from apg.errors import ConfigError
from apg.service import runlog, webhook
from apg.service.notify import RunNews, notify_run
from apg.service.scheduler import scheduled_run
from apg.store import Store
from apg.store.record import masked_config

__all__ = ["receivers"]  # fixture

SECRET_PATH = "T0SECRET/B0SECRET/xoxSecretPathToken123"
TOKEN = "tok-Very-Secret-4711"


@pytest.fixture
def root_logging() -> Iterator[io.StringIO]:
    """The daemon's text log into a buffer; pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    runlog.setup("text", "DEBUG", stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


# -- config ------------------------------------------------------------------------------------
BASE = {
    "sources": [{"kind": "file", "path": "users.csv"}],
    "id_column": "user_id",
    "features": {"behavioral": ["a"]},
}


def test_notify_config_expands_env_and_is_never_dumped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_PATH", SECRET_PATH)
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    cfg = parse_config(
        {
            **BASE,
            "serve": {"public_url": "https://apg.example.com/"},
            "notify": [
                {
                    "url": "https://hooks.example.com/services/${HOOK_PATH}",
                    "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"},
                    "events": ["failed", "drift", "failed"],
                }
            ],
        }
    )
    (target,) = cfg.notify
    assert target.url == f"https://hooks.example.com/services/{SECRET_PATH}"
    assert target.headers == {"Authorization": f"Bearer {TOKEN}"}
    assert target.events == ["failed", "drift"] and target.format == "json"
    assert (target.timeout, target.attempts, target.max_seconds) == (10, 3, 30)
    assert cfg.serve.public_url == "https://apg.example.com"
    # Not part of the settings: stored configs, run ids and content ids stay as they were.
    dumped = json.dumps(masked_config(cfg))
    assert "notify" not in dumped and SECRET_PATH not in dumped and TOKEN not in dumped
    assert "notify" not in cfg.model_dump() and "serve" not in cfg.model_dump()
    assert NotifyTarget(url="http://x").events == [
        "failed",
        "degraded",
        "weak",
        "drift",
        "succeeded",
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            {"url": "https://h/${NOPE_UNSET}"},
            "notify[0].url: environment variable 'NOPE_UNSET' is not set; export it or remove "
            "${NOPE_UNSET} from the config",
        ),
        (
            {"url": "https://h/x", "headers": {"X-Token": "${NOPE_UNSET}"}},
            "notify[0].headers.X-Token: environment variable 'NOPE_UNSET' is not set",
        ),
        (
            {"url": "hooks.example.com/secret-part"},
            "notify[0].url: must be an http:// or https:// URL with a host",
        ),
        ({"url": "https://h/x", "events": ["done"]}, "notify[0].events[0]: Input should be"),
        ({"url": "https://h/x", "format": "xml"}, "notify[0].format: Input should be 'json'"),
        ({"url": "https://h/x", "attempts": 0}, "notify[0].attempts: Input should be greater"),
    ],
)
def test_notify_config_errors_name_the_key(target: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({**BASE, "notify": [target]})
    assert message in str(exc.value)
    assert "secret-part" not in str(exc.value)


# -- masking -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
        (f"https://hooks.slack.com/services/{SECRET_PATH}", "https://hooks.slack.com/services/***"),
        ("https://user:pw@example.com/a?token=abc&x=1", "https://example.com/a?***"),
        ("https://example.com", "https://example.com"),
    ],
)
def test_notify_masked_url_keeps_host_and_first_segment_only(url: str, shown: str) -> None:
    assert webhook.masked_url(url) == shown


# -- events and precedence ---------------------------------------------------------------------
def _persona(pid: str, status: str, drift: float | None = None) -> dict[str, Any]:
    review = "draft" if status in ("new", "changed") else "approved"
    return {"id": pid, "name": f"Name {pid}", "status": status, "review": review, "drift": drift}


@pytest.mark.parametrize(
    ("status", "weak", "drift", "events"),
    [
        ("failed", [], None, ["failed"]),
        ("succeeded", [], None, ["succeeded"]),
        ("succeeded", [], 0.1, ["succeeded"]),
        ("succeeded", [], 0.4, ["drift", "succeeded"]),
        ("degraded", ["silhouette 0.12 < 0.25"], 0.4, ["degraded", "weak", "drift", "succeeded"]),
        ("succeeded", ["silhouette 0.12 < 0.25"], None, ["weak", "succeeded"]),
        ("unchanged", [], 0.4, ["succeeded"]),
        ("interrupted", [], None, []),
    ],
)
def test_notify_run_events_in_precedence_order(
    status: str, weak: list[str], drift: float | None, events: list[str]
) -> None:
    personas = [
        _persona("P-1", "new"),
        _persona("P-2", "changed" if drift else "continuing", drift),
    ]
    news = RunNews("run-1", status, personas=personas, weak=weak, drift_threshold=0.25)
    assert news.events() == events


def test_notify_each_target_gets_one_message_with_its_first_subscribed_event(
    receivers: list[Receiver],
) -> None:
    every, drift_only, failed_only = (Receiver() for _ in range(3))
    receivers += [every, drift_only, failed_only]
    cfg = parse_config(
        {
            **BASE,
            "notify": [
                {"url": every.url()},
                {"url": drift_only.url(), "events": ["drift"]},
                {"url": failed_only.url(), "events": ["failed"]},
            ],
        }
    )
    news = RunNews(
        "run-1",
        "degraded",
        reason="2 of 2 new narratives use the offline text",
        personas=[_persona("P-1", "new"), _persona("P-2", "changed", 0.5)],
    )
    deliveries = notify_run(cfg, None, news)
    assert [(d.event, d.status) for d in deliveries] == [("degraded", "sent"), ("drift", "sent")]
    (first,) = every.bodies
    (second,) = drift_only.bodies
    assert failed_only.bodies == []
    assert first["event"] == "degraded" and second["event"] == "drift"
    assert first["events"] == second["events"] == ["degraded", "drift", "succeeded"]
    assert second["text"] == (
        "apg run run-1: 1 persona drifted above 0.25: Name P-2 (P-2, drift 0.50) "
        "(also: degraded, succeeded)"
    )


# -- delivery: retries and bounds --------------------------------------------------------------
def test_notify_retries_500_twice_then_200(receivers: list[Receiver]) -> None:
    receivers.append(hook := Receiver([500, 500, 200]))
    target = NotifyTarget(url=hook.url(), **fast())
    d = webhook.deliver(target, {"event": "x"}, event="x", events=["x"])
    assert (d.status, d.attempts, d.http_status, d.error) == ("sent", 3, 200, None)
    assert len(hook.received) == 3


def test_notify_4xx_is_not_retried_and_names_what_to_check(receivers: list[Receiver]) -> None:
    receivers.append(hook := Receiver([401]))
    d = webhook.deliver(NotifyTarget(url=hook.url(), **fast()), {}, event="x", events=[])
    assert (d.status, d.attempts, d.http_status) == ("failed", 1, 401)
    assert d.error == (
        "HTTP 401 Unauthorized: receiver error; not retried: check the credentials in `headers:`"
    )


def test_notify_hanging_receiver_is_bounded_by_timeout_and_max_seconds(
    receivers: list[Receiver],
) -> None:
    receivers.append(hook := Receiver([HANG]))
    target = NotifyTarget(url=hook.url(), timeout=0.5, attempts=5, backoff=0.1, max_seconds=1.5)
    began = time.monotonic()
    (d,) = webhook.deliver_all([(target, {}, "failed", ["failed"])])
    took = time.monotonic() - began
    assert took < 1.5 + webhook.GRACE + 0.5
    assert d.status == "failed" and d.http_status is None and 1 <= d.attempts < 5
    assert d.error is not None and re.match(r"no answer within [\d.]+s \(timeout", d.error)


def test_notify_unreachable_receiver_fails_fast_with_connection_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = NotifyTarget(url=f"http://127.0.0.1:{port}/hook", **fast(attempts=2))
    d = webhook.deliver(target, {}, event="failed", events=["failed"])
    assert (d.status, d.attempts, d.http_status) == ("failed", 2, None)
    assert d.error is not None and d.error.startswith("cannot connect: ")


# -- real runs through the daemon's job --------------------------------------------------------
def test_notify_json_after_a_run_names_personas_links_and_is_recorded(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receivers.append(hook := Receiver())
    config = notify_config(
        tmp_path,
        [{"url": hook.url(), "format": "json"}],
        serve={"public_url": "https://apg.example.com"},
    )
    url = db_url(tmp_path)
    assert scheduled_run(str(config), url) == "succeeded"
    assert scheduled_run(str(config), url) == "unchanged"
    first, second = hook.bodies
    with Store(url) as store:
        run_id = store.run()["id"]
        personas = store.personas(run_id)
        ids = [r["id"] for r in store.runs()]
    assert (first["event"], first["run_id"], first["status"]) == ("succeeded", run_id, "succeeded")
    assert first["events"] == ["succeeded"] and first["trigger"] == "schedule"
    names = {p["persona_id"]: p["name"] for p in personas}
    assert {p["id"]: p["name"] for p in first["personas"]} == names
    assert all(p["status"] == "new" and p["review"] == "draft" for p in first["personas"])
    assert [p["id"] for p in first["to_review"]] == [p["persona_id"] for p in personas]
    assert first["counts"] == {
        "personas": len(personas),
        "new": len(personas),
        "continuing": 0,
        "changed": 0,
        "retired": 0,
        "to_review": len(personas),
        "drifted": 0,
    }
    pid = personas[0]["persona_id"]
    assert first["personas"][0]["url"] == f"https://apg.example.com/personas/{pid}"
    assert first["links"] == {
        "run": f"https://apg.example.com/runs/{run_id}",
        "review": f"https://apg.example.com/personas?run={run_id}&status=draft",
    }
    assert first["text"].startswith(f"apg run {run_id} succeeded: {len(personas)} personas to ")
    assert all(names[p] in first["text"] for p in names)
    # The unchanged run: one message too, nothing new to review.
    assert (second["event"], second["status"], second["to_review"]) == (
        "succeeded",
        "unchanged",
        [],
    )
    assert second["text"] == (
        f"apg run {ids[0]}: data and settings unchanged since {run_id}; nothing new to review"
    )
    rows = recorded(url)
    assert [(r["event"], r["status"], r["attempts"], r["http_status"]) for r in rows] == [
        ("succeeded", "sent", 1, 200)
    ] * 2
    assert rows[0]["target"] == hook.url()


def test_notify_slack_message_has_text_and_blocks(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receivers.append(hook := Receiver())
    config = notify_config(
        tmp_path,
        [{"url": hook.url("/services/T1/B2/abcdefgh"), "format": "slack"}],
        serve={"public_url": "https://apg.example.com"},
    )
    assert scheduled_run(str(config), db_url(tmp_path)) == "succeeded"
    (msg,) = hook.bodies
    assert hook.received[0].path == "/services/T1/B2/abcdefgh"
    assert set(msg) == {"text", "blocks"}
    assert re.match(r"apg run run-\S+ succeeded: \d+ personas to review: ", msg["text"])
    header, listed, context = msg["blocks"]
    assert header["type"] == "section" and header["text"]["type"] == "mrkdwn"
    assert header["text"]["text"].startswith(":white_check_mark: apg run ")
    with Store(db_url(tmp_path)) as store:
        personas = store.personas()
    lines = listed["text"]["text"].splitlines()
    assert lines == [
        f"• <https://apg.example.com/personas/{p['persona_id']}|{p['name']}> "
        f"({p['persona_id']}, new)"
        for p in personas
    ]
    assert context["type"] == "context" and "review drafts" in context["elements"][0]["text"]


def test_notify_weak_and_drift_events_from_real_runs(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receivers.append(hook := Receiver())
    config = notify_config(
        tmp_path,
        [{"url": hook.url()}],
        search={
            "kmeans": {"k": [2, 4], "n_init": 2},
            "agglomerative": None,
            "dbscan": None,
            "weak_silhouette": 0.99,
        },
        continuity={"drift_threshold": 0.0001},
    )
    url = db_url(tmp_path)
    assert scheduled_run(str(config), url) == "succeeded"
    write_users(tmp_path / "users.csv", seed=1)
    assert scheduled_run(str(config), url) == "succeeded"
    first, second = hook.bodies
    assert first["event"] == "weak" and first["events"] == ["weak", "succeeded"]
    assert first["weak"] and first["text"].startswith(f"apg run {first['run_id']} found weak")
    assert second["events"][0] == "weak" and "drift" in second["events"]
    moved = second["drift"]["personas"]
    assert moved and all(p["status"] == "changed" and p["drift"] > 0.0001 for p in moved)
    assert second["drift"]["threshold"] == 0.0001


def test_notify_failed_run_sends_failed_with_reason(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receivers.append(hook := Receiver())
    config = notify_config(tmp_path, [{"url": hook.url(), "events": ["failed"]}])
    url = db_url(tmp_path)
    assert scheduled_run(str(config), url) == "succeeded"  # not subscribed: no message
    (tmp_path / "users.csv").write_text("name,score\nann,1\n", encoding="utf-8")
    assert scheduled_run(str(config), url) == "failed"
    (msg,) = hook.bodies
    with Store(url) as store:
        failed = store.runs()[0]
    assert (msg["event"], msg["status"], msg["run_id"]) == ("failed", "failed", failed["id"])
    assert msg["reason"].startswith("SourceError: source #1 (file users.csv): id column")
    assert msg["personas"] == [] and msg["text"].startswith(f"apg run {failed['id']} failed: ")


def test_notify_500_forever_never_fails_the_run_and_no_secret_is_logged_or_stored(
    tmp_path: Path,
    receivers: list[Receiver],
    monkeypatch: pytest.MonkeyPatch,
    root_logging: io.StringIO,
) -> None:
    receivers.append(hook := Receiver([500]))
    monkeypatch.setenv("HOOK_PATH", SECRET_PATH)
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    target = {
        "url": hook.url("/services/${HOOK_PATH}") + "?sig=${HOOK_TOKEN}",
        "headers": {"Authorization": "Bearer ${HOOK_TOKEN}", "X-Custom": "${HOOK_TOKEN}"},
        **fast(),
    }
    config = notify_config(tmp_path, [target])
    url = db_url(tmp_path)
    began = time.monotonic()
    assert scheduled_run(str(config), url) == "succeeded"
    assert time.monotonic() - began < 30
    assert len(hook.received) == 3
    assert hook.received[0].headers["Authorization"] == f"Bearer {TOKEN}"
    (row,) = recorded(url)
    shown = f"{hook.base}/services/***?***"
    assert (row["target"], row["status"], row["attempts"], row["http_status"]) == (
        shown,
        "failed",
        3,
        500,
    )
    assert row["error"] == "HTTP 500 Internal Server Error: receiver error"
    log = root_logging.getvalue()
    assert f"notify[0] {shown}: succeeded not delivered after 3 attempts: HTTP 500" in log
    result = CliRunner().invoke(main, ["runs", "show", "--db", url])
    as_json = CliRunner().invoke(main, ["runs", "show", "--db", url, "--json"])
    assert result.exit_code == as_json.exit_code == 0
    database = (tmp_path / "apg.db").read_bytes()
    for wal in tmp_path.glob("apg.db-*"):
        database += wal.read_bytes()
    for secret in (SECRET_PATH, TOKEN, "xoxSecretPathToken123"):
        for where in (log, result.output, as_json.output, database.decode("latin-1")):
            assert secret not in where
