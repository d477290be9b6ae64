"""Identity across runs: matching clusters to last run's personas, drift, carried narratives."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import store_helpers as h

from apg.profiles.identity import new_persona_id
from apg.store import Store, review

db_url = h.db_url
store = h.sqlite_store  # matching is computed in Python; one backend is enough

SHIFTED = {**h.CENTRES, "B": [10.0, 3.0, 0.0, 0.6]}


def second_frame(scenario: str, prefix: str) -> pd.DataFrame:
    """The week-2 table of a scenario; ``prefix`` "u" keeps the ids of week 1, "w" does not."""
    if scenario == "identical":
        return h.blobs(prefix=prefix)
    if scenario == "shifted":
        return h.blobs(prefix=prefix, centres=SHIFTED)
    if scenario == "new":
        return h.blobs(
            {**{k: 150 for k in h.CENTRES}, "E": 150},
            prefix=prefix,
            centres={**h.CENTRES, "E": h.FAR},
        )
    if scenario == "vanished":
        return h.blobs({"A": 150, "B": 150, "C": 150}, prefix=prefix)
    if scenario == "split":  # half of A moves away, keeping its ids when ids persist
        stay = h.blobs({"A": 75, "B": 150, "C": 150, "D": 150}, prefix=prefix)
        move = h.blobs({"A2": 75}, centres={"A2": h.FAR}, seed=1, prefix=prefix)
        move["user_id"] = [f"{prefix}A{i:04d}" for i in range(75, 150)]
        return pd.concat([stay, move], ignore_index=True)
    if scenario == "reshuffled":  # the same segments, but ids dealt out anew
        frame = h.blobs(prefix=prefix)
        frame["user_id"] = frame["user_id"].sample(frac=1, random_state=3).to_numpy()
        return frame
    raise AssertionError(scenario)


# Week-2 segment -> expected status, with persistent ids and without.
EXPECTED = {
    "identical": (
        {"A": "continuing", "B": "continuing", "C": "continuing", "D": "continuing"},
        None,
    ),
    "shifted": ({"A": "continuing", "B": "changed", "C": "continuing", "D": "continuing"}, None),
    "new": (
        {"A": "continuing", "B": "continuing", "C": "continuing", "D": "continuing", "E": "new"},
        None,
    ),
    "vanished": ({"A": "continuing", "B": "continuing", "C": "continuing", "D": "retired"}, None),
    # With ids the half that stays keeps only half of A's members (Jaccard 0.5): changed.
    # Without ids only centroids are seen, and the half that stays did not move: continuing.
    "split": (
        {"A": "changed", "A2": "new", "B": "continuing", "C": "continuing", "D": "continuing"},
        {"A": "continuing", "A2": "new", "B": "continuing", "C": "continuing", "D": "continuing"},
    ),
    # Ids persist but users moved between segments wholesale: member overlap cannot match,
    # centroids do, and the membership change is drift.
    "reshuffled": (
        {"A": "changed", "B": "changed", "C": "changed", "D": "changed"},
        {"A": "continuing", "B": "continuing", "C": "continuing", "D": "continuing"},
    ),
}


@pytest.mark.parametrize("ids", ["persistent", "fresh"])
@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_identity_scenario_statuses(tmp_path: object, scenario: str, ids: str) -> None:
    with Store(f"sqlite:///{tmp_path}/apg.db") as s:
        week1 = h.run(s, h.blobs())
        first_ids = {seg: pid for pid, seg in h.segment_of(week1).items()}
        week2 = h.run(s, second_frame(scenario, "u" if ids == "persistent" else "w"))
    with_ids, without_ids = EXPECTED[scenario]
    expected = with_ids if ids == "persistent" or without_ids is None else without_ids
    assert week2.plan.method == ("members" if ids == "persistent" else "centroid")
    segment = h.segment_of(week2)
    statuses = h.status_of(week2)
    got = {segment[pid]: status for pid, status in statuses.items() if pid in segment}
    got.update({seg: statuses[pid] for seg, pid in first_ids.items() if pid not in segment})
    assert got == expected
    # A persona that is still there keeps its id; a new one gets an unused id.
    for seg, status in expected.items():
        pid = next((p for p, s_ in segment.items() if s_ == seg), first_ids.get(seg))
        if status == "new":
            assert pid not in first_ids.values()
        else:
            assert pid == first_ids[seg]


def test_identity_rerun_on_unchanged_data_keeps_ids_names_and_narratives(store: Store) -> None:
    week1 = h.run(store, h.blobs())
    week2 = h.run(store, h.blobs())
    names1 = {p.persona_id: p.narrative.name for p in week1.result.personas if p.narrative}
    names2 = {p.persona_id: p.narrative.name for p in week2.result.personas if p.narrative}
    assert names2 == names1 and len(names1) == 4
    assert set(h.status_of(week2).values()) == {"continuing"}
    assert not any(o.narrated for o in week2.plan.outcomes)  # no narration at all
    assert all(len(review.history(store, pid)) == 1 for pid in names1)  # no new versions


def test_identity_ids_are_reproducible_in_a_fresh_database(tmp_path: object) -> None:
    ids = []
    for name in ("one", "two"):
        with Store(f"sqlite:///{tmp_path}/{name}.db") as s:
            ids.append(sorted(p.persona_id for p in h.run(s, h.blobs()).result.personas))
    assert ids[0] == ids[1]
    assert all(len(pid) == 6 and pid.startswith("P-") for pid in ids[0])


def test_identity_only_new_and_changed_personas_are_narrated(store: Store) -> None:
    h.run(store, h.blobs())
    week2 = h.run(
        store, h.blobs({**{k: 150 for k in SHIFTED}, "E": 150}, centres={**SHIFTED, "E": h.FAR})
    )
    segment = h.segment_of(week2)
    narrated = {segment[o.persona_id] for o in week2.plan.outcomes if o.narrated}
    assert narrated == {"B", "E"}  # B changed, E new
    drafted = {
        segment[p["persona_id"]]
        for p in store.personas(week2.run_id)
        if any(
            v["run_id"] == week2.run_id and not (v["note"] or "").startswith("numbers refreshed")
            for v in review.history(store, p["persona_id"])
        )
    }
    assert drafted == {"B", "E"}  # the others' drafts only had their numbers refreshed


@pytest.fixture
def any_store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as s:
        yield s


def test_identity_approved_text_survives_continuing_and_changed(any_store: Store) -> None:
    store = any_store
    week1 = h.run(store, h.blobs())
    by_seg = {seg: pid for pid, seg in h.segment_of(week1).items()}
    review.edit(store, by_seg["A"], {"name": "Steady Sam"}, by="ana")
    review.approve(store, by_seg["A"], by="ana")
    review.approve(store, by_seg["B"], by="ana", note="good as drafted")
    approved_b = store.persona(by_seg["B"])["narrative"]
    week2 = h.run(store, h.blobs(centres=SHIFTED))
    now = {p.persona_id: p for p in week2.result.personas}
    # Continuing A: the edited, approved text, unchanged and with no new version.
    a = store.persona(by_seg["A"])
    assert now[by_seg["A"]].narrative.name == "Steady Sam"  # type: ignore[union-attr]
    assert a["narrative"]["body"]["name"] == "Steady Sam" and a["versions"] == 2
    assert a["review"] == "approved" and a["pending_draft"] is None
    # Changed B: the approved text stays current, a new draft waits with the drift beside it.
    b = store.persona(by_seg["B"])
    assert b["status"] == "changed"
    assert b["narrative"]["version"] == approved_b["version"]
    assert b["narrative"]["status"] == "approved"
    assert now[by_seg["B"]].narrative.model_dump(mode="json") == approved_b["body"]  # type: ignore[union-attr]
    assert b["review"] == "draft"
    assert b["pending_draft"]["run_id"] == week2.run_id
    assert b["pending_draft_drift"]["score"] > 0.25


def test_identity_drift_is_shift_in_previous_standard_deviations(store: Store) -> None:
    week1_frame = h.blobs()
    week1 = h.run(store, week1_frame)
    week2_frame = h.blobs(centres=SHIFTED)
    week2 = h.run(store, week2_frame)
    pid = next(p for p, seg in h.segment_of(week1).items() if seg == "B")
    drift = next(o.drift for o in week2.plan.outcomes if o.persona_id == pid)
    assert drift is not None
    old_b = week1_frame[week1_frame.segment == "B"]
    new_b = week2_frame[week2_frame.segment == "B"]
    for f in h.FEATURES:
        expected = (new_b[f].mean() - old_b[f].mean()) / week1_frame[f].std(ddof=1)
        assert drift.feature_shift[f] == pytest.approx(expected, abs=1e-9)
    rms = (sum(v * v for v in drift.feature_shift.values()) / 4) ** 0.5
    assert drift.centroid_shift == pytest.approx(rms)
    assert drift.member_overlap == 1.0 and drift.size_change == 0 and drift.share_change == 0
    assert drift.score == pytest.approx(rms)


def test_identity_history_across_runs_in_persona_show(store: Store) -> None:
    week1 = h.run(store, h.blobs())
    pid = next(p for p, seg in h.segment_of(week1).items() if seg == "D")
    week2 = h.run(store, h.blobs({"A": 150, "B": 150, "C": 150, "D": 300}))
    week3 = h.run(store, h.blobs({"A": 150, "B": 150, "C": 150}))
    history = store.persona(pid)["history"]
    assert [r["run_id"] for r in history] == [week1.run_id, week2.run_id, week3.run_id]
    # Week 2 doubles D with new users: member overlap 0.5, so D is "changed".
    assert [r["status"] for r in history] == ["new", "changed", "retired"]
    assert history[1]["drift"]["member_overlap"] == pytest.approx(0.5)
    assert [r["size"] for r in history] == [150, 300, 0]
    assert [round(r["share"], 4) for r in history] == [0.25, round(300 / 750, 4), 0.0]


def test_new_persona_id_avoids_taken_ids() -> None:
    taken: set[str] = set()
    first = new_persona_id("key", taken)
    again = new_persona_id("key", taken)  # same key, already taken: another id
    assert first != again and {first, again} == taken
    assert new_persona_id("key", set()) == first  # deterministic


def test_identity_reshuffled_ids_fall_back_to_centroids_and_report_low_overlap(
    store: Store,
) -> None:
    h.run(store, h.blobs())
    week2 = h.run(store, second_frame("reshuffled", "u"))
    matched = [o for o in week2.plan.outcomes if o.status != "retired"]
    assert matched and all(o.matched_by == "centroid" for o in matched)
    for o in matched:
        assert o.drift is not None and o.drift.member_overlap is not None
        assert o.drift.member_overlap < 0.3  # below min_jaccard: why members could not match
        assert o.drift.score == pytest.approx(1 - o.drift.member_overlap)
