"""``apg daemon`` (scheduled runs, unattended) and ``apg status`` (is it alive, what ran)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from apg.cli.store import db_option, json_option, open_db, table, when

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command(context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="YAML config file; re-read at every run (see configs/daemon.yaml).",
)
@click.option(
    "--db",
    metavar="URL",
    help="Database for runs, locks and the job store (default: $APG_DATABASE_URL, "
    "storage.url, else apg.db here).",
)
@click.option(
    "--cron", metavar="TEXT", help="Crontab text with day names (overrides schedule.cron)."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Run every SECONDS instead of the cron schedule (for trials and tests).",
)
@click.option("--run-now", is_flag=True, help="Start with one run, then follow the schedule.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines on stderr: text for people, one JSON object per line for log shippers.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1, max=60),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How often the daemon and its run refresh their heartbeat (a holder silent for "
    "120 s is presumed dead).",
)
def daemon(
    config_path: Path,
    db: str | None,
    cron: str | None,
    interval: float | None,
    run_now: bool,
    log_format: str,
    log_level: str,
    heartbeat: float,
) -> None:
    """Regenerate personas on a schedule, unattended (stop with SIGTERM or Ctrl-C).

    Each run re-reads every source; unchanged data is recorded as `unchanged` without
    clustering (unless schedule.always_run). Failed runs are retried per schedule.retry.
    One run at a time with `apg run`; `apg status` shows what it is doing.

    \b
    Examples:
      apg daemon --config configs/daemon.yaml
      apg daemon --config configs/daemon.yaml --cron '30 2 * * mon-fri' --log-format json
      apg daemon --config configs/daemon.yaml --interval 60 --run-now
    """
    from apg.service import runlog
    from apg.service.daemon import Daemon, Options

    options = Options(
        config_path=config_path,
        db=db,
        cron=cron,
        interval=interval,
        run_now=run_now,
        heartbeat=heartbeat,
    )
    runner = Daemon(options)  # config, schedule and database errors end here, before logging
    runlog.setup(log_format, log_level)
    code = runner.run()
    if code:
        raise SystemExit(code)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 60 else _span(value)


def status_text(doc: dict[str, Any]) -> str:
    d = doc["daemon"]
    if d["state"] == "running":
        head = (
            f"daemon: running, pid {d['pid']} on host {d['host']}, heartbeat "
            f"{_ago(d['heartbeat_age'])}, since {when(d['started_at'])} UTC"
        )
    elif d["state"] == "dead":
        head = f"daemon: not running ({d['reason']}; last heartbeat {_ago(d['heartbeat_age'])})"
    else:
        head = "daemon: not running"
    lines = [head]
    if doc["schedule"]:
        lines.append(f"schedule: {doc['schedule']}")
    now = datetime.now(UTC)
    for fire in doc["next_runs"]:
        at = datetime.fromisoformat(fire["at"].replace("Z", "+00:00"))
        delta = (at - now).total_seconds()
        rel = f"in {_span(delta)}" if delta >= 0 else f"due {_span(delta)} ago"
        lines.append(f"next {fire['job']} run: {when(fire['at'])} UTC ({rel})")
    if not doc["next_runs"]:
        lines.append("next run: none scheduled (start `apg daemon`)")
    cur = doc["current_run"]
    if cur is not None:
        lines.append(
            f"in progress: {cur['run_id']} by pid {cur['pid']} on host {cur['host']} "
            f"({cur['command']}), since {when(cur['started_at'])} UTC"
        )
    for m in doc["marked_interrupted"]:
        lines.append(f"marked {m['run_id']} {m['reason']}")
    lines.append("")
    if not doc["runs"]:
        lines.append("no runs yet")
        return "\n".join(lines)
    rows = [["run", "status", "trigger", "started", "duration", "personas", "reason"]]
    for r in doc["runs"]:
        trigger = r["trigger"] or ""
        if r["attempt"]:
            trigger += f" {r['attempt']}"
        rows.append(
            [
                r["id"],
                r["status"] + (", weak" if r.get("weak") else ""),
                trigger,
                when(r["started_at"]),
                _seconds(r["seconds"]),
                "" if r["personas"] is None else str(r["personas"]),
                _one_line(r["reason"]),
            ]
        )
    lines.append(table(rows, right={4, 5}))
    return "\n".join(lines)


def _one_line(text: str | None, width: int = 100) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@click.command(context_settings=CONTEXT)
@db_option
@click.option("--limit", type=int, default=10, show_default=True, help="Last runs to show.")
@json_option
def status(db: str | None, limit: int, as_json: bool) -> None:
    """Is a daemon alive, what runs now, the last runs and the next fire time.

    Runs whose process died (kill -9, a crash) are marked `interrupted` on the way.

    \b
    Examples:
      apg status
      apg status --db postgresql+psycopg://apg@db/apg --json
    """
    from apg.store.status import status as gather

    with open_db(db) as store:
        doc = gather(store, limit)
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    click.echo(status_text(doc))


COMMANDS = [daemon, status]
