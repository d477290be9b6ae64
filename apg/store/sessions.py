"""Logged-in review-page sessions, kept in the database so that logging out ends them.

The session cookie is signed, but a signed cookie alone stays valid until it expires: a copy
saved before ``POST /logout`` would still work. So each log-in gets a random session id,
whose SHA-256 is stored here with an expiry time; a page is served only while that row exists.
Logging out deletes it. Being in the store, a session survives a restart of ``apg serve`` and
is seen by every worker. Only the hash is stored, so a copy of the database logs no one in.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from apg.store import schema as t
from apg.store.engine import Database

ID_BYTES = 32  # random bytes of a session id (43 URL-safe characters)


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _stamp(at: datetime) -> str:
    """The store's time format (``apg.store.engine.now``), so text comparison orders times."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def start(db: Database, age: float, *, at: datetime | None = None) -> str:
    """A new session id valid for ``age`` seconds; expired sessions are deleted meanwhile."""
    at = at or datetime.now(UTC)
    session_id = secrets.token_urlsafe(ID_BYTES)
    with db.write() as conn:
        conn.execute(t.web_sessions.delete().where(t.web_sessions.c.expires_at <= _stamp(at)))
        conn.execute(
            t.web_sessions.insert().values(
                id=_key(session_id),
                created_at=_stamp(at),
                expires_at=_stamp(at + timedelta(seconds=age)),
            )
        )
    return session_id


def alive(db: Database, session_id: str, *, at: datetime | None = None) -> bool:
    """Whether ``session_id`` was started, has not ended and has not expired."""
    at = at or datetime.now(UTC)
    with db.read() as conn:
        found = conn.execute(
            sa.select(t.web_sessions.c.id).where(
                t.web_sessions.c.id == _key(session_id),
                t.web_sessions.c.expires_at > _stamp(at),
            )
        ).first()
    return found is not None


def end(db: Database, session_id: str) -> bool:
    """End one session (log out); False if it had already ended or expired."""
    with db.write() as conn:
        done = conn.execute(t.web_sessions.delete().where(t.web_sessions.c.id == _key(session_id)))
    return bool(done.rowcount)
