"""``apg notify test`` (one line per target, exact) and the notifications in ``apg runs
show`` (real receivers on 127.0.0.1, real runs through the scheduled job, real SQLite)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from notify_helpers import Receiver, db_url, fast, notify_config, receivers

from apg.cli.main import main
from apg.service.scheduler import scheduled_run

__all__ = ["receivers"]  # fixture

SECRET_PATH = "T0SECRET/B0SECRET/xoxSecretPathToken123"
TOKEN = "tok-Very-Secret-4711"


def test_runs_show_lists_the_notifications_of_the_run(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    ok, broken = Receiver(), Receiver([503])
    receivers += [ok, broken]
    config = notify_config(
        tmp_path,
        [{"url": ok.url()}, {"url": broken.url("/a/b"), "format": "slack", **fast(attempts=2)}],
    )
    url = db_url(tmp_path)
    assert scheduled_run(str(config), url) == "succeeded"
    result = CliRunner().invoke(main, ["runs", "show", "--db", url])
    assert result.exit_code == 0, result.output
    tail = result.output.split("\n\n")[-1].splitlines()
    assert [re.split(r"\s{2,}", line) for line in tail] == [
        ["notified", "format", "event", "status", "attempts", "http", "error"],
        [ok.url(), "json", "succeeded", "sent", "1", "200"],
        [
            f"{broken.base}/a/***",
            "slack",
            "succeeded",
            "failed",
            "2",
            "503",
            "HTTP 503 Service Unavailable: receiver error",
        ],
    ]
    doc = json.loads(CliRunner().invoke(main, ["runs", "show", "--db", url, "--json"]).stdout)
    assert [n["status"] for n in doc["notifications"]] == ["sent", "failed"]


# -- apg notify test ---------------------------------------------------------------------------
def test_notify_test_command_prints_one_line_per_target(
    tmp_path: Path, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, broken = Receiver(), Receiver([500])
    receivers += [ok, broken]
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    config = notify_config(
        tmp_path,
        [
            {
                "url": ok.url(),
                "events": ["failed", "succeeded"],
                "headers": {"X-T": "${HOOK_TOKEN}"},
            },
            {"url": broken.url(f"/services/{SECRET_PATH}"), "format": "slack", **fast()},
        ],
    )
    result = CliRunner().invoke(main, ["notify", "test", "--config", str(config)])
    assert result.exit_code == 1
    assert result.stdout == (
        f"notify[0] sent: {ok.url()} (json), HTTP 200, 1 attempt\n"
        f"notify[1] failed: {broken.base}/services/*** (slack), 3 attempts: "
        "HTTP 500 Internal Server Error: receiver error\n"
    )
    assert result.stderr == ("error: 1 of 2 notify targets failed; check their url and headers\n")
    (msg,) = ok.bodies
    assert (msg["event"], msg["status"], msg["run_id"]) == ("test", "test", None)
    assert msg["text"] == "apg notify test: this target receives failed, succeeded messages"
    assert ok.received[0].headers["X-T"] == TOKEN
    slack = broken.bodies[0]
    assert slack["text"].startswith("apg notify test: ") and slack["blocks"]
    assert SECRET_PATH not in result.output


def test_notify_test_command_without_targets_says_what_to_add(tmp_path: Path) -> None:
    config = notify_config(tmp_path, [])
    result = CliRunner().invoke(main, ["notify", "test", "--config", str(config)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {config}: no `notify:` targets to test; add a list of "
        "{url, format, events} (README: Notifications)\n"
    )
