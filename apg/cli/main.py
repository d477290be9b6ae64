"""The ``apg`` command line: click groups of nouns with verb subcommands.

Every ``ApgError`` is printed as ``error: <message>`` with exit code 1 and no traceback;
progress goes to stderr so stdout carries only results.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from apg.config import Config, load_config, parse_config
from apg.errors import ApgError, ConfigError
from apg.version import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ApgGroup(click.Group):
    """Turns user mistakes into one-line errors instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _warnings_to_stderr():
                return super().invoke(ctx)
        except ApgError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        click.echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        # Our own warnings are messages for the user, even under `python -W error`.
        warnings.simplefilter("default")
        warnings.showwarning = show  # type: ignore[assignment]
        yield


@click.group(cls=ApgGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="apg")
def main() -> None:
    """apg: automatic persona generation from user data.

    \b
    Examples:
      apg sample --rows 5000 --out users.csv
      apg run --data users.csv --id user_id --behavioral logins_per_month,purchases_per_year
      apg run --config configs/demo.yaml --out apg-output
    """


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def quick_config(
    data: Path,
    id_column: str,
    behavioral: str | None,
    attitudinal: str | None,
    demographic: str | None,
    sep: str | None,
) -> Config:
    """The config that ``apg run --data ...`` stands for."""
    # A shell passes --sep '\t' as backslash-t; mean the tab the user meant.
    options = {"sep": sep.encode().decode("unicode_escape")} if sep else {}
    raw = {
        "sources": [{"kind": "file", "path": str(data), "options": options}],
        "id_column": id_column,
        "features": {
            "behavioral": _csv(behavioral),
            "attitudinal": _csv(attitudinal),
            "demographic": _csv(demographic),
        },
    }
    return parse_config(raw, "command line", base_dir=Path.cwd())


@main.command(context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="YAML config file (see configs/demo.yaml).",
)
@click.option("--data", type=click.Path(path_type=Path), help="A user table, instead of --config.")
@click.option("--id", "id_column", help="With --data: the id column.")
@click.option("--behavioral", help="With --data: comma-separated behavioral columns.")
@click.option("--attitudinal", help="With --data: comma-separated attitudinal columns.")
@click.option("--demographic", help="With --data: comma-separated demographic columns.")
@click.option("--sep", help="With --data: field separator (default: from the extension).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("apg-output"),
    show_default=True,
    help="Output folder: new, empty, or one apg wrote before (replaced whole, atomically).",
)
@click.option("--seed", type=int, help="Random seed (overrides search.seed).")
@click.option(
    "--llm",
    type=click.Choice(["offline", "openai"]),
    help="Narration client (overrides narration.client).",
)
@click.option("--model", help="LLM model name (overrides narration.model).")
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    help="Fit the candidates on this Dask scheduler (needs apg[dask]).",
)
@click.option(
    "--stream/--no-stream",
    default=None,
    help="Read a Parquet source a column or a batch at a time, never whole (overrides "
    "search.stream; default: when the table would not fit in half the free memory).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option(
    "--db",
    metavar="URL",
    help="Record the run in this database (default: $APG_DATABASE_URL, storage.url, "
    "else apg.db here).",
)
@click.option("--no-store", is_flag=True, help="Do not record the run in a database.")
@click.option(
    "--wait",
    is_flag=True,
    help="If another run (e.g. the daemon's) is in progress, wait for it instead of failing.",
)
def run(
    config_path: Path | None,
    data: Path | None,
    id_column: str | None,
    behavioral: str | None,
    attitudinal: str | None,
    demographic: str | None,
    sep: str | None,
    out: Path,
    seed: int | None,
    llm: str | None,
    model: str | None,
    dask_address: str | None,
    stream: bool | None,
    quiet: bool,
    db: str | None,
    no_store: bool,
    wait: bool,
) -> None:
    """Run the whole pipeline and write personas to --out.

    \b
    Examples:
      apg run --config configs/demo.yaml --out apg-output --seed 1
      apg run --data users.csv --id user_id --behavioral logins_per_month,sessions_per_week \\
              --attitudinal nps --demographic age,country
    """
    from apg.pipeline import run as run_pipeline
    from apg.report.folder import check_output_folder
    from apg.report.outputs import write_outputs

    if config_path and data:
        raise ConfigError("give either --config FILE or --data FILE, not both")
    if config_path:
        quick = {
            "--id": id_column,
            "--behavioral": behavioral,
            "--attitudinal": attitudinal,
            "--demographic": demographic,
            "--sep": sep,
        }
        given = [k for k, v in quick.items() if v]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ConfigError(f"{', '.join(given)} {verb} only with --data; set it in the config")
        config = load_config(config_path)
    elif data:
        if not id_column:
            raise ConfigError("--data needs --id COLUMN naming the user id column")
        if not behavioral and not attitudinal:
            raise ConfigError("--data needs --behavioral and/or --attitudinal columns to cluster")
        config = quick_config(data, id_column, behavioral, attitudinal, demographic, sep)
    else:
        raise ConfigError("give --config FILE or --data FILE (see apg run --help)")
    if seed is not None:
        config.search.seed = seed
    if llm:
        config.narration.client = llm  # type: ignore[assignment]
    if model:
        config.narration.model = model
    if dask_address:
        config.search.backend = "dask"
        config.search.dask_address = dask_address
    if stream is not None:
        config.search.stream = "on" if stream else "off"

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(msg, err=True)

    if no_store and db:
        raise ConfigError("--db and --no-store contradict each other; give one")
    if no_store and wait:
        raise ConfigError("--wait waits for the database's run lock; it needs the store")
    # Checked before the run: a folder apg may not replace costs nothing to refuse now.
    protected = run_inputs(config, config_path, None if no_store else (db, config.storage.url))
    check_output_folder(out, protected)
    if no_store:
        result = run_pipeline(config, progress=progress)
        write_outputs(result, out, protected=protected)
        click.echo(summary_text(result, out))
        return
    from apg.cli.store import continuity_text
    from apg.store import open_store
    from apg.store.locks import LockHeld
    from apg.store.runner import judge, run_with_store

    def waiting(exc: LockHeld) -> None:
        click.echo(f"waiting for {exc.holder.describe()} to finish", err=True)

    with open_store(db, config.storage.url) as store:
        stored = run_with_store(config, store, progress=progress, wait=wait, on_wait=waiting)
    write_outputs(stored.result, out, protected=protected)
    click.echo(summary_text(stored.result, out))
    click.echo(continuity_text(stored.plan, store.display_url))
    status, reason = judge(stored.plan)
    if status == "degraded":
        click.echo(f"warning: recorded as degraded: {reason}", err=True)


def run_inputs(
    config: Config, config_path: Path | None, store: tuple[str | None, str | None] | None
) -> list[Path]:
    """The files a run reads or writes besides its output: its config, every local source file
    and its SQLite store (``store`` is ``(--db, storage.url)``, None without a store)."""
    from apg.sources import SourceContext
    from apg.store.engine import resolve_url, sqlite_path

    paths = [config_path] if config_path else []
    for position, spec in enumerate(config.sources, 1):
        ctx = SourceContext(base_dir=config.base_dir, id_column=config.id_column, position=position)
        paths += spec.local_paths(ctx)
    database = sqlite_path(resolve_url(*store)) if store else None
    return [*paths, database] if database else paths


def summary_text(result: Any, folder: Path) -> str:
    w = result.search.winner
    eligible = sum(c.eligible for c in result.search.candidates)
    lines = [
        f"run {result.run_id}: {len(result.labels):,} users, "
        f"{len(result.search.candidates)} candidates ({eligible} eligible)",
        f"chosen: {w.key}, silhouette {w.silhouette:.3f}, elbow k={result.search.elbow_k}",
        "",
    ]
    rows = [("persona", "size", "share", "name")]
    rows += [
        (p.persona_id, f"{p.size:,}", f"{p.share:.1%}", p.narrative.name if p.narrative else "")
        for p in result.personas
    ]
    if result.outliers.size:
        rows.append(("outliers", f"{result.outliers.size:,}", f"{result.outliers.share:.1%}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append(
            f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
        )
    lines += ["", f"results: {folder}"]
    return "\n".join(lines)


@main.command(context_settings=CONTEXT)
@click.option("--rows", type=int, default=5000, show_default=True, help="Number of users.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output file: .csv, .tsv, .parquet or .jsonl.",
)
def sample(rows: int, seed: int, out: Path) -> None:
    """Write a synthetic user table with planted segments.

    \b
    Example:
      apg sample --rows 5000 --seed 0 --out users.csv
    """
    from apg.sources.sample import write_sample

    if rows < 1:
        raise ConfigError(f"--rows must be at least 1, got {rows}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_sample(out, rows=rows, seed=seed)
    except ValueError as exc:
        raise ConfigError(f"--out {str(out)!r}: {exc}") from None
    except OSError as exc:
        raise ApgError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    click.echo(f"wrote {rows:,} users to {out}")


def _register_store_commands() -> None:
    from apg.cli.review import review
    from apg.cli.store import COMMANDS

    for command in [*COMMANDS, review]:
        main.add_command(command)


_register_store_commands()


@main.group(context_settings=CONTEXT)
def sources() -> None:
    """Inspect the configured data sources."""


@sources.command("check", context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="YAML config file.",
)
def sources_check(config_path: Path) -> None:
    """Read every source and print rows, columns, types, missing shares and the fingerprint,
    without clustering.

    \b
    Example:
      apg sources check --config configs/events.yaml
    """
    from apg.sources.check import check_sources

    config = load_config(config_path)
    report = check_sources(config.sources, config.base_dir, config.id_column)
    click.echo(report, nl=False)


def _register_web_commands() -> None:
    from apg.cli.web import COMMANDS as WEB_COMMANDS

    for command in WEB_COMMANDS:
        main.add_command(command)


_register_web_commands()


def _register_daemon_commands() -> None:
    from apg.cli.daemon import COMMANDS as DAEMON_COMMANDS

    for command in DAEMON_COMMANDS:
        main.add_command(command)


_register_daemon_commands()


def entrypoint() -> None:
    main(prog_name="apg")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entrypoint())
