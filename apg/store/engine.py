"""Open a database: resolve its URL, make the engine, apply pending migrations.

SQLite (the default, ``sqlite:///apg.db`` in the working folder) runs in WAL mode with a busy
timeout, so a scheduled run and a reviewer's command can use one file at once: readers never
wait, and a writer waits up to ``BUSY_TIMEOUT`` seconds for another writer. Write transactions
start with ``BEGIN IMMEDIATE`` so they queue for the write lock up front instead of failing
half-way. PostgreSQL (``postgresql+psycopg://...``) is supported too; there, writers take
a transaction-scoped advisory lock so they queue the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event

from apg.errors import StoreError
from apg.sources.masking import mask_url
from apg.store.migrations import LATEST, current_version, migrate

DEFAULT_URL = "sqlite:///apg.db"
ENV_URL = "APG_DATABASE_URL"
BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for another writer
_PG_WRITE_LOCK = 0x617067  # first key of the PostgreSQL advisory lock taken by writers


def resolve_url(option: str | None = None, config_url: str | None = None) -> str:
    """``--db``, then ``APG_DATABASE_URL``, then config ``storage.url``, then ``apg.db``.

    A value without ``://`` is a SQLite file path.
    """
    url = option or os.environ.get(ENV_URL) or config_url or DEFAULT_URL
    return url if "://" in url else f"sqlite:///{url}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases, memory, or a bad URL)."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return Path(database).expanduser()


def now() -> str:
    """The current UTC time as sortable ISO-8601 text with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _sqlite_engine(url: sa.URL, *, create: bool) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN (the driver's own transaction
        # handling would defer it and commit before DDL).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # WAL persists in the file: only a command that may create the database sets it, so
        # one that reads never changes another application's file.
        if create and url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("apg_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Database:
    """An engine with read and write transactions; migrated to the latest schema on open.

    ``create=False`` refuses to create a missing SQLite file (for commands that only read or
    review: a typo in ``--db`` should not silently make an empty database).
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.display_url = mask_url(url)
        try:
            parsed = sa.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise StoreError(
                f"database URL {self.display_url!r} is not valid; use e.g. sqlite:///apg.db "
                "or postgresql+psycopg://user:password@host/db"
            ) from None
        self.dialect = parsed.get_backend_name()
        try:
            if self.dialect == "sqlite":
                path = parsed.database or ""
                if path and path != ":memory:" and not Path(path).exists():
                    if not create:
                        raise StoreError(
                            f"no database at {path!r} ({self.display_url}); run `apg run` first, "
                            "or pass --db URL / set APG_DATABASE_URL"
                        )
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                self.engine = _sqlite_engine(parsed, create=create)
            else:
                self.engine = sa.create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise StoreError(
                f"the database driver {exc.name!r} for {self.display_url} is not installed; "
                "for PostgreSQL: pip install 'apg[postgres]'"
            ) from None
        except sa.exc.NoSuchModuleError:
            raise StoreError(
                f"unsupported database {self.display_url!r}; use sqlite:/// or postgresql+psycopg://"
            ) from None
        self.create = create
        try:
            self.schema_version = self._open()
        except BaseException:
            self.engine.dispose()
            raise

    def _open(self) -> int:
        with self.read() as conn:
            version = current_version(conn)
            others = sorted(sa.inspect(conn).get_table_names()) if version == 0 else []
        if version == 0 and not self.create:
            # Commands that only read or review never turn a file into an apg database.
            raise StoreError(
                f"{self.display_url} is not an apg database (it holds tables "
                f"{', '.join(others[:5])}); point --db at the database `apg run` records to"
                if others
                else f"{self.display_url} holds no apg runs yet; record one with `apg run`"
            )
        if version != LATEST:
            with self.write() as conn:
                migrate(conn)
                version = current_version(conn)
        return version

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction (a consistent snapshot on both backends)."""
        with self._errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction: everything in it is committed together or not at all."""
        with self._errors(), self.engine.connect() as conn:
            conn.execution_options(apg_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    # One apg writer per schema at a time, as SQLite's write lock gives:
                    # version numbers (max + 1) and run records never race.
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(current_schema()))"),
                        {"k": _PG_WRITE_LOCK},
                    )
                yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.OperationalError as exc:
            raise StoreError(f"database {self.display_url}: {_short(exc)}") from None
        except sa.exc.DatabaseError as exc:
            # A corrupt, truncated or foreign file: sqlite says "file is not a database".
            raise StoreError(
                f"database {self.display_url}: {_short(exc)}; it is damaged or not a database. "
                "Check --db, or restore the file from a backup"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip().splitlines() if exc.orig is not None else []
    return mask_url(text[0] if text else type(exc).__name__)[:300]
