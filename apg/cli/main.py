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

from apg.config import (
    load_config,
)
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
    if out.parent.exists() and not out.parent.is_dir():
        raise ConfigError(f"--out {str(out)!r}: {str(out.parent)!r} is a file, not a folder")
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
    from apg.cli.run import run
    from apg.cli.store import COMMANDS

    for command in [run, *COMMANDS, review]:
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
    from apg.cli.notify import COMMANDS as NOTIFY_COMMANDS

    for command in [*DAEMON_COMMANDS, *NOTIFY_COMMANDS]:
        main.add_command(command)


_register_daemon_commands()


def entrypoint() -> None:
    main(prog_name="apg")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entrypoint())
