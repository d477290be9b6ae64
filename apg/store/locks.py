"""Locks in the database: one run at a time, one daemon per database, across processes.

A lock is a row of ``apg_locks`` (name ``run`` or ``daemon``) naming its holder: a random
token, pid, host, command, start time and a heartbeat the holder refreshes every
``HEARTBEAT_EVERY`` seconds from a thread. Taking a lock happens inside a write transaction,
which both backends serialise (SQLite ``BEGIN IMMEDIATE``; a PostgreSQL advisory lock in
``Database.write``), so two processes never both see the lock free.

A holder is presumed dead, and its lock taken over, when

* it is on this host and its pid no longer exists (``os.kill(pid, 0)``), or it is this very
  process but the token is not one it holds (a lock left behind after a database error), or
* its heartbeat is older than ``STALE_AFTER`` seconds (any host; this is how a holder on
  another machine, or a reused pid, is detected).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from apg.errors import ApgError, StoreError
from apg.store import schema as t
from apg.store.engine import Database, now

RUN = "run"
DAEMON = "daemon"
HEARTBEAT_EVERY = 10.0  # seconds between heartbeats
STALE_AFTER = 120.0  # seconds without a heartbeat after which a holder is presumed dead
HOST = socket.gethostname()

log = logging.getLogger("apg.lock")
_held: set[str] = set()  # tokens this process holds right now
_held_lock = threading.Lock()


def new_token() -> str:
    return secrets.token_hex(8)


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def age_seconds(stamp: str | None, at: datetime | None = None) -> float | None:
    """Seconds since an ISO time stamp written by :func:`apg.store.engine.now`."""
    if not stamp:
        return None
    return ((at or datetime.now(UTC)) - parse_time(stamp)).total_seconds()


def when(stamp: str | None) -> str:
    """``2024-05-06 03:00:00 UTC`` for messages."""
    return f"{stamp[:19].replace('T', ' ')} UTC" if stamp else "an unknown time"


@dataclass(frozen=True)
class Holder:
    name: str
    token: str
    run_id: str | None
    pid: int
    host: str
    command: str
    started_at: str
    heartbeat_at: str
    detail: dict[str, Any] | None = None

    def describe(self) -> str:
        """``run run-… by pid 1234 on host x since 2024-05-06 03:00:00 UTC``"""
        what = f"run {self.run_id} " if self.run_id else ""
        return f"{what}by pid {self.pid} on host {self.host} since {when(self.started_at)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "pid": self.pid,
            "host": self.host,
            "command": self.command,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "heartbeat_age": age_seconds(self.heartbeat_at),
            "detail": self.detail,
        }


class LockHeld(ApgError):
    """Another live process holds the lock."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        if holder.name == RUN:
            message = f"another run is in progress: {holder.describe()}; wait for it or use --wait"
        else:
            age = age_seconds(holder.heartbeat_at) or 0.0
            message = (
                f"another apg daemon uses this database: pid {holder.pid} on host "
                f"{holder.host} since {when(holder.started_at)} (heartbeat {age:.0f}s ago); "
                "stop it first, or give this one another --db"
            )
        super().__init__(message)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def dead_reason(holder: Holder, stale_after: float = STALE_AFTER) -> str | None:
    """Why ``holder`` is presumed dead, or None while it looks alive."""
    if holder.host == HOST:
        if holder.pid == os.getpid():
            with _held_lock:
                if holder.token in _held:
                    return None
            return f"pid {holder.pid} on host {holder.host} (this process) no longer holds it"
        if not pid_alive(holder.pid):
            return f"pid {holder.pid} on host {holder.host} is gone (killed or crashed)"
    age = age_seconds(holder.heartbeat_at)
    if age is not None and age > stale_after:
        return f"pid {holder.pid} on host {holder.host} sent no heartbeat for {age:.0f}s"
    return None


def _holder(row: sa.Row[Any]) -> Holder:
    m = row._mapping
    return Holder(
        name=m["name"],
        token=m["token"],
        run_id=m["run_id"],
        pid=int(m["pid"]),
        host=m["host"],
        command=m["command"],
        started_at=m["started_at"],
        heartbeat_at=m["heartbeat_at"],
        detail=m["detail"],
    )


def read(conn: sa.Connection, name: str) -> Holder | None:
    row = conn.execute(sa.select(t.locks).where(t.locks.c.name == name)).first()
    return None if row is None else _holder(row)


def acquire(
    conn: sa.Connection,
    name: str,
    *,
    token: str,
    command: str,
    run_id: str | None = None,
    detail: dict[str, Any] | None = None,
    stale_after: float = STALE_AFTER,
) -> tuple[Holder, str] | None:
    """Take the lock inside the caller's write transaction; raise :class:`LockHeld` if a live
    holder has it. Returns ``(stale holder, why)`` when a dead holder's lock was taken over.

    The token counts as held by this process from here on; :func:`forget` it if the
    transaction fails.
    """
    taken_over = None
    holder = read(conn, name)
    if holder is not None:
        why = dead_reason(holder, stale_after)
        if why is None:
            raise LockHeld(holder)
        conn.execute(
            t.locks.delete().where(t.locks.c.name == name, t.locks.c.token == holder.token)
        )
        taken_over = (holder, why)
    stamp = now()
    with _held_lock:
        _held.add(token)
    conn.execute(
        t.locks.insert().values(
            name=name,
            token=token,
            run_id=run_id,
            pid=os.getpid(),
            host=HOST,
            command=command,
            started_at=stamp,
            heartbeat_at=stamp,
            detail=detail,
        )
    )
    return taken_over


def forget(token: str) -> None:
    """This process no longer holds ``token`` (released, or its transaction failed)."""
    with _held_lock:
        _held.discard(token)


def release(conn: sa.Connection, name: str, token: str) -> bool:
    """Delete the lock if ``token`` still holds it; False when it was taken over meanwhile."""
    gone = conn.execute(
        t.locks.delete().where(t.locks.c.name == name, t.locks.c.token == token)
    ).rowcount
    return bool(gone)


def beat(db: Database, name: str, token: str) -> bool:
    """Refresh the heartbeat; False when the lock is no longer ours."""
    with db.write() as conn:
        found = conn.execute(
            t.locks.update()
            .where(t.locks.c.name == name, t.locks.c.token == token)
            .values(heartbeat_at=now())
        ).rowcount
    return bool(found)


class Heartbeat:
    """Refreshes a lock's heartbeat from a thread every ``every`` seconds until stopped.

    ``lost`` is set (and ``on_lost`` called) when the row is gone: another process presumed
    this one dead and took the lock over. Database errors are logged and retried.
    """

    def __init__(
        self,
        db: Database,
        name: str,
        token: str,
        every: float = HEARTBEAT_EVERY,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.db, self.name, self.token, self.every = db, name, token, every
        self.on_lost = on_lost
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"apg-heartbeat-{name}")
        self._thread.daemon = True

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not beat(self.db, self.name, self.token) and not self._stop.is_set():
                    log.error("lost the %s lock: another process took it over", self.name)
                    self.lost.set()
                    if self.on_lost is not None:
                        self.on_lost()
                    return
            except StoreError as exc:
                log.warning("heartbeat of the %s lock failed (will retry): %s", self.name, exc)
