"""``apg notify test``: send a test message to every ``notify:`` target of a config."""

from __future__ import annotations

from pathlib import Path

import click

from apg.errors import ApgError, ConfigError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
def notify() -> None:
    """Webhook notifications sent by `apg daemon` after each run."""


@notify.command("test", context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="YAML config file with a `notify:` list.",
)
def notify_test(config_path: Path) -> None:
    """Post a test message (event `test`) to every target and print one line per target.

    URLs are printed masked (scheme, host and first path segment); exits 1 when a target
    could not be reached.

    \b
    Example:
      SLACK_HOOK=T000/B000/XXXX apg notify test --config configs/daemon.yaml
    """
    from apg.config import load_config
    from apg.service.notify import send_test

    config = load_config(config_path)
    if not config.notify:
        raise ConfigError(
            f"{config_path}: no `notify:` targets to test; add a list of {{url, format, events}} "
            "(README: Notifications)"
        )
    deliveries = send_test(config)
    for i, d in enumerate(deliveries):
        tries = f"{d.attempts} attempt{'s' * (d.attempts != 1)}"
        if d.status == "sent":
            click.echo(f"notify[{i}] sent: {d.target} ({d.format}), HTTP {d.http_status}, {tries}")
        else:
            click.echo(f"notify[{i}] failed: {d.target} ({d.format}), {tries}: {d.error}")
    failed = sum(d.status != "sent" for d in deliveries)
    if failed:
        raise ApgError(
            f"{failed} of {len(deliveries)} notify targets failed; check their url and headers"
        )


COMMANDS = [notify]
