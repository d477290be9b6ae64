"""``apg report`` (report.html of a stored run) and ``apg serve`` (the review pages)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from apg.cli.store import CONTEXT, check_out_file, db_option, open_db
from apg.errors import ApgError


@click.command(context_settings=CONTEXT)
@click.argument("run", default="latest")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="Output HTML file.",
)
@click.option(
    "--as-recorded",
    is_flag=True,
    help="Narratives as the run left them (default: each persona's current narrative: "
    "the latest approved version, else the latest draft).",
)
@db_option
def report(run: str, out: Path, as_recorded: bool, db: str | None) -> None:
    """Write report.html of a stored run (default: the latest) from the database.

    Runs recorded before apg stored report data lack the sample behind the silhouette plot,
    the map and the tree; their report says so and shows everything else.

    \b
    Examples:
      apg report latest --out report.html
      apg report run-20250106-030000-a1b2 --out old.html --as-recorded
    """
    from apg.report.html import render_html
    from apg.store.queries import resolve_run
    from apg.store.reports import load_report

    check_out_file(out, db)
    with open_db(db) as store, store.read() as conn:
        run_id = resolve_run(conn, run)
        loaded = load_report(conn, run_id, as_recorded=as_recorded)
    html = render_html(loaded.data)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ApgError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    for note in loaded.missing:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote the report of {run_id} ({len(loaded.data.personas)} personas) to {out}")


@click.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML config: its serve.public_url (https: session cookies are Secure) and storage.url.",
)
@click.option(
    "--public-url",
    default=None,
    metavar="URL",
    help="Where people reach the pages (overrides serve.public_url); https:// makes the "
    "session cookie Secure.",
)
@click.option(
    "--trust-proxy",
    default=None,
    metavar="ADDRESSES",
    help="Reverse proxies (comma-separated addresses or networks, e.g. 127.0.0.1) whose "
    "X-Forwarded-For/-Proto headers give the client's address and scheme. Default: none.",
)
@db_option
def serve(
    host: str,
    port: int,
    config_path: Path | None,
    public_url: str | None,
    trust_proxy: str | None,
    db: str | None,
) -> None:
    """Serve the review pages: runs, reports, personas; approve, reject and edit.

    Listens on 127.0.0.1 only, unless APG_REVIEW_TOKEN is set (16+ non-space characters): then
    any --host is allowed and every page asks for the token (log-in form, or
    `Authorization: Bearer TOKEN`). Wrong tokens are throttled per client address; behind a
    TLS proxy, name it with --trust-proxy so each client is counted on its own.

    \b
    Examples:
      apg serve --db apg.db
      APG_REVIEW_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \\
        apg serve --host 0.0.0.0 --port 8080
      apg serve --trust-proxy 127.0.0.1 --public-url https://apg.example.com
    """
    import uvicorn

    from apg.store import open_store
    from apg.web import create_app
    from apg.web.security import TOKEN_ENV, Proxies, check_bind, check_token, is_loopback

    token = check_token(os.environ.get(TOKEN_ENV) or None)
    check_bind(host, token)
    Proxies.parse(trust_proxy)  # a typo is an error before the store is opened
    config_url = None
    if config_path is not None:
        from apg.config import load_config

        config = load_config(config_path)
        public_url = public_url or config.serve.public_url
        config_url = config.storage.url
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise ApgError(f"--public-url {public_url!r} must start with http:// or https://")
    # --db, then $APG_DATABASE_URL, then the config's storage.url; serve never creates one.
    store = open_store(db, config_url, create=False)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"apg review pages for {store.display_url}: http://{shown}:{port}/", err=True)
    if token is not None:
        click.echo(f"log in with the token in {TOKEN_ENV}", err=True)
        if not is_loopback(host):
            click.echo(
                "warning: plain HTTP: put a TLS proxy in front before using it over a network",
                err=True,
            )
    try:
        uvicorn.run(
            create_app(store, token=token, public_url=public_url, trust_proxy=trust_proxy),
            host=host,
            port=port,
            log_level="warning",
            server_header=False,
            proxy_headers=False,
        )
    finally:
        store.close()


COMMANDS = [report, serve]
