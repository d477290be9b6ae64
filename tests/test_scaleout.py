"""The Dask backend fits the local search's candidates and assigns like apg.search.streaming."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import store_helpers as h
from click.testing import CliRunner
from sklearn.cluster import KMeans
from test_streaming import config, new_users, users, write
from threadpoolctl import threadpool_limits

from apg.cli.main import main
from apg.config import SearchConfig
from apg.errors import ConfigError, SourceError
from apg.search import candidates, scaleout, selection
from apg.search import leaderboard as search
from apg.search.streaming import assign_parquet
from apg.store import Store
from apg.store.assign import assign_file, write_labels

GRID: dict[str, Any] = {
    "kmeans": {"k": [2, 6], "n_init": 4},
    "agglomerative": {"k": [2, 5]},
    "dbscan": {"min_samples": [5, 10]},
}


def test_require_dask_names_the_extra_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r'needs the optional extra: pip install "apg\[dask\]"'):
        scaleout.fit_candidates_dask(np.zeros((10, 2)), SearchConfig(backend="dask"))


@pytest.fixture(scope="module")
def distributed() -> Any:
    """The rest needs the extra; without it these tests skip, saying so."""
    pytest.importorskip("dask.dataframe", reason="needs apg[dask]: dask[dataframe]")
    return pytest.importorskip("distributed", reason="needs apg[dask]: distributed")


@pytest.fixture(scope="module")
def cluster(distributed: Any) -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as lc:
        yield lc


@pytest.fixture
def client(cluster: Any, distributed: Any) -> Iterator[Any]:
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def blobs_matrix(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(c, 1.0, size=(n, 4)) for c in (0.0, 6.0, 12.0)])


def local_candidates(X: np.ndarray, cfg: SearchConfig, trees: dict[str, np.ndarray]) -> list[Any]:
    return (
        candidates.kmeans_candidates(X, cfg, print)
        + candidates.agglomerative_candidates(X, cfg, print, trees)
        + candidates.dbscan_grid(X, cfg, print)
    )


def test_fit_candidates_dask_equal_local_search(client: Any) -> None:
    X = blobs_matrix()
    cfg = SearchConfig(**GRID)
    local_trees: dict[str, np.ndarray] = {}
    local = local_candidates(X, cfg, local_trees)
    trees: dict[str, np.ndarray] = {}
    said: list[str] = []
    got = scaleout.fit_candidates_dask(X, cfg, said.append, trees, client=client)
    assert [c.key for c in got] == [c.key for c in local] and len(got) == 5 + 12 + 16
    for a, b in zip(local, got, strict=True):
        assert np.array_equal(a.labels, b.labels), a.key
        for name in ("core_indices", "centers"):
            mine, theirs = getattr(a, name), getattr(b, name)
            assert (mine is None) == (theirs is None), a.key
        if a.core_indices is not None:
            assert np.array_equal(a.core_indices, b.core_indices), a.key
        if a.inertia is not None:
            # Both run each fit on one OpenMP thread, so the results are bitwise equal.
            assert b.inertia == a.inertia, a.key
            np.testing.assert_array_equal(b.centers, a.centers)
    assert local_trees.keys() == trees.keys()
    assert all(np.array_equal(local_trees[m], trees[m]) for m in trees)
    selection.score_candidates(X, local, cfg)
    selection.score_candidates(X, got, cfg)
    for a, b in zip(local, got, strict=True):
        scores = ("silhouette", "davies_bouldin", "calinski_harabasz", "n_clusters", "eligible")
        assert [getattr(b, s) for s in scores] == pytest.approx([getattr(a, s) for s in scores])
        assert np.isnan(a.silhouette) or a.silhouette == b.silhouette, a.key
    assert said[1:] == [
        "search: kmeans k=2..6",
        "search: agglomerative linkage=ward, k=2..5",
        "search: agglomerative linkage=average, k=2..5",
        "search: agglomerative linkage=complete, k=2..5",
        "search: dbscan min_samples=5, 8 eps values",
        "search: dbscan min_samples=10, 8 eps values",
    ]


def test_kmeans_candidate_bitwise_equal_on_a_worker(client: Any) -> None:
    X = blobs_matrix(400)  # several of KMeans' 256-row chunks, so threads would matter
    on_worker = client.submit(scaleout.kmeans_candidate, X, 4, 4, 0).result()
    with threadpool_limits(limits=1):
        reference = KMeans(n_clusters=4, n_init=4, random_state=0).fit(X)
    assert np.array_equal(on_worker.labels, reference.labels_)
    assert on_worker.inertia == reference.inertia_
    assert np.array_equal(on_worker.centers, reference.cluster_centers_)


def test_fit_candidates_dask_connects_to_the_configured_address(cluster: Any) -> None:
    X = blobs_matrix(50)
    cfg = SearchConfig(
        kmeans={"k": [2, 3]},
        agglomerative=None,
        dbscan=None,
        backend="dask",
        dask_address=cluster.scheduler_address,
    )
    got = scaleout.fit_candidates_dask(X, cfg)
    assert [c.key for c in got] == ["kmeans(k=2)", "kmeans(k=3)"]
    no_address = cfg.model_copy(update={"dask_address": None})
    with pytest.raises(ConfigError, match=r"set search.dask_address \(e.g. tcp://"):
        scaleout.fit_candidates_dask(X, no_address)


def test_dask_client_unreachable_scheduler_is_config_error(distributed: Any) -> None:
    with (
        pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"),
        scaleout.dask_client("tcp://127.0.0.1:9", timeout=0.5),
    ):
        pass


@pytest.fixture(scope="module")
def model_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'apg.db'}"
    with Store(url) as store:
        h.run(store, users(), config("kmeans"))
    return url


def test_assign_parquet_dask_writes_the_bytes_of_streaming(client: Any, model_db: str) -> None:
    frame = new_users()
    codes = np.where(np.arange(len(frame)) % 11 == 0, None, "10").astype(object)
    codes[: len(frame) // 2] = "10"  # nulls in late row groups only
    frame["tier"] = codes
    path = write(frame, "new.parquet")
    with Store(model_db) as store:
        _, model, persona_of, id_column = store.model()
        streamed = assign_parquet(path, model, id_column, "stream.csv", persona_of=persona_of)
        labels = scaleout.assign_parquet_dask(
            path, model, id_column, persona_of=persona_of, split_row_groups=True
        )
        assert labels.npartitions == 6
        done = scaleout.write_labels_dask(labels, "dask.csv", client, window=2)
        write_labels(assign_file(store, path).frame, Path("memory.csv"))
    assert Path("dask.csv").read_bytes() == Path("stream.csv").read_bytes()
    assert Path("dask.csv").read_bytes() == Path("memory.csv").read_bytes()
    assert (done.rows, done.counts) == (streamed.rows, streamed.counts)


def test_cli_assign_dask_matches_memory_and_checks_ids(cluster: Any, model_db: str) -> None:
    path = write(new_users(), "new.parquet")
    args = ["assign", "--data", str(path), "--out", "labels.csv", "--dask"]
    env = {"APG_DATABASE_URL": model_db}
    result = CliRunner().invoke(main, [*args, cluster.scheduler_address], env=env)
    assert result.exit_code == 0, result.output
    with Store(model_db) as store:
        write_labels(assign_file(store, path).frame, Path("memory.csv"))
        dup = new_users()
        dup.loc[1000, "user_id"] = dup.loc[0, "user_id"]
        bad = write(dup, "dup.parquet")
        with pytest.raises(SourceError) as memory:
            assign_file(store, bad)
    assert Path("labels.csv").read_bytes() == Path("memory.csv").read_bytes()
    args[2] = str(bad)
    failed = CliRunner().invoke(main, [*args, cluster.scheduler_address], env=env)
    assert failed.exit_code == 1
    assert failed.stderr == f"error: {memory.value}\n"


def test_run_search_dask_backend_equals_local(cluster: Any) -> None:
    X = blobs_matrix()
    local = search.run_search(X, SearchConfig(**GRID))
    cfg = SearchConfig(**GRID, backend="dask", dask_address=cluster.scheduler_address)
    remote = search.run_search(X, cfg)
    assert remote.winner.key == local.winner.key
    np.testing.assert_array_equal(remote.labels, local.labels)
    for a, b in zip(local.candidates, remote.candidates, strict=True):
        assert (a.key, a.eligible, a.n_clusters) == (b.key, b.eligible, b.n_clusters)
        assert np.isnan(a.silhouette) or a.silhouette == b.silhouette, a.key
