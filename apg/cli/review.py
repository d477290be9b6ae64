"""``apg review``: approve, reject, edit and history of persona narratives.

Every action takes ``--by NAME`` (default: the login name) and ``--note TEXT``, both recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from apg.cli.store import (
    CONTEXT,
    by_option,
    db_option,
    echo_json,
    json_option,
    open_db,
    table,
    when,
)


@click.group(context_settings=CONTEXT)
def review() -> None:
    """Approve, reject or edit persona narratives; every action records who, when and why."""


def _reviewer(by: str | None) -> str:
    from apg.store.review import default_reviewer

    return by if by is not None else default_reviewer()


@review.command("approve", context_settings=CONTEXT)
@click.argument("persona_id")
@by_option
@click.option("--note", help="Why, for the record.")
@click.option("--version", type=int, help="Version to approve (default: the latest).")
@db_option
def review_approve(
    persona_id: str, by: str | None, note: str | None, version: int | None, db: str | None
) -> None:
    """Approve a persona's draft narrative.

    \b
    Example:
      apg review approve P-3fa9 --by ana --note "checked against the interviews"
    """
    from apg.store.review import approve

    with open_db(db) as store:
        v = approve(store, persona_id, by=_reviewer(by), note=note, version=version)
    click.echo(
        f"approved {v['persona_id']} v{v['version']} ({v['body'].get('name', '')}) "
        f"by {v['reviewed_by']}"
    )


@review.command("reject", context_settings=CONTEXT)
@click.argument("persona_id")
@click.option("--note", required=True, help="Why it is rejected (required).")
@by_option
@click.option("--version", type=int, help="Version to reject (default: the latest).")
@db_option
def review_reject(
    persona_id: str, note: str, by: str | None, version: int | None, db: str | None
) -> None:
    """Reject a persona's draft narrative.

    \b
    Example:
      apg review reject P-3fa9 --note "the quote is invented"
    """
    from apg.store.review import reject

    with open_db(db) as store:
        v = reject(store, persona_id, by=_reviewer(by), note=note, version=version)
    click.echo(f"rejected {v['persona_id']} v{v['version']} by {v['reviewed_by']}")


@review.command("edit", context_settings=CONTEXT)
@click.argument("persona_id")
@click.option("--name", help="New name.")
@click.option("--tagline", help="New tagline.")
@click.option("--summary", help="New summary.")
@click.option("--goal", "goals", multiple=True, help="A goal (repeat; replaces all goals).")
@click.option(
    "--frustration",
    "frustrations",
    multiple=True,
    help="A frustration (repeat; replaces all frustrations).",
)
@click.option("--quote", help="New quote.")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path),
    help="YAML with any of name, tagline, summary, goals, frustrations, quote.",
)
@by_option
@click.option("--note", help="Why, for the record.")
@db_option
def review_edit(
    persona_id: str,
    name: str | None,
    tagline: str | None,
    summary: str | None,
    goals: tuple[str, ...],
    frustrations: tuple[str, ...],
    quote: str | None,
    path: Path | None,
    by: str | None,
    note: str | None,
    db: str | None,
) -> None:
    """Edit a narrative: adds a new draft version authored by you; older versions are kept.

    \b
    Examples:
      apg review edit P-3fa9 --name "Weekend Planner" --goal "Plan trips in one sitting"
      apg review edit P-3fa9 --file persona.yaml --note "wording from the workshop"
    """
    from apg.store.review import edit, load_edit_file

    changes: dict[str, Any] = {}
    if path is not None:
        changes.update(load_edit_file(path))
    given = {
        "name": name,
        "tagline": tagline,
        "summary": summary,
        "quote": quote,
        "goals": list(goals) or None,
        "frustrations": list(frustrations) or None,
    }
    changes.update({k: v for k, v in given.items() if v is not None})
    with open_db(db) as store:
        v = edit(store, persona_id, changes, by=_reviewer(by), note=note)
    click.echo(
        f"{v['persona_id']} v{v['version']} drafted by {v['created_by']}; approve it with "
        f"`apg review approve {v['persona_id']}`"
    )


@review.command("history", context_settings=CONTEXT)
@click.argument("persona_id")
@db_option
@json_option
def review_history(persona_id: str, db: str | None, as_json: bool) -> None:
    """Every version of a persona's narrative and every review action.

    \b
    Example:
      apg review history P-3fa9
    """
    from apg.store.review import events, history

    with open_db(db) as store:
        versions = history(store, persona_id)
    if as_json:
        return echo_json({"versions": versions, "events": events(versions)})
    rows = [["version", "action", "by", "at", "name", "note"]]
    for e in events(versions):
        v = next(x for x in versions if x["version"] == e["version"])
        rows.append(
            [
                f"v{e['version']}",
                e["action"],
                e["by"] or "",
                when(e["at"]),
                v["body"].get("name", ""),
                e["note"] or "",
            ]
        )
    click.echo(table(rows) if versions else "no narrative versions yet")
