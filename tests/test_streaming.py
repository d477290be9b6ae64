"""Streaming assignment writes the bytes of the in-memory path, batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import store_helpers as h
from click.testing import CliRunner

from apg.cli.main import main
from apg.config import parse_config
from apg.errors import DataError, SourceError
from apg.search.streaming import (
    DEFAULT_BATCH_ROWS,
    StreamingUnsupported,
    _Harmonizer,
    _Restart,
    assign_parquet,
    assign_stream,
)
from apg.store import Store
from apg.store.assign import assign_file, assign_file_to_csv, write_labels


def users(per_segment: int = 150, seed: int = 0, prefix: str = "u") -> pd.DataFrame:
    """Blobs plus a text category with gaps, a code category and gaps in a numeric feature."""
    frame = h.blobs({k: per_segment for k in "ABCD"}, seed=seed, prefix=prefix)
    rng = np.random.default_rng(seed)
    n = len(frame)
    frame["plan"] = pd.Series(rng.choice(["basic", "pro", "team"], n), dtype=object)
    frame.loc[rng.random(n) < 0.05, "plan"] = None
    frame["tier"] = pd.Series(rng.choice(["10", "gold", "silver"], n), dtype=object)
    frame["f2"] = frame["f2"].where(rng.random(n) > 0.03)
    return frame


def config(algorithm: str) -> object:
    raw = h.raw_config(algorithm)
    raw["features"]["attitudinal"] = ["f4", "plan", "tier"]
    return parse_config(raw, "test")


@pytest.fixture(scope="module", params=["kmeans", "dbscan"])
def model_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding one run (k-means: centroid rule; DBSCAN: core rule with outliers)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'apg.db'}"
    with Store(url) as store:
        h.run(store, users(), config(request.param))
    return url


@pytest.fixture
def store(model_db: str) -> Iterator[Store]:
    with Store(model_db) as s:
        yield s


def in_memory_bytes(store: Store, data: Path, sep: str | None = None) -> bytes:
    write_labels(assign_file(store, data, sep=sep).frame, Path("memory.csv"))
    return Path("memory.csv").read_bytes()


def new_users() -> pd.DataFrame:
    far = h.blobs({"A": 7}, centres={"A": [40.0, -40.0, 40.0, 40.0]}, prefix="far")
    return pd.concat([users(260, seed=5, prefix="n"), far], ignore_index=True)


def write(frame: pd.DataFrame, name: str) -> Path:
    path = Path(name)
    if name.endswith(".parquet"):
        frame.to_parquet(path, row_group_size=190)
    else:
        frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    return path


@pytest.mark.parametrize("name", ["new.csv", "new.tsv", "new.parquet"])
@pytest.mark.parametrize("batch_rows", [100, DEFAULT_BATCH_ROWS])
def test_assign_file_to_csv_streams_the_bytes_of_memory(
    store: Store, name: str, batch_rows: int
) -> None:
    path = write(new_users(), name)
    written = assign_file_to_csv(store, path, Path("labels.csv"), batch_rows=batch_rows)
    assert written.mode == "stream"
    assert Path("labels.csv").read_bytes() == in_memory_bytes(store, path)
    memory = assign_file(store, path)
    assert written.rows == len(memory.frame) == 1047
    assert written.counts == memory.counts()
    assert not [p.name for p in Path.cwd().iterdir() if p.name.endswith(".partial")]


def test_assign_stream_glob_of_files_matches_memory(store: Store) -> None:
    frame = new_users()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        write(frame.iloc[part], f"part{i}.parquet")
    _, model, persona_of, id_column = store.model()
    result = assign_parquet("part*.parquet", model, id_column, "labels.csv", persona_of=persona_of)
    assert result.rows == len(frame)
    assert Path("labels.csv").read_bytes() == in_memory_bytes(store, Path("part*.parquet"))


def test_assign_stream_integer_codes_with_gaps_read_as_whole_file(store: Store) -> None:
    # "tier" holds mostly text at training; here only numbers, missing in the second half only, so
    # early chunks parse as integers ("10") while a whole-file read gives floats ("10.0").
    frame = new_users()
    rng = np.random.default_rng(1)
    codes = rng.choice([10, 20], len(frame)).astype(object)
    codes[len(frame) // 2 :: 7] = None
    frame["tier"] = codes
    write(frame, "codes.csv")
    table = pa.Table.from_pandas(frame.drop(columns=["tier"]), preserve_index=False)
    table = table.append_column("tier", pa.array(list(codes), type=pa.int64()))
    pq.write_table(table, "codes.parquet", row_group_size=190)
    for name in ("codes.csv", "codes.parquet"):
        written = assign_file_to_csv(store, Path(name), Path("labels.csv"), batch_rows=100)
        assert written.mode == "stream"
        assert Path("labels.csv").read_bytes() == in_memory_bytes(store, Path(name)), name


def test_assign_file_to_csv_mixed_type_column_is_read_whole(store: Store) -> None:
    frame = new_users()
    frame["tier"] = ["10"] * 500 + ["gold"] * (len(frame) - 500)  # integers, then text
    path = write(frame, "mixed.csv")
    written = assign_file_to_csv(store, path, Path("labels.csv"), batch_rows=100)
    assert written.mode == "memory"
    assert Path("labels.csv").read_bytes() == in_memory_bytes(store, path)
    with pytest.raises(StreamingUnsupported, match="'tier' mixes numbers and text"):
        assign_stream(path, store.model()[1], "user_id", "x.csv", batch_rows=100)
    jsonl = Path("new.jsonl")
    frame.to_json(jsonl, orient="records", lines=True)
    assert assign_file_to_csv(store, jsonl, Path("labels.csv")).mode == "memory"


def errors_of(store: Store, path: Path) -> tuple[str, str]:
    with pytest.raises((DataError, SourceError)) as memory:
        assign_file(store, path)
    with pytest.raises((DataError, SourceError)) as streamed:
        assign_file_to_csv(store, path, Path("labels.csv"), batch_rows=100)
    assert not Path("labels.csv").exists()
    assert not [p.name for p in Path.cwd().iterdir() if p.name.endswith(".partial")]
    return str(memory.value), str(streamed.value)


@pytest.mark.parametrize("name", ["bad.csv", "bad.parquet"])
def test_assign_stream_id_and_column_errors_equal_memory(store: Store, name: str) -> None:
    frame = new_users()
    dup = frame.copy()
    dup.loc[900, "user_id"] = dup.loc[3, "user_id"]  # duplicate ids in distant batches
    memory, streamed = errors_of(store, write(dup, name))
    assert streamed == memory and "1 duplicate id(s) in column 'user_id'" in memory
    gap = frame.copy()
    gap.loc[[500, 700], "user_id"] = None
    memory, streamed = errors_of(store, write(gap, name))
    assert streamed == memory and "is empty in 2 row(s) (e.g. rows [500, 700])" in memory
    memory, streamed = errors_of(store, write(frame.drop(columns=["f3"]), name))
    assert streamed == memory and "column(s) 'f3' needed by the stored model" in memory
    memory, streamed = errors_of(store, write(frame.drop(columns=["user_id"]), name))
    assert streamed == memory and "id column 'user_id' not found" in memory


def test_assign_stream_empty_and_unreadable_files_raise_like_memory(store: Store) -> None:
    write(new_users().iloc[:0], "empty.parquet")
    Path("broken.parquet").write_bytes(b"not parquet at all")
    for name in ("empty.parquet", "broken.parquet"):
        memory, streamed = errors_of(store, Path(name))
        assert streamed == memory
    assert "has no rows" in errors_of(store, Path("empty.parquet"))[0]


def test_harmonizer_integer_chunks_follow_floats_and_restart_after_integers() -> None:
    ints = pd.DataFrame({"c": [1, 2]})
    floats = pd.DataFrame({"c": [1.0, np.nan]})
    after_floats = _Harmonizer(["c"], {})
    after_floats(floats)
    assert after_floats(ints)["c"].dtype == np.float64
    assert after_floats.casts == {"c": "float64"}
    after_ints = _Harmonizer(["c"], {})
    after_ints(pd.DataFrame({"c": [1, 2]}))
    with pytest.raises(_Restart) as again:
        after_ints(floats)
    assert again.value.casts == {"c": "float64"}
    texts = _Harmonizer(["c"], {})
    texts(pd.DataFrame({"c": [True, False]}))
    texts(pd.DataFrame({"c": [True, None]}, dtype=object))  # booleans read the same as text
    with pytest.raises(StreamingUnsupported):
        texts(floats)


def test_cli_assign_streams_parquet_with_batch_rows(store: Store, model_db: str) -> None:
    path = write(new_users(), "new.parquet")
    result = CliRunner().invoke(
        main,
        ["assign", "--data", str(path), "--out", "labels.csv", "--batch-rows", "64"],
        env={"APG_DATABASE_URL": model_db},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    memory = assign_file(store, path)
    counts = ", ".join(f"{k or 'outliers'} {v:,}" for k, v in memory.counts().items())
    assert result.stdout == (
        f"assigned 1,047 users with run {memory.run_id}: {counts}\nlabels: labels.csv\n"
    )
    assert Path("labels.csv").read_bytes() == in_memory_bytes(store, path)
