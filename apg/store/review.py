"""Review of persona narratives: approve, reject, edit, history.

Each narrative version moves once, from ``draft`` to ``approved`` or ``rejected``; approved and
rejected versions never change again. An edit never alters a version: it adds a new ``draft``
version authored by the reviewer, starting from the latest version, and keeps every earlier
one. Each action records who, when and a note. See ``apg.store.queries`` for which version is
current.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

import pydantic
import yaml

from apg.errors import ConfigError, StoreError, listing
from apg.profiles.narrative import Item, Narrative, text_problems
from apg.store import schema as t
from apg.store.engine import now
from apg.store.queries import narrative_versions, resolve_persona
from apg.store.store import Store

STATES = ("draft", "approved", "rejected")
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"approved", "rejected"}),
    "approved": frozenset(),
    "rejected": frozenset(),
}
EDITABLE = ("name", "tagline", "summary", "goals", "frustrations", "quote")


class ReviewError(StoreError):
    """A review action that the narrative's state does not allow."""


def default_reviewer() -> str:
    """The login name, for ``--by``."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (containers)
        return os.environ.get("USER") or "unknown"


def _check_by(by: str) -> str:
    by = (by or "").strip()
    if not by:
        raise ReviewError("--by NAME must not be empty")
    return by[:128]


def _target(versions: list[dict[str, Any]], persona_id: str, version: int | None) -> dict[str, Any]:
    if not versions:
        raise ReviewError(
            f"persona {persona_id!r} has no narrative yet; create one with "
            f"`apg review edit {persona_id} --file persona.yaml`"
        )
    if version is None:
        return versions[-1]
    for v in versions:
        if v["version"] == version:
            return v
    raise ReviewError(
        f"persona {persona_id!r} has no version {version}; versions are "
        f"{listing([v['version'] for v in versions])}"
    )


def _transition(
    db: Store, persona_ref: str, to: str, by: str, note: str | None, version: int | None
) -> dict[str, Any]:
    verb = {"approved": "approve", "rejected": "reject"}[to]
    by = _check_by(by)
    with db.write() as conn:
        pid = resolve_persona(conn, persona_ref)
        versions = narrative_versions(conn, [pid]).get(pid, [])
        target = _target(versions, pid, version)
        if to not in TRANSITIONS[target["status"]]:
            when = (
                f" by {target['reviewed_by']} at {target['reviewed_at']}"
                if target["reviewed_by"]
                else ""
            )
            raise ReviewError(
                f"cannot {verb} {pid} v{target['version']}: it is already "
                f"{target['status']}{when}; only a draft can be approved or rejected. "
                f"Edit it (`apg review edit {pid} ...`) to create a new draft"
            )
        n = t.narratives
        stamp = now()
        done = conn.execute(
            n.update()
            .where(n.c.persona_id == pid, n.c.version == target["version"], n.c.status == "draft")
            .values(status=to, reviewed_by=by, reviewed_at=stamp, review_note=note)
        ).rowcount
        if done != 1:  # pragma: no cover - another reviewer won the race on PostgreSQL
            raise ReviewError(
                f"{pid} v{target['version']} was reviewed by someone else just "
                "now; see `apg review history`"
            )
        return {
            **target,
            "status": to,
            "reviewed_by": by,
            "reviewed_at": stamp,
            "review_note": note,
        }


def approve(
    db: Store, persona_ref: str, *, by: str, note: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """Approve the persona's latest version (or ``version``), which must be a draft."""
    return _transition(db, persona_ref, "approved", by, note, version)


def reject(
    db: Store, persona_ref: str, *, by: str, note: str, version: int | None = None
) -> dict[str, Any]:
    """Reject a draft; a note saying why is required."""
    if not (note or "").strip():
        raise ReviewError("rejecting needs --note TEXT saying why")
    return _transition(db, persona_ref, "rejected", by, note, version)


def _items(values: list[Any], before: list[Item], key: str) -> list[dict[str, Any]]:
    facts = {i.text: i.facts for i in before}
    out = []
    for v in values:
        if isinstance(v, str):
            out.append({"text": v, "facts": list(facts.get(v, []))})
        elif isinstance(v, dict) and "text" in v:
            out.append(v)
        else:
            raise ReviewError(
                f"{key}: each item is a text or {{text: ..., facts: [...]}}, got {v!r}"
            )
    return out


def edit(
    db: Store, persona_ref: str, changes: dict[str, Any], *, by: str, note: str | None = None
) -> dict[str, Any]:
    """Add a draft version: the latest version with ``changes`` applied.

    ``changes`` maps fields of :data:`EDITABLE` to new values; goals and frustrations replace
    the whole list (an unchanged item text keeps its cited facts).
    """
    by = _check_by(by)
    unknown = [k for k in changes if k not in EDITABLE]
    if unknown:
        raise ReviewError(
            f"cannot edit {listing(unknown)}; editable fields are {listing(EDITABLE)}"
        )
    if not changes:
        raise ReviewError(
            "nothing to change; give --name, --tagline, --summary, --goal, "
            "--frustration, --quote or --file"
        )
    with db.write() as conn:
        pid = resolve_persona(conn, persona_ref)
        versions = narrative_versions(conn, [pid]).get(pid, [])
        base = dict(versions[-1]["body"]) if versions else {}
        before = Narrative.model_validate(base) if versions else None
        body = {**base}
        for key, value in changes.items():
            if key in ("goals", "frustrations"):
                value = _items(list(value), getattr(before, key) if before else [], key)
            body[key] = value
        try:
            narrative = Narrative.model_validate(body)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ReviewError(f"the edited narrative of {pid} is not valid: {problems}") from None
        too_long = text_problems(narrative)
        if too_long:
            raise ReviewError(
                f"the edited narrative of {pid} is not valid: {'; '.join(too_long)}; shorten it"
            )
        row = {
            "persona_id": pid,
            "version": (versions[-1]["version"] + 1) if versions else 1,
            "run_id": None,
            "origin": "edited",
            "body": narrative.model_dump(mode="json"),
            "status": "draft",
            "created_by": by,
            "created_at": now(),
            "note": note,
        }
        conn.execute(t.narratives.insert().values(**row))
        return {**row, "reviewed_by": None, "reviewed_at": None, "review_note": None}


def history(db: Store, persona_ref: str) -> list[dict[str, Any]]:
    """Every version of the persona's narrative with who did what, oldest first."""
    with db.read() as conn:
        pid = resolve_persona(conn, persona_ref)
        return narrative_versions(conn, [pid]).get(pid, [])


def events(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The actions behind ``versions`` in time order: created/edited, approved/rejected."""
    out = []
    for v in versions:
        out.append(
            {
                "version": v["version"],
                "action": "edited" if v["origin"] == "edited" else "generated",
                "by": v["created_by"],
                "at": v["created_at"],
                "note": v["note"],
            }
        )
        if v["status"] != "draft":
            out.append(
                {
                    "version": v["version"],
                    "action": v["status"],
                    "by": v["reviewed_by"],
                    "at": v["reviewed_at"],
                    "note": v["review_note"],
                }
            )
    return sorted(out, key=lambda e: (e["at"] or "", e["version"]))


def load_edit_file(path: Path) -> dict[str, Any]:
    """Read ``persona.yaml``: any of name, tagline, summary, goals, frustrations, quote."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {listing(EDITABLE)}")
    unknown = [k for k in data if k not in EDITABLE]
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {listing(unknown)}; allowed: {listing(EDITABLE)}"
        )
    for key in ("goals", "frustrations"):
        if key in data and not isinstance(data[key], list):
            raise ConfigError(f"{path}: {key} must be a list")
    return data
