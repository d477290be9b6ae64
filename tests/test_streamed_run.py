"""A streamed run (a Parquet source read a column or a batch at a time) gives the whole-table
run's results to the bit: ids, labels, candidates, profiles, report sample and model.

Every test runs the same config twice, ``search.stream: off`` and ``on``, on a real Parquet
file written in tmp_path with small row groups, and compares everything the run produced.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from apg.config import parse_config
from apg.errors import ApgError, ConfigError, DataError
from apg.pipeline import RunResult, run
from apg.prepare.matrix import StreamedMatrix, WholeMatrix
from apg.report.data import report_data_from_result
from apg.report.outputs import write_outputs
from apg.search import leaderboard
from apg.sources.parquet_columns import StreamedTable
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL, DEMOGRAPHIC, ID_COLUMN, generate_users
from apg.store import open_store
from apg.store.runner import run_with_store

KMEANS_ONLY = {"agglomerative": None, "dbscan": None, "kmeans": {"k": [3, 5], "n_init": 2}}
SAMPLED = {"exact_max_rows": 100, "sample_size": 400}


def config_for(tmp_path: Path, path: str, search: dict[str, Any], **extra: Any) -> Any:
    raw: dict[str, Any] = {
        "sources": [{"kind": "file", "path": path, **extra.pop("source", {})}],
        "id_column": ID_COLUMN,
        "features": {
            "behavioral": list(BEHAVIORAL),
            "attitudinal": list(ATTITUDINAL),
            "demographic": list(DEMOGRAPHIC),
        },
        "search": search,
        "narration": {"client": "offline"},
        **extra,
    }
    return parse_config(raw, "test", base_dir=tmp_path)


def both(config: Any) -> tuple[RunResult, RunResult]:
    """The run read whole, then streamed (checked to have streamed)."""
    config.search.stream = "off"
    whole = run(config)
    config.search.stream = "on"
    said: list[str] = []
    streamed = run(config, progress=said.append)
    assert isinstance(streamed.table, StreamedTable)
    assert not isinstance(whole.table, StreamedTable)
    assert any(m.startswith("read: streaming source #1") for m in said), said
    return whole, streamed


def assert_same_run(whole: RunResult, streamed: RunResult) -> None:
    assert streamed.run_id == whole.run_id
    assert streamed.table.fingerprint == whole.table.fingerprint
    assert streamed.table.rows_per_source == whole.table.rows_per_source
    pd.testing.assert_series_equal(streamed.frame.ids, whole.frame.ids)
    np.testing.assert_array_equal(streamed.labels, whole.labels)
    assert [c.key for c in streamed.search.candidates] == [c.key for c in whole.search.candidates]
    for a, b in zip(streamed.search.candidates, whole.search.candidates, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.silhouette == b.silhouette or (np.isnan(a.silhouette) and np.isnan(b.silhouette))
    assert streamed.search.winner.key == whole.search.winner.key
    assert streamed.search.mode == whole.search.mode
    assert streamed.search.assigned_silhouette == whole.search.assigned_silhouette
    assert [p.model_dump() for p in streamed.personas] == [p.model_dump() for p in whole.personas]
    assert streamed.outliers.model_dump() == whole.outliers.model_dump()
    assert streamed.prepared.columns == whole.prepared.columns
    assert streamed.prepared.imputed == whole.prepared.imputed
    assert streamed.prepared.rows_dropped == whole.prepared.rows_dropped
    a, b = report_data_from_result(streamed), report_data_from_result(whole)
    np.testing.assert_array_equal(a.sample_X, b.sample_X)
    np.testing.assert_array_equal(a.sample_labels, b.sample_labels)
    expected = float(np.mean(whole.search.model.predict(whole.prepared.X) == whole.labels))
    assert isinstance(streamed.matrix, StreamedMatrix)
    assert isinstance(whole.matrix, WholeMatrix)
    # The same value, to the bit, whether counted a batch at a time or over the whole matrix.
    assert streamed.search.training_agreement == whole.search.training_agreement == expected


def users(rows: int, seed: int = 0) -> pd.DataFrame:
    table = generate_users(rows, seed)
    rng = np.random.default_rng(seed)
    # Missing values in numeric and categorical columns, so imputation has work to do.
    for col in (BEHAVIORAL[0], ATTITUDINAL[0], DEMOGRAPHIC[1]):
        table.loc[rng.random(rows) < 0.05, col] = None
    return table


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "users.parquet"
    users(3000).to_parquet(path, index=False, row_group_size=700)
    return path


def test_sampled_kmeans_run_streams_to_the_same_result(tmp_path: Path, parquet: Path) -> None:
    whole, streamed = both(config_for(tmp_path, parquet.name, {**KMEANS_ONLY, **SAMPLED}))
    assert whole.search.mode == "sample"
    assert_same_run(whole, streamed)
    assert set(streamed.timings) >= {"read", "prepare", "search", "assign", "profile"}


def test_streamed_batches_smaller_than_the_table(
    tmp_path: Path, parquet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many batches, not a multiple of the row groups: the centre sums and every row's
    # distance must still come out as in the whole matrix.
    monkeypatch.setattr(leaderboard, "ASSIGN_BATCH_ROWS", 512)
    whole, streamed = both(config_for(tmp_path, parquet.name, {**KMEANS_ONLY, **SAMPLED}))
    assert_same_run(whole, streamed)


@pytest.mark.parametrize(
    "search",
    [
        {"kmeans": None, "dbscan": None, "agglomerative": {"k": [3, 4], "linkage": ["ward"]}},
        {
            "kmeans": None,
            "agglomerative": None,
            "dbscan": {"min_samples": [5]},
            "max_noise_share": 0.6,
            "min_cluster_share": 0.0,
        },
    ],
    ids=["agglomerative", "dbscan"],
)
def test_other_winners_stream_to_the_same_result(
    tmp_path: Path, parquet: Path, search: dict[str, Any]
) -> None:
    whole, streamed = both(config_for(tmp_path, parquet.name, {**search, **SAMPLED}))
    assert_same_run(whole, streamed)


def test_exact_mode_streams_every_row(tmp_path: Path) -> None:
    users(300).to_parquet(tmp_path / "small.parquet", index=False, row_group_size=64)
    whole, streamed = both(config_for(tmp_path, "small.parquet", dict(KMEANS_ONLY)))
    assert whole.search.mode == "exact"
    assert_same_run(whole, streamed)


def test_source_options_and_drop_rows_stream_alike(tmp_path: Path) -> None:
    table = users(2500, seed=3).rename(columns={ID_COLUMN: "uid", "nps": "net_promoter"})
    table["net_promoter"] = table["net_promoter"].map(lambda v: None if pd.isna(v) else str(v))
    table = pd.concat([table, table.iloc[:40]], ignore_index=True)  # duplicate ids to dedupe
    table.iloc[:1300].to_parquet(tmp_path / "part-0.parquet", index=False, row_group_size=300)
    table.iloc[1300:].to_parquet(tmp_path / "part-1.parquet", index=False, row_group_size=500)
    config = config_for(
        tmp_path,
        "part-*.parquet",
        {**KMEANS_ONLY, **SAMPLED, "min_cluster_share": 0.0},
        source={"id": "uid", "rename": {"net_promoter": "nps"}, "dedupe": "last"},
        preprocessing={"missing": "drop_rows", "scaling": "robust"},
    )
    with pytest.warns(UserWarning, match="holds numbers stored as text"):
        whole, streamed = both(config)
    assert whole.prepared.rows_dropped > 0
    assert_same_run(whole, streamed)


def test_skew_transforms_stream_alike(tmp_path: Path, parquet: Path) -> None:
    config = config_for(
        tmp_path,
        parquet.name,
        {**KMEANS_ONLY, **SAMPLED},
        preprocessing={"transform": "auto", "transforms": {"nps": "winsorize"}},
    )
    whole, streamed = both(config)
    assert {t["column"] for t in whole.prepared.transforms} >= {"support_tickets", "nps"}
    assert streamed.prepared.transforms == whole.prepared.transforms
    assert_same_run(whole, streamed)


def test_outputs_of_a_streamed_run_are_the_same_files(tmp_path: Path, parquet: Path) -> None:
    whole, streamed = both(config_for(tmp_path, parquet.name, {**KMEANS_ONLY, **SAMPLED}))
    a = write_outputs(whole, tmp_path / "whole", include_timing=False)
    b = write_outputs(streamed, tmp_path / "streamed", include_timing=False)
    for name in ("assignments.csv", "report.md", "candidates.csv"):
        assert (b / name).read_bytes() == (a / name).read_bytes(), name


def test_streamed_run_records_everyone_in_the_store(tmp_path: Path, parquet: Path) -> None:
    config = config_for(tmp_path, parquet.name, {**KMEANS_ONLY, **SAMPLED, "stream": "on"})
    with open_store(f"sqlite:///{tmp_path / 'apg.db'}") as store:
        stored = run_with_store(config, store)
        with store.read() as conn:
            members = conn.exec_driver_sql("select count(*) from apg_members").scalar()
            model = conn.exec_driver_sql("select document from apg_models").scalar()
    assert isinstance(stored.result.table, StreamedTable)
    assert members == len(pd.read_parquet(parquet))
    assert '"training_agreement"' in model


def test_auto_streams_only_above_the_memory_budget(tmp_path: Path, parquet: Path) -> None:
    config = config_for(tmp_path, parquet.name, {**KMEANS_ONLY, **SAMPLED})
    assert not isinstance(run(config).table, StreamedTable)  # a small file: read whole
    config.search.stream_memory_mib = 1
    assert isinstance(run(config).table, StreamedTable)


def test_stream_on_names_what_cannot_stream(tmp_path: Path, parquet: Path) -> None:
    users(200).to_csv(tmp_path / "users.csv", index=False)
    config = config_for(tmp_path, "users.csv", {**KMEANS_ONLY, "stream": "on"})
    with pytest.raises(ConfigError) as caught:
        run(config)
    assert str(caught.value) == (
        "search.stream is on, but only Parquet files stream (CSV, TSV and JSON lines are read "
        "whole); set search.stream: auto or off"
    )
    config = config_for(
        tmp_path, parquet.name, {**KMEANS_ONLY, "stream": "on"}, preprocessing={"pca": 2}
    )
    with pytest.raises(DataError, match=re.escape("preprocessing.pca is not supported")):
        run(config)


def test_streamed_run_raises_the_whole_reads_id_errors(tmp_path: Path) -> None:
    table = users(300)
    table.loc[7, ID_COLUMN] = table.loc[3, ID_COLUMN]
    table.to_parquet(tmp_path / "dup.parquet", index=False)
    config = config_for(tmp_path, "dup.parquet", dict(KMEANS_ONLY))
    messages = []
    for mode in ("off", "on"):
        config.search.stream = mode
        with pytest.raises(ApgError) as caught:
            run(config)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "duplicate id" in messages[0]
