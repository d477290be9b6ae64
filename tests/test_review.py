"""Review: the draft -> approved | rejected state machine, edits as versions, history."""

from __future__ import annotations

from pathlib import Path

import pytest
import store_helpers as h

from apg.errors import ConfigError, NotFoundError
from apg.store import Store, review
from apg.store.review import ReviewError

db_url = h.db_url
store = h.sqlite_store  # the review logic; its SQL runs on PostgreSQL in the contract test


@pytest.fixture
def pid(store: Store) -> str:
    """A persona whose only narrative version is the generated draft v1."""
    return h.run(store, h.blobs()).result.personas[0].persona_id


def test_review_flow_on_every_backend(db_url: str) -> None:
    with Store(db_url) as s:
        pid = h.run(s, h.blobs()).result.personas[0].persona_id
        review.reject(s, pid, by="ana", note="too vague")
        review.edit(s, pid, {"name": "Clearer"}, by="bob", note="sharper")
        review.approve(s, pid, by="ana", note="ok")
        with pytest.raises(ReviewError, match="already approved"):
            review.approve(s, pid, by="ana")
        versions = review.history(s, pid)
        assert [
            (v["version"], v["status"], v["created_by"], v["reviewed_by"]) for v in versions
        ] == [(1, "rejected", "apg/offline", "ana"), (2, "approved", "bob", "ana")]
        assert s.persona(pid)["narrative"]["body"]["name"] == "Clearer"


def test_review_approve_draft_records_who_when_note(store: Store, pid: str) -> None:
    v = review.approve(store, pid, by="ana", note="matches the interviews")
    assert (v["version"], v["status"], v["reviewed_by"], v["review_note"]) == (
        1,
        "approved",
        "ana",
        "matches the interviews",
    )
    (stored,) = review.history(store, pid)
    assert stored["status"] == "approved" and stored["reviewed_by"] == "ana"
    assert stored["reviewed_at"] >= stored["created_at"]
    assert store.persona(pid)["review"] == "approved"


@pytest.mark.parametrize(
    "first, then",
    [
        ("approve", "approve"),
        ("approve", "reject"),
        ("reject", "approve"),
        ("reject", "reject"),
    ],
)
def test_review_reviewed_version_cannot_move_again(
    store: Store, pid: str, first: str, then: str
) -> None:
    getattr(review, first)(store, pid, by="ana", note="first")
    before = review.history(store, pid)
    done = "approved" if first == "approve" else "rejected"
    with pytest.raises(
        ReviewError,
        match=rf"cannot {then} {pid} v1: it is already {done} by "
        r"ana at .*only a draft can be approved or rejected",
    ):
        getattr(review, then)(store, pid, by="bob", note="second")
    assert review.history(store, pid) == before


def test_review_reject_needs_a_note_and_a_name(store: Store, pid: str) -> None:
    with pytest.raises(ReviewError, match="rejecting needs --note"):
        review.reject(store, pid, by="ana", note="  ")
    with pytest.raises(ReviewError, match="--by NAME must not be empty"):
        review.approve(store, pid, by=" ")
    assert review.history(store, pid)[0]["status"] == "draft"


def test_review_edit_adds_version_by_reviewer_and_keeps_previous(store: Store, pid: str) -> None:
    review.approve(store, pid, by="ana")
    original = review.history(store, pid)[0]
    v2 = review.edit(
        store,
        pid,
        {"name": "Weekend Planner", "goals": ["Plan in one sitting"]},
        by="bob",
        note="workshop wording",
    )
    assert (v2["version"], v2["status"], v2["origin"], v2["created_by"], v2["note"]) == (
        2,
        "draft",
        "edited",
        "bob",
        "workshop wording",
    )
    v1, stored_v2 = review.history(store, pid)
    assert v1 == original  # untouched
    assert stored_v2["body"]["name"] == "Weekend Planner"
    assert [g["text"] for g in stored_v2["body"]["goals"]] == ["Plan in one sitting"]
    assert stored_v2["body"]["summary"] == v1["body"]["summary"]  # unchanged fields carried
    # Until the edit is approved, the approved v1 stays current; the edit waits for review.
    shown = store.persona(pid)
    assert shown["narrative"]["version"] == 1 and shown["review"] == "draft"
    assert shown["pending_draft"]["version"] == 2
    review.approve(store, pid, by="ana")
    assert store.persona(pid)["narrative"]["body"]["name"] == "Weekend Planner"


def test_review_edit_keeps_cited_facts_of_unchanged_items(store: Store, pid: str) -> None:
    (v1,) = review.history(store, pid)
    kept = v1["body"]["goals"][0]
    review.edit(store, pid, {"goals": [kept["text"], "A brand new goal"]}, by="bob")
    goals = review.history(store, pid)[-1]["body"]["goals"]
    assert goals == [kept, {"text": "A brand new goal", "facts": []}]


def test_review_approve_older_draft_by_version(store: Store, pid: str) -> None:
    review.edit(store, pid, {"name": "Second"}, by="bob")
    review.approve(store, pid, by="ana", version=1)
    v1, v2 = review.history(store, pid)
    assert (v1["status"], v2["status"]) == ("approved", "draft")
    with pytest.raises(
        ReviewError, match=rf"persona '{pid}' has no version 7; versions are '1', '2'"
    ):
        review.approve(store, pid, by="ana", version=7)


def test_review_rejected_draft_can_be_edited_into_a_new_draft(store: Store, pid: str) -> None:
    review.reject(store, pid, by="ana", note="quote is invented")
    review.edit(store, pid, {"quote": None}, by="bob", note="dropped the quote")
    review.approve(store, pid, by="ana")
    versions = review.history(store, pid)
    assert [v["status"] for v in versions] == ["rejected", "approved"]
    assert versions[1]["body"]["quote"] is None
    events = review.events(versions)
    assert [(e["version"], e["action"], e["by"]) for e in events] == [
        (1, "generated", "apg/offline"),
        (1, "rejected", "ana"),
        (2, "edited", "bob"),
        (2, "approved", "ana"),
    ]
    assert events[1]["note"] == "quote is invented" and events[2]["note"] == "dropped the quote"


def test_review_edit_rejects_unknown_fields_and_empty_changes(store: Store, pid: str) -> None:
    with pytest.raises(ReviewError, match=r"cannot edit 'persona_id'; editable fields are"):
        review.edit(store, pid, {"persona_id": "P-x"}, by="bob")
    with pytest.raises(ReviewError, match="nothing to change"):
        review.edit(store, pid, {}, by="bob")
    with pytest.raises(ReviewError, match=r"not valid: name: Input should be a valid string"):
        review.edit(store, pid, {"name": None}, by="bob")
    assert len(review.history(store, pid)) == 1


def test_review_edit_file_yaml(store: Store, pid: str, tmp_path: Path) -> None:
    path = tmp_path / "persona.yaml"
    path.write_text(
        "name: Night Owl\ngoals:\n  - Finish work after hours\n"
        "frustrations: [Maintenance windows at night]\n",
        encoding="utf-8",
    )
    review.edit(store, pid, review.load_edit_file(path), by="bob")
    body = review.history(store, pid)[-1]["body"]
    assert body["name"] == "Night Owl"
    assert [f["text"] for f in body["frustrations"]] == ["Maintenance windows at night"]
    path.write_text("nmae: typo\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'nmae'; allowed: 'name'"):
        review.load_edit_file(path)


def test_review_unknown_persona_suggests_close_ids(store: Store, pid: str) -> None:
    wrong = pid[:-1] + ("0" if pid[-1] != "0" else "1")
    with pytest.raises(NotFoundError, match=rf"no persona '{wrong}'; did you mean '{pid}'"):
        review.approve(store, wrong, by="ana")
    # Case does not matter.
    assert review.approve(store, pid.lower(), by="ana")["persona_id"] == pid


def test_review_status_filter_lists_review_queue(store: Store, pid: str) -> None:
    review.approve(store, pid, by="ana")
    other = next(p["persona_id"] for p in store.personas() if p["persona_id"] != pid)
    review.reject(store, other, by="ana", note="no")
    assert [p["persona_id"] for p in store.personas(status="approved")] == [pid]
    assert [p["persona_id"] for p in store.personas(status="rejected")] == [other]
    assert len(store.personas(status="draft")) == 2


def test_review_default_reviewer_is_login_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "carol")
    monkeypatch.setenv("USER", "carol")
    assert review.default_reviewer() == "carol"
