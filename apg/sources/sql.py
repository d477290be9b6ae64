"""SQL databases through SQLAlchemy: a whole table or the rows of a query.

Any SQLAlchemy URL works when its driver is installed; SQLite (built in) and PostgreSQL
(``postgresql+psycopg://``, ``pip install 'psycopg[binary]'``) are tested. Credentials come in
through ``${ENV_VAR}`` interpolation and are masked in every message this module produces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import pandas as pd
import sqlalchemy as sa
from pydantic import Field, model_validator
from sqlalchemy.engine import URL, Connection, Engine, make_url

from apg.sources.base import SourceContext, SourceSpec
from apg.sources.masking import mask_secrets

# The pip package that provides the driver a URL names, for the "no driver" message.
_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
    "pyodbc": "pyodbc",
    "oracledb": "oracledb",
    "asyncpg": "asyncpg",
}


class SqlSource(SourceSpec):
    kind: Literal["sql"] = "sql"
    # Any SQLAlchemy URL; a relative SQLite path resolves against the config file's folder.
    url: str
    query: str | None = None
    # A table name, optionally ``schema.table``; read whole (``SELECT *``).
    table: str | None = None
    # Bound parameters for `query` (``:name`` placeholders), never pasted into the SQL text.
    params: dict[str, Any] = Field(default_factory=dict)
    # Seconds to wait for the server to accept a connection (drivers that support it).
    connect_timeout: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _query_or_table(self) -> SqlSource:
        if (self.query is None) == (self.table is None):
            raise ValueError(
                "give exactly one of `query` (an SQL SELECT) or `table` (a table name)"
            )
        if self.params and self.query is None:
            raise ValueError("`params` bind values into `query`; remove it or use `query`")
        return self

    def secret_values(self) -> list[str]:
        try:
            password = make_url(self.url).password
        except Exception:  # an unparseable URL is reported by read(); mask by pattern then
            return []
        return [str(password), unquote(str(password))] if password else []

    def local_paths(self, ctx: SourceContext) -> list[Path]:
        try:
            url = make_url(self.url)
        except (sa.exc.ArgumentError, ValueError):
            return []
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            return []
        path = Path(database).expanduser()
        return [path if path.is_absolute() else ctx.base_dir / path]

    def read(self, ctx: SourceContext) -> pd.DataFrame:
        url = self._url(ctx)
        engine = self._engine(url, ctx)
        try:
            with engine.connect() as conn:
                statement = self._statement(conn, ctx)
                try:
                    result = conn.execute(statement, self.params)
                    columns = list(result.keys())
                    rows = result.fetchall()
                except sa.exc.SQLAlchemyError as exc:
                    what = "query" if self.query is not None else f"reading table {self.table!r}"
                    raise self.error(ctx, f"{what} failed: {_reason(exc)}; check the SQL") from None
        except sa.exc.DBAPIError as exc:
            raise self.error(
                ctx,
                f"cannot connect to {mask_secrets(_render(url))}: {_reason(exc)}; check the "
                "host, port, database name and credentials",
            ) from None
        finally:
            engine.dispose()
        if not rows:
            raise self.error(ctx, f"{self._what()} returned no rows")
        # coerce_float turns DECIMAL/NUMERIC values into floats, as pandas.read_sql does.
        return pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)

    def _what(self) -> str:
        return "the query" if self.query is not None else f"table {self.table!r}"

    def _url(self, ctx: SourceContext) -> URL:
        try:
            url = make_url(self.url)
        except (sa.exc.ArgumentError, ValueError):
            raise self.error(
                ctx,
                f"url {mask_secrets(self.url)!r} is not an SQLAlchemy URL; write it like "
                "'sqlite:///users.db' or 'postgresql+psycopg://user@host:5432/db' (a password goes "
                "after the user as ':${DB_PASSWORD}')",
            ) from None
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:") or database.startswith("file:"):
                raise self.error(
                    ctx, "an in-memory SQLite database holds no data; give a file path"
                )
            path = Path(database).expanduser()
            if not path.is_absolute():
                path = ctx.base_dir / path
            # SQLite would silently create an empty file; a missing file is a wrong path.
            if not path.is_file():
                raise self.error(
                    ctx, f"SQLite database file {str(path)!r} does not exist; check the url"
                )
            url = url.set(database=str(path))
        return url

    def _engine(self, url: URL, ctx: SourceContext) -> Engine:
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
            connect_args["connect_timeout"] = max(1, round(self.connect_timeout))
        elif url.get_backend_name() == "sqlite":
            connect_args["timeout"] = self.connect_timeout
        try:
            return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
        except ModuleNotFoundError as exc:
            package = _DRIVER_PACKAGES.get((exc.name or "").lower(), exc.name)
            raise self.error(
                ctx,
                f"the database driver for {url.drivername!r} is not installed (missing module "
                f"{exc.name!r}); install it with `pip install {package}`",
            ) from None
        except (sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
            raise self.error(
                ctx, f"cannot use url {mask_secrets(_render(url))!r}: {_reason(exc)}"
            ) from None

    def _statement(self, conn: Connection, ctx: SourceContext) -> sa.Executable:
        if self.query is not None:
            return sa.text(self.query)
        assert self.table is not None
        schema, _, name = self.table.rpartition(".")
        inspector = sa.inspect(conn)
        tables = inspector.get_table_names(schema=schema or None)
        views = inspector.get_view_names(schema=schema or None)
        if name not in tables and name not in views:
            where = f" in schema {schema!r}" if schema else ""
            raise self.error(
                ctx,
                f"table {self.table!r} not found{where}; tables are "
                f"{', '.join(repr(t) for t in sorted(tables + views)) or '(none)'}",
            )
        return sa.select(sa.text("*")).select_from(sa.table(name, schema=schema or None))


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    """The driver's own words, on one line, without SQLAlchemy's statement dump and links."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith(("[SQL:", "[parameters:", "(Background"))
    ]
    return " ".join(lines)[:300] or type(exc).__name__
