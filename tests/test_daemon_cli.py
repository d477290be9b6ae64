"""``apg daemon`` start-up errors and help, and its log lines (text and JSON)."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from daemon_helpers import write_config, write_users

from apg.cli.main import main
from apg.service import runlog
from apg.store import Store, locks
from apg.store.locks import HOST


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``apg daemon`` configures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    write_users(tmp_path / "users.csv")
    return write_config(tmp_path / "daemon.yaml", {"kind": "file", "path": "users.csv"})


def _daemon(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["daemon", *args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize("command", [["daemon"], ["status"]])
def test_daemon_cli_commands_have_help_with_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout and "--db URL" in result.stdout
    if command == ["daemon"]:
        for option in ("--interval SECONDS", "--run-now", "--cron TEXT", "--log-format"):
            assert option in result.stdout
    else:
        assert "--json" in result.stdout


def test_daemon_cli_refuses_bad_schedule_before_starting(config: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'apg.db'}"
    code, err = _daemon("--config", str(config), "--db", url, "--cron", "0 3 * * 1")
    assert code == 1
    assert err.startswith("error: --cron: '0 3 * * 1': write the day of week with names")
    code, err = _daemon("--config", str(tmp_path / "nope.yaml"), "--db", url)
    assert (code, err) == (
        1,
        f"error: config file {str(tmp_path / 'nope.yaml')!r} does not exist; "
        "pass an existing --config FILE\n",
    )
    code, err = _daemon("--config", str(config), "--db", url, "--interval", "0")
    assert code == 2 and "--interval" in err
    assert not (tmp_path / "apg.db").exists()  # nothing was started


def test_daemon_cli_refuses_a_second_daemon_on_the_same_database(
    config: Path, tmp_path: Path, root_logging: None
) -> None:
    url = f"sqlite:///{tmp_path / 'apg.db'}"
    token = locks.new_token()
    with Store(url) as store, store.write() as conn:
        locks.acquire(conn, locks.DAEMON, token=token, command="apg daemon")
    try:
        code, err = _daemon("--config", str(config), "--db", url)
    finally:
        locks.forget(token)
    assert code == 1
    assert err.startswith(
        f"error: another apg daemon uses this database: pid {os.getpid()} on host {HOST} since "
    )
    assert err.endswith(" (heartbeat 0s ago); stop it first, or give this one another --db\n")


def _line(fmt: str, message: str, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(runlog.JsonFormatter() if fmt == "json" else runlog.TextFormatter())
    logger = logging.getLogger(f"apg.test.{fmt}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.warning(message, *args, extra=extra)
    return stream.getvalue()


def test_daemon_log_text_is_one_line_with_time_level_run_id_and_no_secrets() -> None:
    runlog.register_secrets(["tok-1234567890"])
    line = _line(
        "text",
        "read %s failed:\nheader Bearer %s",
        "postgresql://reader:pw12345@db/app",
        "tok-1234567890",
        run_id="run-20240506-030000-ab12",
    )
    stamp, level, run_id, message = line.split(" ", 3)
    assert stamp.endswith("Z") and len(stamp) == len("2024-05-06T03:00:00.000Z")
    assert (level, run_id) == ("WARNING", "run-20240506-030000-ab12")
    assert message == "read postgresql://reader:***@db/app failed: | header Bearer ***\n"


def test_daemon_log_json_has_fields_and_takes_run_id_from_the_run_context() -> None:
    token = runlog.current_run.set("run-20240506-030000-ab12")
    try:
        doc = json.loads(_line("json", "run %s", "succeeded", event="run-finished"))
    finally:
        runlog.current_run.reset(token)
    assert set(doc) == {"time", "level", "logger", "run_id", "message", "event"}
    assert (doc["level"], doc["run_id"], doc["message"]) == (
        "warning",
        "run-20240506-030000-ab12",
        "run succeeded",
    )
    assert json.loads(_line("json", "idle"))["run_id"] is None
