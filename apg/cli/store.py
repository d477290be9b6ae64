"""``apg runs``, ``apg personas``, ``apg export`` and ``apg assign`` (``apg review``: cli_review).

Every command takes ``--db URL`` (else ``APG_DATABASE_URL``, else ``sqlite:///apg.db``); list
and show commands print tables for people and JSON with ``--json``. Commands that only read or
review never create a database: a mistyped ``--db`` is an error, not a new empty file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from apg.errors import ApgError, ConfigError
from apg.profiles.confidence import Confidence, confidence_text
from apg.profiles.outcomes import OutcomeStat, outcome_summary

if TYPE_CHECKING:
    from apg.profiles.identity import Plan
    from apg.store import Store

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
STATUSES = ("draft", "approved", "rejected")

db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    help="Database URL or SQLite file (default: $APG_DATABASE_URL or apg.db).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON.")
by_option = click.option(
    "--by", default=None, metavar="NAME", help="Reviewer name (default: your login name)."
)


def open_db(db: str | None) -> Store:
    from apg.store import open_store

    return open_store(db, create=False)


def check_out_file(out: Path, db: str | None, *inputs: Path) -> None:
    """``--out`` may name neither a folder nor a file the command reads (input, store)."""
    from apg.report.folder import check_output_file
    from apg.store.engine import resolve_url, sqlite_path

    database = sqlite_path(resolve_url(db))
    check_output_file(out, [*inputs, *([database] if database else [])])


def continuity_text(plan: Plan, where: str) -> str:
    """What ``apg run`` says about identity matching after its summary."""
    counts = ", ".join(f"{n} {s}" for s, n in plan.counts().items() if n)
    text = f"stored in {where}: {counts}"
    if plan.previous_run_id:
        text += f" (matched to {plan.previous_run_id} by {plan.method})"
    changed = [o.persona_id for o in plan.outcomes if o.status in ("new", "changed")]
    if changed:
        text += f"\nto review: {', '.join(changed)} (apg personas list --status draft)"
    return text


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def when(stamp: str | None) -> str:
    return (stamp or "")[:19].replace("T", " ")


def _pct(share: float | None) -> str:
    return "" if share is None else f"{share:.1%}"


def table(rows: list[list[str]], right: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    """Columns padded to their widest cell; ``right`` holds right-aligned column indexes."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def drift_text(drift: dict[str, Any] | None, top: int = 3) -> str:
    if not drift:
        return ""
    parts = [f"drift {drift['score']:.2f}", f"centroid shift {drift['centroid_shift']:.2f} sd"]
    if drift.get("member_overlap") is not None:
        parts.append(f"member overlap {drift['member_overlap']:.0%}")
    parts.append(f"size {drift['size_change']:+,d} ({drift['share_change'] * 100:+.1f} pts)")
    shifts = sorted(drift.get("feature_shift", {}).items(), key=lambda kv: -abs(kv[1]))[:top]
    if shifts:
        parts.append("top shifts: " + ", ".join(f"{k} {v:+.2f}" for k, v in shifts))
    return "; ".join(parts)


# -- runs ------------------------------------------------------------------------------------
@click.group(context_settings=CONTEXT)
def runs() -> None:
    """Recorded runs: when, on what data, which model, which personas."""


@runs.command("list", context_settings=CONTEXT)
@click.option("--limit", type=int, default=20, show_default=True, help="Newest runs to show.")
@db_option
@json_option
def runs_list(limit: int, db: str | None, as_json: bool) -> None:
    """List runs, newest first.

    \b
    Example:
      apg runs list --limit 5
    """
    with open_db(db) as store:
        found = store.runs(limit)
    if as_json:
        return echo_json(found)
    if not found:
        click.echo("no runs yet; record one with `apg run`")
        return
    rows = [["run", "started", "status", "users", "chosen", "silhouette", "personas"]]
    for r in found:
        p = r["personas"]
        change = ", ".join(f"{n} {s}" for s, n in p.items() if n)
        chosen = (
            f"{r['algorithm']}({', '.join(f'{k}={v}' for k, v in r['params'].items())})"
            if r["algorithm"]
            else ""
        )
        rows.append(
            [
                r["id"],
                when(r["started_at"]),
                r["status"] + (", weak" if r.get("weak") else ""),
                f"{r['rows_used']:,}" if r["rows_used"] is not None else "",
                chosen,
                f"{r['silhouette']:.3f}" if r["silhouette"] is not None else "",
                change,
            ]
        )
    click.echo(table(rows, right={3, 5}))


@runs.command("show", context_settings=CONTEXT)
@click.argument("run", default="latest")
@db_option
@json_option
def runs_show(run: str, db: str | None, as_json: bool) -> None:
    """Show one run (default: the latest): data, selection, personas, model, notifications.

    \b
    Examples:
      apg runs show latest
      apg runs show run-20250106-030000-a1b2 --json
    """
    from apg.store.notifications import for_run

    with open_db(db) as store:
        r = store.run(run)
        with store.read() as conn:
            # Targets and errors were masked before they were stored.
            r["notifications"] = for_run(conn, r["id"])
    if as_json:
        return echo_json(r)
    lines = [
        f"run {r['id']}: {r['status']}",
        f"started {when(r['started_at'])}, finished {when(r['finished_at'])}",
    ]
    if r["error"]:
        lines.append(f"error: {r['error']}")
    if r.get("reason") and r["reason"] != r["error"]:
        lines.append(f"reason: {r['reason']}")
    if r["status"] in ("succeeded", "degraded"):
        lines += [
            f"data: {r['rows_used']:,} users used of {r['rows_read']:,} read; "
            f"fingerprint {r['fingerprint']}",
            f"chosen: {r['algorithm']} {json.dumps(r['params'])}, silhouette "
            f"{r['silhouette']:.3f}, {len(r['candidates'])} candidates "
            f"({sum(c['eligible'] for c in r['candidates'])} eligible)",
        ]
        if r["model"]:
            agree = r["model"]["training_agreement"]
            lines.append(
                f"model: {r['model']['rule']} rule"
                + (f", reproduces {agree:.1%} of this run's labels" if agree else "")
            )
        if r["previous_run_id"]:
            lines.append(
                f"matched to {r['previous_run_id']} by {r['match_method']}"
                + (
                    f" ({r['shared_ids']:.0%} of users shared)"
                    if r["shared_ids"] is not None
                    else ""
                )
            )
        lines.append(f"LLM calls: {r['llm_calls']}")
        lines += ["", _personas_table(r["personas"])]
    if r["notifications"]:
        rows = [["notified", "format", "event", "status", "attempts", "http", "error"]]
        for n in r["notifications"]:
            rows.append(
                [
                    n["target"],
                    n["format"],
                    n["event"],
                    n["status"],
                    str(n["attempts"]),
                    "" if n["http_status"] is None else str(n["http_status"]),
                    n["error"] or "",
                ]
            )
        lines += ["", table(rows, right={4})]
    click.echo("\n".join(lines))


def _personas_table(personas: list[dict[str, Any]]) -> str:
    rows = [["persona", "status", "size", "share", "review", "name"]]
    for p in personas:
        rows.append(
            [
                p["persona_id"],
                p["status"],
                f"{p['size']:,}",
                _pct(p["share"]),
                p["review"] or "",
                p["name"] or "",
            ]
        )
    return table(rows, right={2, 3})


# -- personas --------------------------------------------------------------------------------
@click.group(context_settings=CONTEXT)
def personas() -> None:
    """Personas of a run, their narratives and their history across runs."""


@personas.command("list", context_settings=CONTEXT)
@click.option("--run", default=None, help="Run id (default: the latest run).")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    help="Only personas whose latest narrative version has this review status.",
)
@db_option
@json_option
def personas_list(run: str | None, status: str | None, db: str | None, as_json: bool) -> None:
    """List the personas of a run.

    \b
    Examples:
      apg personas list
      apg personas list --status draft      # the review queue
    """
    with open_db(db) as store:
        found = store.personas(run, status)
    if as_json:
        return echo_json([{k: v for k, v in p.items() if k != "profile"} for p in found])
    click.echo(_personas_table(found) if found else "no personas match")


@personas.command("show", context_settings=CONTEXT)
@click.argument("persona_id")
@db_option
@json_option
def personas_show(persona_id: str, db: str | None, as_json: bool) -> None:
    """Show a persona: current narrative, pending draft with its drift, history across runs.

    \b
    Example:
      apg personas show P-3fa9
    """
    with open_db(db) as store:
        p = store.persona(persona_id)
    if as_json:
        return echo_json(p)
    cur = p["narrative"]
    body = cur["body"] if cur else {}
    lines = [f"{p['persona_id']}  {body.get('name', '(no narrative)')}"]
    if body.get("tagline"):
        lines.append(body["tagline"])
    if cur:
        who = (
            f", by {cur['reviewed_by']} {when(cur['reviewed_at'])}"
            if cur["reviewed_by"]
            else f", by {cur['created_by']} {when(cur['created_at'])}"
        )
        lines.append(
            f"status: {p['status']} in {p['latest_run']}; narrative v{cur['version']} "
            f"{cur['status']}{who}"
        )
        lines += ["", body.get("summary", "")]
        for title, key in (("Goals", "goals"), ("Frustrations", "frustrations")):
            if body.get(key):
                lines += ["", f"{title}:"] + [f"- {i['text']}" for i in body[key]]
        if body.get("quote"):
            lines += ["", f"\u201c{body['quote']}\u201d"]
        # Numbers of this version that the latest run's facts no longer support.
        stale = p.get("stale") or []
        if stale:
            lines += [
                "",
                f"Stale numbers (written from an earlier run; {p['latest_run']} says otherwise):",
            ]
            lines += [
                f"- {s['field']}: {s['text_number']} \u2192 "
                f"{s['new_value'] or 'no longer on the fact sheet'}"
                for s in stale
            ]
        fresh = p.get("freshness") or {}
        if fresh.get("refreshed") and fresh.get("version") == cur["version"]:
            changes = "; ".join(
                f"{s['text_number']} \u2192 {s['new_value']}" for s in fresh["refreshed"]
            )
            lines += ["", f"Numbers refreshed by apg in {p['latest_run']}: {changes}"]
    conf = (p.get("profile") or {}).get("confidence")
    if conf:
        lines += ["", confidence_text(Confidence.model_validate(conf))]
    outcomes = ((p.get("profile") or {}).get("outcomes")) or {}
    texts = [t for o in outcomes.values() if (t := outcome_summary(OutcomeStat.model_validate(o)))]
    if texts:
        lines += ["", "Outcomes:"] + [f"- {t}" for t in texts]
    draft = p["pending_draft"]
    if draft:
        lines += [
            "",
            f"Pending draft v{draft['version']} ({draft['origin']} by "
            f"{draft['created_by']}, {when(draft['created_at'])}): "
            f"{draft['body'].get('name', '')}",
        ]
        if p["pending_draft_drift"]:
            lines.append(f"  {drift_text(p['pending_draft_drift'])}")
        lines.append(
            f"  review it: apg review approve {p['persona_id']} | apg review reject "
            f"{p['persona_id']} --note ..."
        )
    rows = [["run", "started", "status", "size", "share", "drift"]]
    for h in p["history"]:
        rows.append(
            [
                h["run_id"],
                when(h["started_at"]),
                h["status"],
                f"{h['size']:,}",
                _pct(h["share"]),
                f"{h['drift']['score']:.2f}" if h["drift"] else "",
            ]
        )
    lines += ["", "History:", table(rows, right={3, 4, 5})]
    click.echo("\n".join(lines))


# -- export and assign -----------------------------------------------------------------------
@click.command(context_settings=CONTEXT)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "md", "csv"]), default="json", show_default=True
)
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    help="Only personas whose current narrative has this status.",
)
@click.option("--run", default=None, help="Run id (default: the latest run).")
@click.option("--out", type=click.Path(path_type=Path), help="Output file (default: stdout).")
@db_option
def export(fmt: str, status: str | None, run: str | None, out: Path | None, db: str | None) -> None:
    """Export the personas of a run with their current narratives.

    \b
    Examples:
      apg export --format md --status approved --out personas.md
      apg export --format csv > personas.csv
    """
    from apg.store.export import export_personas

    if out is not None:
        check_out_file(out, db)
    with open_db(db) as store:
        text = export_personas(store, fmt, status=status, run=run)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ApgError(f"cannot write {str(out)!r}: {exc.strerror}") from None
    click.echo(f"wrote {fmt} to {out}", err=True)


@click.command(context_settings=CONTEXT)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Users to assign: .csv, .tsv, .parquet or .jsonl with the run's columns.",
)
@click.option("--run", default=None, help="Run whose model to use (default: the latest).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output CSV.")
@click.option("--sep", help="Field separator of --data (default: from the extension).")
@click.option("--batch-rows", type=click.IntRange(min=1), metavar="N", help="Rows read at a time.")
@click.option("--dask", metavar="ADDRESS", help="Assign Parquet input on this Dask scheduler.")
@db_option
def assign(
    data: Path,
    run: str | None,
    out: Path,
    sep: str | None,
    batch_rows: int | None,
    dask: str | None,
    db: str | None,
) -> None:
    """Assign new users to the personas of a run with its stored model.

    CSV, TSV and Parquet input is streamed in batches (default 131072 rows), so files larger
    than memory work. With --dask (needs apg[dask]) Parquet partitions are assigned on the
    cluster, whose workers must see the file at the same path.

    \b
    Examples:
      apg assign --data new_users.csv --out labels.csv
      apg assign --data users.parquet --out labels.csv --dask tcp://scheduler:8786
    """
    from apg.store.assign import assign_file_to_csv

    if out.suffix.lower() not in (".csv", ""):
        raise ConfigError(f"--out {str(out)!r}: labels are written as CSV; use a .csv name")
    check_out_file(out, db, data)
    with open_db(db) as store:
        result = assign_file_to_csv(store, data, out, run, sep, batch_rows=batch_rows, dask=dask)
    counts = ", ".join(f"{k or 'outliers'} {v:,}" for k, v in result.counts.items())
    click.echo(f"assigned {result.rows:,} users with run {result.run_id}: {counts}")
    click.echo(f"labels: {out}")


COMMANDS = [runs, personas, export, assign]  # apg.cli.main registers these and apg.cli.review's
