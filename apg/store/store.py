"""The :class:`Store`: a database with the queries the CLI, scheduler and web pages need."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import UTC, datetime
from itertools import count
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from apg.config import Config
from apg.errors import StoreError
from apg.profiles.identity import Plan, PreviousRun
from apg.search.model_io import StoredModel
from apg.store import queries, record, runstate
from apg.store import schema as tables
from apg.store.engine import Database, now, resolve_url

if TYPE_CHECKING:
    from apg.pipeline import RunResult


class Store(Database):
    """A :class:`Database` with the queries the CLI, scheduler and web pages need."""

    def new_run_id(self, config: Config | None = None) -> str:
        """``run-YYYYMMDD-HHMMSS-xxxx``: UTC start time and 4 hex digits, unused so far.

        The digits are random, except with ``SOURCE_DATE_EPOCH`` set (reproducible runs): then
        the time is that epoch and the digits come from the config, so the same config gives
        the same run id in a fresh database.
        """
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        settings = (
            ""
            if config is None
            else json.dumps(config.model_dump(mode="json", exclude={"base_dir"}), sort_keys=True)
        )
        with self.read() as conn:
            for attempt in count():
                if epoch:
                    stamp = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y%m%d-%H%M%S")
                    digest = hashlib.sha256(f"{settings}:{attempt}".encode()).hexdigest()[:4]
                else:
                    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
                    digest = secrets.token_hex(2)
                run_id = f"run-{stamp}-{digest}"
                found = conn.execute(
                    sa.select(tables.runs.c.id).where(tables.runs.c.id == run_id)
                ).first()
                if found is None:
                    return run_id
        raise AssertionError("unreachable")  # pragma: no cover

    def previous(self) -> tuple[PreviousRun | None, set[str]]:
        """The run to match against and every persona id in use."""
        with self.read() as conn:
            return queries.load_previous(conn), queries.taken_persona_ids(conn)

    def record_run(self, result: RunResult, plan: Plan, *, started_at: str) -> None:
        """Write the whole run in one transaction."""
        try:
            with self.write() as conn:
                record.record_run(conn, result, plan, started_at=started_at, finished_at=now())
        except sa.exc.IntegrityError as exc:
            raise StoreError(
                f"run {result.run_id} could not be recorded: {str(exc.orig).splitlines()[0]}; "
                "nothing of it was written"
            ) from None

    def record_failure(self, run_id: str, config: Config, error: str, *, started_at: str) -> None:
        with self.write() as conn:
            record.record_failure(conn, run_id, started_at, now(), config, error)

    def fail_recorded(self, run_id: str, reason: str) -> None:
        """Turn a recorded run ``failed`` after the fact: the command that made it failed
        afterwards (its output folder could not be written). Its personas stay recorded."""
        with self.write() as conn:
            conn.execute(
                tables.runs.update()
                .where(tables.runs.c.id == run_id)
                .values(status="failed", reason=reason[:4000], error=reason[:4000])
            )

    # -- reads -------------------------------------------------------------------------------
    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self.read() as conn:
            return _presumed(conn, queries.list_runs(conn, limit))

    def run(self, ref: str | None = None) -> dict[str, Any]:
        with self.read() as conn:
            return _presumed(conn, [queries.run_detail(conn, queries.resolve_run(conn, ref))])[0]

    def personas(self, run: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        with self.read() as conn:
            return queries.list_personas(conn, queries.resolve_run(conn, run), status)

    def persona(self, ref: str) -> dict[str, Any]:
        with self.read() as conn:
            return queries.persona_detail(conn, queries.resolve_persona(conn, ref))

    def model(self, run: str | None = None) -> tuple[str, StoredModel, dict[int, str], str]:
        """``(run_id, model, cluster -> persona id, id column)`` of a run (default: latest)."""
        with self.read() as conn:
            run_id = queries.resolve_run(conn, run)
            return (run_id, *queries.load_model(conn, run_id))


def _presumed(conn: sa.Connection, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``runs`` with each ``running`` run whose process is gone shown ``interrupted``: a reader
    never shows a dead run as running, though only a writer records the change."""
    if any(run.get("status") == "running" for run in runs):
        dead = runstate.dead_runs(conn)
        for run in runs:
            if run["id"] in dead and run.get("status") == "running":
                run["status"] = "interrupted"
                run["reason"] = f"{dead[run['id']]} (not yet recorded)"
    return runs


def open_store(
    option: str | None = None, config_url: str | None = None, *, create: bool = True
) -> Store:
    """Open (and migrate) the database named by ``--db``, the environment or the config."""
    return Store(resolve_url(option, config_url), create=create)
