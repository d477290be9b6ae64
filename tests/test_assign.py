"""Assigning users with a run's stored model reproduces the run's own labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import store_helpers as h
from sklearn.cluster import DBSCAN

from apg.errors import DataError, NotFoundError
from apg.store import Store
from apg.store.assign import assign_file, assign_table

store = h.sqlite_store
# Segments apart in every feature, so every algorithm finds exactly them. (On the default
# blobs f4 is noise only, and Ward puts an extreme B user in A's cluster; nearest centroid
# puts it back in B: the documented case where agglomerative labels and assignment differ.)
APART = {
    "A": [0.0, 0.0, 0.0, 0.0],
    "B": [10.0, 0.0, 0.0, 10.0],
    "C": [0.0, 10.0, 0.0, -10.0],
    "D": [0.0, 0.0, 10.0, 20.0],
}


def with_outliers(frame: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    far = pd.DataFrame(rng.uniform(-15, 25, size=(n, len(h.FEATURES))), columns=h.FEATURES)
    far.insert(0, "user_id", [f"x{i:03d}" for i in range(n)])
    far["segment"] = "X"
    return pd.concat([frame, far], ignore_index=True)


@pytest.mark.parametrize("algorithm", ["kmeans", "agglomerative"])
def test_assign_original_users_get_their_labels(
    store: Store, tmp_path: Path, algorithm: str
) -> None:
    frame = h.blobs(centres=APART)
    stored = h.run(store, frame, h.config(algorithm))
    path = tmp_path / "users.csv"
    frame.to_csv(path, index=False)
    result = assign_file(store, path)
    assert result.run_id == stored.run_id
    assert np.array_equal(result.frame["cluster"].to_numpy(), stored.result.labels)
    # Independently: each planted segment is exactly one persona.
    per_segment = result.frame.groupby(frame["segment"])["persona_id"].nunique()
    assert per_segment.to_dict() == {"A": 1, "B": 1, "C": 1, "D": 1}
    assert result.frame["persona_id"].nunique() == 4
    assert store.run()["model"]["training_agreement"] == 1.0


def test_assign_dbscan_core_and_noise_exact_border_within_eps(store: Store) -> None:
    frame = with_outliers(h.blobs())
    stored = h.run(store, frame, h.config("dbscan"))
    eps, m = stored.result.search.winner.params["eps"], 5
    # Independently: scikit-learn's DBSCAN on the standardized table.
    table = frame[h.FEATURES]
    X = ((table - table.mean()) / table.std(ddof=0)).to_numpy()
    reference = DBSCAN(eps=eps, min_samples=m).fit(X)
    core = np.zeros(len(X), dtype=bool)
    core[reference.core_sample_indices_] = True
    labels = assign_table(store, frame).frame["cluster"].to_numpy()
    same = labels == stored.result.labels
    noise = reference.labels_ == -1
    assert noise[-12:].all() and (labels[noise] == -1).all()
    assert same[core].all() and same[noise].all()
    # Border points: the cluster of a core sample within eps (DBSCAN may have picked another).
    for i in np.flatnonzero(~core & ~noise):
        near = core & (np.linalg.norm(X - X[i], axis=1) <= eps)
        assert labels[i] in set(stored.result.labels[near])


def test_assign_new_users_follow_their_segment(store: Store) -> None:
    h.run(store, h.blobs())
    known = assign_table(store, h.blobs()).frame
    persona_of_segment = dict(zip(h.blobs()["segment"], known["persona_id"], strict=True))
    fresh = h.blobs({"A": 20, "B": 20, "C": 20, "D": 20}, seed=42, prefix="new")
    got = assign_table(store, fresh).frame
    assert list(got["persona_id"]) == [persona_of_segment[s] for s in fresh["segment"]]
    assert list(got["user_id"]) == list(fresh["user_id"])


def test_assign_dbscan_far_new_user_is_outlier(store: Store) -> None:
    h.run(store, with_outliers(h.blobs()), h.config("dbscan"))
    far = h.blobs({"A": 1}, centres={"A": [60.0, 60.0, 60.0, 60.0]}, prefix="far")
    got = assign_table(store, far).frame
    assert got["cluster"].tolist() == [-1] and got["persona_id"].tolist() == [""]


def test_assign_uses_the_requested_run(store: Store) -> None:
    first = h.run(store, h.blobs({"A": 150, "B": 150, "C": 150}))
    h.run(store, h.blobs())
    d_users = h.blobs({"D": 10}, prefix="d")
    latest = assign_table(store, d_users)
    older = assign_table(store, d_users, first.run_id)
    assert older.run_id == first.run_id and latest.run_id != first.run_id
    assert latest.frame["persona_id"].nunique() == 1
    assert set(older.frame["persona_id"]) <= {p.persona_id for p in first.result.personas}


def test_assign_errors_name_the_problem(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no successful run yet"):
        assign_table(store, h.blobs())
    h.run(store, h.blobs())
    with pytest.raises(DataError, match=r"column\(s\) 'f2' needed by the stored model"):
        assign_table(store, h.blobs().drop(columns=["f2"]))
    with pytest.raises(DataError, match="no id column 'user_id'"):
        assign_table(store, h.blobs().drop(columns=["user_id"]))
    path = tmp_path / "dup.csv"
    pd.concat([h.blobs({"A": 3}), h.blobs({"A": 3})]).to_csv(path, index=False)
    with pytest.raises(Exception, match="duplicate id"):
        assign_file(store, path)
