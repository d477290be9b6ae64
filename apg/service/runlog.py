"""Daemon logs: one line per event, carrying the run id; text for people, JSON for shippers.

``setup("text" | "json")`` installs one handler on the root logger. Every line passes through
:func:`apg.sources.masking.mask_secrets` plus the exact secret values registered from the
config (:func:`register_secrets`), so a password in a URL or an API key never reaches a log.
The run id comes from ``extra={"run_id": ...}`` or, in the run's own thread, from
:data:`current_run`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from apg.sources.masking import mask_secrets

current_run: ContextVar[str | None] = ContextVar("apg_run_id", default=None)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
FORMATS = ("text", "json")


def register_secrets(values: list[str]) -> None:
    """Exact values (passwords, API keys from ``${ENV}``) to mask in every log line."""
    with _secrets_lock:
        _secrets.update(v for v in values if v)


def masked(text: str) -> str:
    with _secrets_lock:
        known = list(_secrets)
    return mask_secrets(text, known)


def _run_id(record: logging.LogRecord) -> str | None:
    return getattr(record, "run_id", None) or current_run.get()


def _stamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2024-05-06T03:00:00.123Z INFO run-20240506-030000-ab12 read: 300 rows``"""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += " | " + self.formatException(record.exc_info)
        parts = [_stamp(record), record.levelname, _run_id(record) or "-", message]
        return masked(" ".join(parts)).replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, run_id, message (and error)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _stamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": _run_id(record),
            "message": masked(record.getMessage()),
        }
        event = getattr(record, "event", None)
        if event:
            doc["event"] = event
        if record.exc_info:
            doc["error"] = masked(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def setup(fmt: str = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) in ``fmt``; APScheduler's and httpx's own chatter only from
    warnings."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO; a webhook URL's path may be its secret token.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
