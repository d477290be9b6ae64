"""A table read one column at a time gives the in-memory run's roles, errors and transform.

``select_features_by_column`` + ``prepare_by_column`` against ``select_features`` + ``prepare``
on the same table: the same FeatureFrame, the same error texts and warnings, and a transformer
whose output is ``prepare``'s X to the bit, whichever way ``prepare`` fits (one plain fit up to
``TRANSFORM_CHUNK_ROWS`` rows, column by column above; the tests lower the threshold).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import apg.prepare.preprocessing
from apg.config import FeaturesConfig, PreprocessingConfig
from apg.errors import DataError
from apg.prepare.features import FeatureFrame, LazyRaw, select_features, select_features_by_column
from apg.prepare.preprocessing import Prepared, prepare, prepare_by_column, transform
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL, generate_users


class FrameColumns:
    """``Columns`` over an in-memory frame; counts what is read."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.names = [str(c) for c in table.columns]
        self.num_rows = len(table)
        self.reads: list[str] = []
        self.fetched: list[int] = []  # rows of each rows() call

    def column(self, name: str) -> pd.Series:
        self.reads.append(name)
        return self.table[name].reset_index(drop=True)

    def rows(self, indices: np.ndarray, columns: list[str]) -> pd.DataFrame:
        self.fetched.append(len(indices))
        return self.table[columns].iloc[indices].reset_index(drop=True)


class ParquetFile:
    """``Columns`` over a Parquet file, one column read at a time. Rows are taken from a
    read of their columns, converted on their own: an int column with gaps is float64 whole
    but int64 in a batch without one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names = list(pq.read_schema(path).names)
        self.num_rows = pq.ParquetFile(path).metadata.num_rows

    def column(self, name: str) -> pd.Series:
        return pq.read_table(self.path, columns=[name]).to_pandas()[name]

    def rows(self, indices: np.ndarray, columns: list[str]) -> pd.DataFrame:
        table = pq.read_table(self.path, columns=columns).take(pa.array(indices))
        return table.to_pandas()

    def batches(
        self, columns: list[str], batch_rows: int, keep: np.ndarray | None = None
    ) -> Iterator[pd.DataFrame]:
        """Consecutive rows where ``keep``, each batch converted on its own."""
        table = pq.read_table(self.path, columns=columns)
        if keep is not None:
            table = table.filter(pa.array(keep))
        for start in range(0, table.num_rows, batch_rows):
            yield table.slice(start, batch_rows).to_pandas()


# --------------------------------------------------------------------------- data

SAMPLE_ROLES = FeaturesConfig(
    behavioral=[*BEHAVIORAL, "gender", "occupation"],
    attitudinal=list(ATTITUDINAL),
    demographic=["age", "country", "company_size"],
)
ROLES = FeaturesConfig(
    behavioral=["visits", "minutes", "spend", "score", "plan", "tier", "level"],
    attitudinal=["nps"],
    demographic=["age", "region", "kids"],
)


def sample(rows: int = 300) -> pd.DataFrame:
    return generate_users(rows, seed=4)


def mixed(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Every kind of clustering column, with gaps: ints, floats, float32, nullable ints,
    numbers stored as text (whole numbers only in some rows), text categories with equally
    frequent values, ints mixed into categories."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "id": [f"u{i:05d}" for i in range(rows)],
            "visits": rng.poisson(6, rows),
            "minutes": rng.lognormal(2.0, 1.0, rows),
            "spend": rng.gamma(2.0, 30.0, rows).astype(np.float32),
            "score": pd.array(rng.integers(0, 11, rows), dtype="Int64"),
            "plan": np.array(["free", "pro", "team", "max"] * (rows // 4), dtype=object),
            "tier": rng.choice(np.array([1, 2, "gold", "silver", "bronze"], dtype=object), rows),
            "level": [str(v) for v in rng.integers(1, 6, rows)],
            "nps": rng.integers(0, 11, rows).astype(float),
            "age": rng.integers(18, 80, rows),
            "region": rng.choice(["north", "south"], rows),
            "kids": rng.integers(0, 3, rows),
        }
    )
    for col, share in (("minutes", 0.1), ("spend", 0.05), ("score", 0.08), ("nps", 0.04)):
        data.loc[rng.random(rows) < share, col] = np.nan if col != "score" else pd.NA
    for col in ("plan", "tier", "level"):
        data.loc[rng.random(rows) < 0.06, col] = None
    data["level"] = data["level"].astype(object)
    data.loc[rows - 7, "level"] = " 2.5 "  # a fraction among whole numbers, late
    return data


def quietly(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``fn()`` and the messages of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


def both(
    table: pd.DataFrame, roles: FeaturesConfig, **kw: Any
) -> tuple[FeatureFrame, FeatureFrame, FrameColumns]:
    columns = FrameColumns(table)
    memory, said = quietly(lambda: select_features(table, "id", roles, **kw))
    lazy, said_lazy = quietly(lambda: select_features_by_column(columns, "id", roles, **kw))
    assert said_lazy == said
    return memory, lazy, columns


def assert_same_frame(lazy: FeatureFrame, memory: FeatureFrame) -> None:
    assert isinstance(lazy.raw, LazyRaw)
    assert isinstance(memory.raw, pd.DataFrame)
    for name in [f.name for f in fields(FeatureFrame) if f.name not in ("ids", "raw")]:
        assert getattr(lazy, name) == getattr(memory, name), name
    pd.testing.assert_series_equal(lazy.ids, memory.ids)
    assert lazy.raw.columns == list(memory.raw.columns)
    assert len(lazy.raw) == len(memory.raw)
    for col in memory.raw.columns:
        assert col in lazy.raw
        pd.testing.assert_series_equal(lazy.raw[col], memory.raw[col])
    assert "id" not in lazy.raw


def lazy_raw(prepared: Prepared) -> LazyRaw:
    assert isinstance(prepared.frame.raw, LazyRaw)
    return prepared.frame.raw


def streamed_X(prepared: Prepared, batch: int = 97) -> np.ndarray:
    """The streamed run's matrix, transformed a batch of rows at a time."""
    raw = lazy_raw(prepared)
    blocks = [transform(prepared, rows) for rows in raw.batches(raw.columns, batch)]
    assert [len(b) for b in blocks[:-1]] == [batch] * (len(blocks) - 1)
    return np.vstack(blocks)


def assert_same_prepared(lazy: Prepared, memory: Prepared) -> None:
    assert lazy.columns == memory.columns
    assert lazy.imputed == memory.imputed
    assert lazy.rows_dropped == memory.rows_dropped
    assert lazy.X.shape == (0, len(memory.columns)) and lazy.X.dtype == np.float64
    assert_same_frame(lazy.frame, memory.frame)
    X = streamed_X(lazy)
    assert X.shape == memory.X.shape
    assert np.array_equal(X, memory.X)
    # Rows in any order and any grouping give the same rows, laid out as prepare's X (later
    # sums over them depend on the layout).
    raw = lazy_raw(lazy)
    picked = np.random.default_rng(0).permutation(len(raw))[:50]
    some = transform(lazy, raw.rows(picked, raw.columns))
    assert some.flags.c_contiguous and np.array_equal(some, memory.X[picked])
    # Single rows: a batch without gaps can read with other dtypes than the whole column.
    for row in picked[:10]:
        one = transform(lazy, raw.rows(np.array([row]), raw.columns))
        assert np.array_equal(one, memory.X[row : row + 1])


@pytest.fixture(params=["one fit", "by column"])
def fit_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Which way ``prepare`` fits the reference: whole (small tables) or column by column.
    Gives what each of prepare's column-by-column fits returned ([] for one fit)."""
    taken: list[bool] = []
    if request.param == "by column":
        monkeypatch.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", 60)
        real = apg.prepare.preprocessing._fit_by_column

        def spy(*args: Any) -> bool:
            taken.append(real(*args))
            return taken[-1]

        monkeypatch.setattr(apg.prepare.preprocessing, "_fit_by_column", spy)
    return taken


# --------------------------------------------------------------------------- roles


@pytest.mark.parametrize("make", [sample, mixed])
def test_frame_by_column_is_select_features_frame(make: Callable[[], pd.DataFrame]) -> None:
    table = make()
    roles = SAMPLE_ROLES if make is sample else ROLES
    memory, lazy, columns = both(table.rename(columns={"user_id": "id"}), roles)
    assert_same_frame(lazy, memory)
    if make is mixed:
        assert lazy.numeric_features == ["visits", "minutes", "spend", "score", "level", "nps"]
        assert lazy.categorical_features == ["plan", "tier"]
    # Each column was read as a whole; ids once, every other raw column once more for a
    # numbers-as-text dtype at most.
    assert columns.reads.count("id") == 1
    assert columns.fetched == []


def test_numbers_as_text_are_converted_alike_in_any_rows() -> None:
    table = mixed()
    memory, lazy, _ = both(table, ROLES)
    assert "level" in lazy.numeric_features
    assert memory.raw["level"].dtype == "Float64"
    assert isinstance(lazy.raw, LazyRaw) and isinstance(memory.raw, pd.DataFrame)
    # Rows without the fraction parse as Int64 on their own; they keep the column's dtype.
    rows = np.arange(20)
    got = lazy.raw.rows(rows, ["level", "plan"])
    pd.testing.assert_frame_equal(got, memory.raw[["level", "plan"]].iloc[rows])


def test_warnings_are_select_features_warnings_at_the_callers_line() -> None:
    table = mixed().assign(flat=7, gone=np.nan)
    roles = FeaturesConfig(
        behavioral=[*ROLES.behavioral, "flat", "gone"],
        attitudinal=ROLES.attitudinal,
        demographic=ROLES.demographic,
    )
    for select in (select_features, select_features_by_column):
        source = table if select is select_features else FrameColumns(table)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = select(source, "id", roles, degenerate="drop")  # type: ignore[arg-type]
        assert [str(w.message) for w in caught] == [
            "the data: column 'level' holds numbers stored as text; using them as numbers",
            "the data: dropped column 'flat': it is constant (7 in every row)",
            "the data: dropped column 'gone': it is entirely missing",
        ]
        assert {w.filename for w in caught} == {__file__}
        assert frame.dropped_columns == ["flat", "gone"]


def _junk(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(visits=t["visits"].astype(str).where(t.index != 5, "n/a").astype(object))


CASES: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "missing id": lambda t: t.rename(columns={"id": "user"}),
    "missing behavioral": lambda t: t.drop(columns=["minutes", "plan"]),
    "missing demographic": lambda t: t.drop(columns=["kids"]),
    "empty id": lambda t: t.assign(id=t["id"].where(t.index % 7 != 3)),
    "duplicate id": lambda t: t.assign(id=[f"u{i % 190}" for i in range(len(t))]),
    "too few rows": lambda t: t.iloc[:9],
    "entirely missing": lambda t: t.assign(minutes=np.nan),
    "constant": lambda t: t.assign(plan="pro"),
    "constant number": lambda t: t.assign(visits=3),
    "non-numeric text": _junk,
    "all dropped": lambda t: t.assign(flat=1.0, gone=np.nan),
}


@pytest.mark.parametrize("case", CASES)
def test_errors_are_select_features_errors_word_for_word(case: str) -> None:
    table = CASES[case](mixed())
    roles, degenerate = ROLES, "error"
    if case == "all dropped":
        roles, degenerate = FeaturesConfig(behavioral=["flat"], attitudinal=["gone"]), "drop"
    kw: dict[str, Any] = {"degenerate": degenerate, "origin": "users.parquet"}
    with pytest.raises(DataError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        select_features(table, "id", roles, **kw)
    message = str(info.value)
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        select_features_by_column(FrameColumns(table), "id", roles, **kw)


def test_subset_of_a_lazy_frame_combines_masks() -> None:
    memory, lazy, _ = both(mixed(), ROLES)
    rng = np.random.default_rng(5)
    for _ in range(2):  # a subset of a subset
        keep = rng.random(len(memory.ids)) < 0.7
        memory = memory.subset(pd.Series(keep))
        lazy = lazy.subset(list(keep))
        assert_same_frame(lazy, memory)
    assert isinstance(lazy.raw, LazyRaw) and isinstance(memory.raw, pd.DataFrame)
    picked = np.array([5, 0, len(lazy.raw) - 1, 5])
    pd.testing.assert_frame_equal(
        lazy.raw.rows(picked, ["tier", "spend"]),
        memory.raw[["tier", "spend"]].iloc[picked].reset_index(drop=True),
    )


# --------------------------------------------------------------------------- preprocessing

CONFIGS = [
    PreprocessingConfig(missing=missing, scaling=scaling)  # type: ignore[arg-type]
    for missing in ("impute_median", "impute_mean", "drop_rows")
    for scaling in ("standard", "minmax", "robust")
]


def prepared_pair(
    table: pd.DataFrame, roles: FeaturesConfig, config: PreprocessingConfig
) -> tuple[Prepared, Prepared, FrameColumns]:
    memory, lazy, columns = both(table, roles)
    columns.reads.clear()
    return prepare(memory, config), prepare_by_column(lazy, config), columns


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.missing}-{c.scaling}")
def test_streamed_transform_is_prepare_bit_for_bit(
    fit_path: list[bool], config: PreprocessingConfig
) -> None:
    memory, lazy, columns = prepared_pair(mixed(), ROLES, config)
    # One column at a time: the missing-value scan and the fit read each feature twice, and
    # no more rows were fetched at once than the structure fit needs.
    assert sorted(columns.reads) == sorted(memory.frame.features * 2)
    assert max(columns.fetched) < 30
    assert_same_prepared(lazy, memory)
    assert fit_path in ([], [True])  # prepare did not fall back to a plain fit


@pytest.mark.parametrize("config", CONFIGS[::2], ids=lambda c: f"{c.missing}-{c.scaling}")
def test_streamed_transform_of_sample_users(
    fit_path: list[bool], config: PreprocessingConfig
) -> None:
    table = sample(500).rename(columns={"user_id": "id"})
    memory, lazy, _ = prepared_pair(table, SAMPLE_ROLES, config)
    assert memory.imputed or memory.rows_dropped
    assert_same_prepared(lazy, memory)


def test_only_numeric_or_only_categorical_features(fit_path: list[bool]) -> None:
    table = mixed(seed=2)
    for behavioral in (["visits", "minutes", "spend"], ["plan", "tier"]):
        roles = FeaturesConfig(behavioral=behavioral, demographic=["age"])
        memory, lazy, _ = prepared_pair(table, roles, PreprocessingConfig())
        assert_same_prepared(lazy, memory)


def parquet_table(path: Path, rows: int = 360) -> None:
    """Written by pyarrow: small ints with gaps (float64 in pandas, but int16 in rows without
    a gap, which with float32 would transform in float32), float32, text categories and
    numbers as text, each with gaps."""
    rng = np.random.default_rng(7)
    gaps = rng.random((5, rows)) < 0.07
    visits = [None if gap else int(v) for v, gap in zip(rng.poisson(5, rows), gaps[0], strict=True)]
    spend = rng.gamma(2.0, 20.0, rows).astype(np.float32)
    plans = rng.choice(["free", "pro", "team"], rows)
    pq.write_table(
        pa.table(
            {
                "id": pa.array([f"u{i}" for i in range(rows)]),
                "visits": pa.array(visits, type=pa.int16()),
                "spend": pa.array(spend, mask=gaps[1]),
                "minutes": pa.array(rng.lognormal(1.0, 1.0, rows), mask=gaps[2]),
                "plan": pa.array(plans, mask=gaps[3]),
                "level": pa.array(rng.integers(1, 9, rows).astype(str), mask=gaps[4]),
                "age": pa.array(rng.integers(18, 70, rows)),
            }
        ),
        path,
        row_group_size=100,
    )


PARQUET_ROLES = {
    "all": FeaturesConfig(
        behavioral=["visits", "spend", "minutes", "plan", "level"], demographic=["age"]
    ),
    # Only float32 and small ints: a batch without gaps would convert to float32.
    "float32": FeaturesConfig(behavioral=["visits", "spend", "plan"], demographic=["age"]),
}


@pytest.mark.parametrize("roles", PARQUET_ROLES)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.missing}-{c.scaling}")
def test_streamed_parquet_is_whole_table_run(
    tmp_path: Path, fit_path: list[bool], config: PreprocessingConfig, roles: str
) -> None:
    path = tmp_path / "users.parquet"
    parquet_table(path)
    whole = pq.read_table(path).to_pandas()
    assert whole["visits"].dtype == np.float64
    features = PARQUET_ROLES[roles]
    memory, said = quietly(lambda: select_features(whole, "id", features))
    lazy, said_lazy = quietly(lambda: select_features_by_column(ParquetFile(path), "id", features))
    assert said_lazy == said
    assert ("level" in features.behavioral) == (
        said == ["the data: column 'level' holds numbers stored as text; using them as numbers"]
    )
    assert_same_frame(lazy, memory)
    assert_same_prepared(prepare_by_column(lazy, config), prepare(memory, config))
    assert fit_path in ([], [True])


def test_pca_is_refused_with_what_to_set() -> None:
    _, lazy, _ = both(mixed(), ROLES)
    message = (
        "preprocessing.pca is not supported for a streamed run yet: PCA needs the whole "
        "matrix; set preprocessing.pca: null or search.stream: off"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        prepare_by_column(lazy, PreprocessingConfig(pca=2))


def _no_complete_rows(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(minutes=t["minutes"].where(t.index < 10))


def _infinity(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(minutes=t["minutes"].where(t.index != 1, np.inf))


@pytest.mark.parametrize("change", [_no_complete_rows])
def test_prepare_errors_word_for_word(
    fit_path: list[bool], change: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    memory, lazy, _ = both(change(mixed()), ROLES)
    config = PreprocessingConfig(missing="drop_rows")
    with pytest.raises(DataError, match=r"complete row") as info:
        prepare(memory, config)
    with pytest.raises(DataError, match=f"^{re.escape(str(info.value))}$"):
        prepare_by_column(lazy, config)


def test_an_infinite_value_is_named_by_column_on_both_paths() -> None:
    table = _infinity(mixed())
    message = (
        "the data: column 'minutes' has 1 value(s) that are infinite or beyond ±1e+100 "
        "(e.g. inf), too large to scale; mark them missing or fix them"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        select_features(table, "id", ROLES)
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        select_features_by_column(FrameColumns(table), "id", ROLES)


def test_a_column_the_per_column_fit_cannot_take_is_named() -> None:
    """``prepare`` fits an all-missing column the plain way (scikit-learn drops it); a
    streamed run cannot, and says so. select_features never lets such a column through."""
    _, lazy, columns = both(mixed().assign(empty=np.nan), ROLES)
    dtypes = {"visits": np.dtype(np.int64), "empty": np.dtype(np.float64)}
    frame = replace(lazy, raw=LazyRaw(columns, dtypes), behavioral=list(dtypes), attitudinal=[])
    frame.numeric_features, frame.categorical_features = list(dtypes), []
    message = (
        "a streamed run cannot fit preprocessing one column at a time: column 'empty' is "
        "entirely missing; set search.stream: off"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        prepare_by_column(frame, PreprocessingConfig())


def test_row_major_table_is_matched_as_read_column_major() -> None:
    """A frame over one C-ordered array reaches scikit-learn row-major, so its sums add in
    another order; a streamed run stands for a table as readers build it, column-major."""
    rng = np.random.default_rng(3)
    values = rng.lognormal(0.0, 1.0, size=(400, 3))
    values[rng.random(values.shape) < 0.05] = np.nan
    table = pd.DataFrame(values, columns=["a", "b", "c"], copy=False)
    table.insert(0, "id", [f"u{i}" for i in range(400)])
    column_major = pd.DataFrame({c: table[c].to_numpy(copy=True) for c in table.columns})
    roles = FeaturesConfig(behavioral=["a", "b", "c"])
    _, lazy, _ = both(table, roles)
    streamed = prepare_by_column(lazy, PreprocessingConfig())
    reference = prepare(select_features(column_major, "id", roles), PreprocessingConfig())
    assert_same_prepared(streamed, reference)


def test_prepare_functions_refuse_the_other_kind_of_frame() -> None:
    memory, lazy, _ = both(mixed(), ROLES)
    with pytest.raises(TypeError, match="prepare_by_column"):
        prepare(lazy, PreprocessingConfig())
    with pytest.raises(TypeError, match="use prepare"):
        prepare_by_column(memory, PreprocessingConfig())


# --------------------------------------------------------------------------- property-based

_NUMBER = st.one_of(
    st.none(),
    st.sampled_from([0.0, 1.0, 2.5, -3.0, 1e-300, 7.25]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64),
)
_CATEGORY = st.sampled_from([None, "a", "b", "c", "d", "e", 1, "1"])  # 1 and "1": one category


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, FeaturesConfig, PreprocessingConfig]:
    rows = draw(st.integers(10, 40))
    n_num = draw(st.integers(0, 3))
    n_cat = draw(st.integers(0 if n_num else 1, 2))
    data: dict[str, Any] = {"id": [f"u{i}" for i in range(rows)]}
    for j in range(n_num):
        data[f"x{j}"] = pd.array(
            draw(st.lists(_NUMBER, min_size=rows, max_size=rows)), dtype="float64"
        ).to_numpy(dtype=np.float64, na_value=np.nan)
    for j in range(n_cat):
        data[f"c{j}"] = np.array(draw(st.lists(_CATEGORY, min_size=rows, max_size=rows)), object)
    config = PreprocessingConfig(
        missing=draw(st.sampled_from(["impute_median", "impute_mean", "drop_rows"])),
        scaling=draw(st.sampled_from(["standard", "minmax", "robust"])),
    )
    roles = FeaturesConfig(behavioral=[c for c in data if c != "id"])
    return pd.DataFrame(data), roles, config


def outcome(run: Callable[[], Prepared]) -> Prepared | str:
    try:
        return quietly(run)[0]
    except DataError as exc:
        return str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=frames(), by_column=st.booleans())
def test_random_frames_stream_to_prepares_matrix(
    case: tuple[pd.DataFrame, FeaturesConfig, PreprocessingConfig], by_column: bool
) -> None:
    table, roles, config = case
    threshold = 5 if by_column else 10**9
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", threshold)
        memory = outcome(lambda: prepare(select_features(table, "id", roles), config))
        lazy = outcome(
            lambda: prepare_by_column(
                select_features_by_column(FrameColumns(table), "id", roles), config
            )
        )
    if isinstance(memory, str) or isinstance(lazy, str):
        assert lazy == memory
        return
    assert lazy.columns == memory.columns
    assert lazy.imputed == memory.imputed and lazy.rows_dropped == memory.rows_dropped
    assert np.array_equal(streamed_X(lazy, batch=7), memory.X)
