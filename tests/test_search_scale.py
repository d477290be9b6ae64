"""Sample mode (fit on a sample, assign everyone) and the tree worker process."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import pairwise_distances, silhouette_score

from apg.config import SearchConfig
from apg.search.clusters import ClusterModel
from apg.search.leaderboard import PARALLEL_TREES_MIN_ROWS, run_search
from apg.search.trees_worker import TreeJobs


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    X, _ = make_blobs(n_samples=1200, centers=4, n_features=5, cluster_std=1.2, random_state=3)
    return X


def sample_cfg(**algorithms: object) -> SearchConfig:
    grid = {"kmeans": None, "agglomerative": None, "dbscan": None, **algorithms}
    return SearchConfig.model_validate(
        {**grid, "exact_max_rows": 300, "sample_size": 300, "seed": 4, "min_cluster_share": 0.0}
    )


def fitted_rows(n: int, cfg: SearchConfig) -> np.ndarray:
    """The sample the search promises: seeded, without replacement, sorted."""
    return np.sort(np.random.default_rng(cfg.seed).choice(n, size=cfg.sample_size, replace=False))


def test_sample_mode_fits_candidates_on_the_seeded_sample(X: np.ndarray) -> None:
    cfg = sample_cfg(kmeans={"k": [3, 5]})
    result = run_search(X, cfg)
    assert result.mode == "sample"
    np.testing.assert_array_equal(result.sample_indices, fitted_rows(len(X), cfg))
    assert all(len(c.labels) == cfg.sample_size for c in result.candidates)
    assert len(result.labels) == len(X)
    # Fitted rows keep the labels that were scored.
    sample = fitted_rows(len(X), cfg)
    np.testing.assert_array_equal(result.labels[sample], result.winner.labels)


def test_sample_mode_kmeans_assigns_the_nearest_centre(X: np.ndarray) -> None:
    cfg = sample_cfg(kmeans={"k": [4]})
    result = run_search(X, cfg)
    centers = result.winner.centers
    assert centers is not None
    expected = pairwise_distances(X, centers).argmin(axis=1)
    rest = np.setdiff1d(np.arange(len(X)), fitted_rows(len(X), cfg))
    np.testing.assert_array_equal(result.labels[rest], expected[rest])


def test_sample_mode_agglomerative_assigns_the_nearest_cluster_centroid(X: np.ndarray) -> None:
    cfg = sample_cfg(agglomerative={"k": [4], "linkage": ["ward"]})
    result = run_search(X, cfg)
    sample = fitted_rows(len(X), cfg)
    sample_labels = AgglomerativeClustering(n_clusters=4, linkage="ward").fit_predict(X[sample])
    np.testing.assert_array_equal(result.winner.labels, sample_labels)
    centroids = np.vstack([X[sample][sample_labels == c].mean(axis=0) for c in range(4)])
    expected = pairwise_distances(X, centroids).argmin(axis=1)
    rest = np.setdiff1d(np.arange(len(X)), sample)
    np.testing.assert_array_equal(result.labels[rest], expected[rest])


def test_sample_mode_dbscan_assigns_nearest_core_within_eps_else_noise(X: np.ndarray) -> None:
    cfg = sample_cfg(dbscan={"eps": [1.5], "min_samples": [5]})
    cfg.max_noise_share = 1.0
    cfg.min_cluster_size = 1  # a 4-user cluster on the sample: this test is about assignment
    result = run_search(X, cfg)
    sample = fitted_rows(len(X), cfg)
    core = result.winner.core_indices
    assert core is not None and len(core) > 0
    core_points = X[sample][core]
    core_labels = result.winner.labels[core]
    d = pairwise_distances(X, core_points)
    nearest = d.argmin(axis=1)
    expected = np.where(d.min(axis=1) <= 1.5, core_labels[nearest], -1)
    rest = np.setdiff1d(np.arange(len(X)), sample)
    np.testing.assert_array_equal(result.labels[rest], expected[rest])
    far = np.vstack([X, X.max(axis=0) + 100])  # a user far from everyone is noise
    assert result.model.predict(far)[-1] == -1


def test_sample_mode_reports_silhouette_of_final_labels_on_a_fresh_sample(X: np.ndarray) -> None:
    cfg = sample_cfg(kmeans={"k": [4]})
    result = run_search(X, cfg)
    fresh = np.sort(
        np.random.default_rng(cfg.seed + 1).choice(len(X), size=cfg.sample_size, replace=False)
    )
    expected = silhouette_score(X[fresh], result.labels[fresh])
    assert result.assigned_silhouette == pytest.approx(expected, abs=1e-9)


def test_exact_mode_below_exact_max_rows(X: np.ndarray) -> None:
    cfg = sample_cfg(kmeans={"k": [4]})
    cfg.exact_max_rows = len(X)
    result = run_search(X, cfg)
    assert result.mode == "exact" and result.sample_indices is None
    assert result.assigned_silhouette is None


def test_cluster_model_predict_is_chunk_size_independent(X: np.ndarray) -> None:
    model = ClusterModel("centroid", X[:4].copy(), np.arange(4))
    np.testing.assert_array_equal(model.predict(X, chunk_rows=7), model.predict(X))


def test_tree_job_returns_the_same_trees_as_in_process() -> None:
    from apg.search.kernels import linkage_matrices

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    trees, seconds = TreeJobs(X, ["ward", "average"], processes=1).result()
    expected = linkage_matrices(X, ["ward", "average"])
    assert seconds >= 0
    for m in ("ward", "average"):
        np.testing.assert_array_equal(trees[m], expected[m])


def test_run_search_with_tree_worker_matches_sklearn() -> None:
    n = PARALLEL_TREES_MIN_ROWS  # the smallest size that uses the worker process
    X, _ = make_blobs(n_samples=n, centers=3, n_features=3, random_state=1)
    cfg = SearchConfig.model_validate(
        {"kmeans": None, "dbscan": None, "agglomerative": {"k": [3, 4], "linkage": ["average"]}}
    )
    result = run_search(X, cfg)
    for c in result.candidates:
        expected = AgglomerativeClustering(n_clusters=c.params["k"], linkage="average").fit(X)
        np.testing.assert_array_equal(c.labels, expected.labels_)


def test_tree_jobs_split_over_processes_equal_in_process() -> None:
    from apg.search.kernels import linkage_matrices

    X = np.random.default_rng(1).normal(size=(200, 3))
    methods = ["ward", "average", "complete"]
    jobs = TreeJobs(X, methods, processes=2)
    assert [j.linkages for j in jobs.jobs] == [["ward", "complete"], ["average"]]
    trees, _ = jobs.result()
    expected = linkage_matrices(X, methods)
    assert trees.keys() == expected.keys()
    for m in methods:
        np.testing.assert_array_equal(trees[m], expected[m])


def test_tree_jobs_deliver_each_tree_once_and_report_a_failed_worker() -> None:
    X = np.random.default_rng(2).normal(size=(120, 3))
    jobs = TreeJobs(X, ["ward", "average", "complete"], processes=2)
    try:
        delivered = [method for batch in jobs.as_completed() for method, _, _ in batch]
    finally:
        jobs.close()
    assert sorted(delivered) == ["average", "complete", "ward"]
    broken = TreeJobs(X, ["ward", "centroid"], processes=1)
    with pytest.raises(RuntimeError, match=r"(?s)tree worker failed \(1\):.*unsupported linkage"):
        broken.result()


def test_search_with_tree_workers_scores_every_candidate_like_sklearn() -> None:
    """Candidates are scored in batches as trees land; every score must still be sklearn's."""
    n = PARALLEL_TREES_MIN_ROWS
    X, _ = make_blobs(n_samples=n, centers=3, n_features=4, random_state=5)
    cfg = SearchConfig.model_validate(
        {
            "kmeans": {"k": [2, 3]},
            "agglomerative": {"k": [2, 3], "linkage": ["ward", "average", "complete"]},
            "dbscan": {"eps": "auto", "min_samples": [10]},
        }
    )
    result = run_search(X, cfg)
    assert {c.algorithm for c in result.candidates} == {"kmeans", "agglomerative", "dbscan"}
    for c in result.candidates:
        if c.algorithm == "agglomerative":
            expected = AgglomerativeClustering(
                n_clusters=c.params["k"], linkage=c.params["linkage"]
            )
            np.testing.assert_array_equal(c.labels, expected.fit(X).labels_)
        keep = c.labels >= 0
        if c.n_clusters >= 2:
            assert c.silhouette == pytest.approx(
                silhouette_score(X[keep], c.labels[keep]), abs=1e-6
            ), c.key


def test_a_killed_tree_worker_is_a_clear_search_error() -> None:
    import os
    import signal

    from apg.errors import SearchError

    X = np.random.default_rng(3).normal(size=(3000, 3))
    jobs = TreeJobs(X, ["average"], processes=1)
    # The kernel's OOM killer cannot be summoned on demand; SIGKILL is what it sends.
    os.kill(jobs.jobs[0]._proc.pid, signal.SIGKILL)
    with pytest.raises(SearchError, match=r"killed \(signal 9\), most likely out of memory"):
        jobs.result()


def test_tree_workers_fit_the_memory_budget() -> None:
    from apg.search.trees_worker import TREE_MEMORY_BYTES, condensed_bytes, tree_processes

    assert condensed_bytes(12_000) == 12_000 * 11_999 // 2 * 8
    assert tree_processes(5_000, 3, 2) == 2  # two 100 MB matrices fit side by side
    assert tree_processes(10_000, 3, 2) == 1  # two 400 MB matrices do not: in turn
    assert tree_processes(50_000, 3, 2) == 1  # never zero: the trees still get built
    assert tree_processes(5_000, 1, 2) == 1
    # The default exact limit's trees fit the budget one at a time.
    assert condensed_bytes(SearchConfig().exact_max_rows) <= TREE_MEMORY_BYTES


def test_one_tree_worker_in_turn_matches_sklearn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above the budget the trees are built one after another by one worker; the labels stay
    sklearn's."""
    from apg.search import trees_worker

    monkeypatch.setattr(trees_worker, "TREE_MEMORY_BYTES", 1)  # every size: one worker
    started: list[int] = []
    original = TreeJobs.__init__

    def spy(self: TreeJobs, X: np.ndarray, linkages: list[str], processes: int) -> None:
        started.append(processes)
        original(self, X, linkages, processes)

    monkeypatch.setattr(TreeJobs, "__init__", spy)
    n = PARALLEL_TREES_MIN_ROWS
    X, _ = make_blobs(n_samples=n, centers=3, n_features=3, random_state=2)
    linkages = ["ward", "average", "complete"]
    cfg = SearchConfig.model_validate(
        {"kmeans": None, "dbscan": None, "agglomerative": {"k": [2, 3, 5], "linkage": linkages}}
    )
    result = run_search(X, cfg)
    assert started == [1]
    assert len(result.candidates) == 9
    for c in result.candidates:
        expected = AgglomerativeClustering(n_clusters=c.params["k"], linkage=c.params["linkage"])
        np.testing.assert_array_equal(c.labels, expected.fit(X).labels_, err_msg=c.key)
