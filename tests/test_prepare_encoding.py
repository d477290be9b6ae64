"""Two-valued columns as flags that cannot dominate distances, rare values warned about, and
redundant encoded columns dropped; the same whole, a column at a time and in the stored model."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

import apg.prepare.encoding
import apg.prepare.preprocessing
from apg.config import Config, FeaturesConfig, PreprocessingConfig, SearchConfig, parse_config
from apg.errors import DataError
from apg.pipeline import run
from apg.prepare.encoding import FLAG_VALUE, redundancy_rows
from apg.prepare.features import select_features, select_features_by_column
from apg.prepare.matrix import prepare_table
from apg.prepare.preprocessing import Prepared, prepare, prepare_by_column, transform
from apg.search.clusters import ClusterModel
from apg.search.leaderboard import run_search
from apg.search.model_io import StoredModel, from_fitted
from apg.sources.combine import SourceTable
from apg.sources.parquet_columns import StreamedTable

SQRT2 = np.sqrt(2.0)
SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


class Columns:
    """A table read one column at a time (``apg.prepare.features.Columns``)."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.names = [str(c) for c in table.columns]
        self.num_rows = len(table)

    def column(self, name: str) -> pd.Series:
        return self.table[name].reset_index(drop=True)

    def rows(self, indices: np.ndarray, columns: list[str]) -> pd.DataFrame:
        return self.table[columns].iloc[indices].reset_index(drop=True)


def quietly(fn: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


def prepared_of(
    table: pd.DataFrame, behavioral: list[str], config: PreprocessingConfig | None = None
) -> Prepared:
    config = config or PreprocessingConfig(transform="none")
    roles = FeaturesConfig(behavioral=behavioral)
    return prepare(select_features(table, "id", roles, preprocessing=config), config)


# --------------------------------------------------------------------------- flags


def flagged(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    complained = np.zeros(n)
    complained[rng.choice(n, n // 100, replace=False)] = 1
    data = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "spend": rng.gamma(2.0, 30.0, n),
            "complained": complained,
            "churned": np.where(rng.random(n) < 0.7, 1, 0),  # the rare value is 0
            "member": np.where(rng.random(n) < 0.5, "yes", "no"),
        }
    )
    data.loc[[4, 8], "complained"] = np.nan
    return data


def test_prepare_encoding_two_valued_numbers_become_flags_of_the_rarer_value() -> None:
    table = flagged()
    prepared = prepared_of(table, ["spend", "complained", "churned"])
    assert prepared.columns == ["spend", "complained_1", "churned_0"]
    spend = table[["spend"]].to_numpy()
    np.testing.assert_allclose(prepared.X[:, 0], StandardScaler().fit_transform(spend)[:, 0])
    # The rarer value is √2, the other 0; a missing value counts as the common one.
    expected = np.where(table["complained"] == 1, SQRT2, 0.0)
    assert np.array_equal(prepared.X[:, 1], expected)
    assert np.array_equal(prepared.X[:, 2], np.where(table["churned"] == 0, SQRT2, 0.0))
    assert FLAG_VALUE == SQRT2
    assert prepared.binary == [
        {"column": "complained", "value": "1", "users": 5, "share": 0.01},
        {
            "column": "churned",
            "value": "0",
            "users": int((table["churned"] == 0).sum()),
            "share": round(float((table["churned"] == 0).mean()), 6),
        },
    ]
    assert prepared.imputed == {"complained": 2}


def test_prepare_encoding_a_tie_flags_the_larger_value() -> None:
    table = pd.DataFrame({"id": range(10), "x": [3, 7] * 5, "y": np.arange(10.0)})
    prepared = prepared_of(table, ["x", "y"])
    assert prepared.columns == ["y", "x_7"]  # numbers, then flags, then one-hot columns
    assert np.array_equal(prepared.X[:, 1], np.where(table["x"] == 7, SQRT2, 0.0))


@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust"])
def test_prepare_encoding_a_flag_weighs_what_the_same_values_as_text_weigh(scaling: str) -> None:
    """0/1 numbers and yes/no text put users the same distance apart under any scaler; the
    text stays one-hot (two columns 0/1), the numbers are one flag."""
    table = flagged()
    table["member_01"] = (table["member"] == "yes").astype(int)
    config = PreprocessingConfig(transform="none", scaling=scaling)  # type: ignore[arg-type]
    as_text = prepared_of(table, ["spend", "member"], config)
    as_number = prepared_of(table, ["spend", "member_01"], config)
    assert as_text.columns == ["spend", "member_no", "member_yes"]
    counts = table["member_01"].value_counts()
    rare = counts.idxmin() if counts.min() < counts.max() else counts.index.max()
    assert as_number.columns == ["spend", f"member_01_{rare}"]
    np.testing.assert_allclose(pdist(as_number.X), pdist(as_text.X), rtol=0, atol=1e-12)
    scaled = SCALERS[scaling]().fit_transform(table[["spend"]])[:, 0]
    np.testing.assert_allclose(as_number.X[:, 0], scaled, rtol=0, atol=1e-12)


def test_prepare_encoding_rare_values_are_warned_about_with_min_cluster_share() -> None:
    table = flagged()
    table.loc[table.index[:3], "member"] = "maybe"  # three values: not two-valued
    table["vip"] = np.where(np.arange(len(table)) < 7, "yes", "no")
    config = PreprocessingConfig(transform="none")
    frame = select_features(table, "id", FeaturesConfig(behavioral=["spend", "complained", "vip"]))
    with pytest.warns(UserWarning) as caught:
        prepared = prepare(frame, config, min_cluster_share=0.02)
    assert [str(w.message) for w in caught] == [
        "column 'complained': its rarer value '1' covers 5 user(s) (1.0%), fewer than "
        "search.min_cluster_share (2%): too few for a persona of their own. It stays a "
        "feature, its two values √2 apart, so it cannot dominate distances",
        "column 'vip': its rarer value 'yes' covers 7 user(s) (1.4%), fewer than "
        "search.min_cluster_share (2%): too few for a persona of their own. It stays a "
        "feature, its two values √2 apart, so it cannot dominate distances",
    ]
    assert {w.filename for w in caught} == {__file__}
    assert prepared.columns == ["spend", "complained_1", "vip_no", "vip_yes"]
    # Above the share, or without one, nothing is said.
    _, said = quietly(lambda: prepare(frame, config, min_cluster_share=0.01))
    assert said == []
    _, said = quietly(lambda: prepare(frame, config))
    assert said == []


def three_blobs_and_a_rare_flag(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three planted segments in three numbers; a 1% flag drawn independently of them."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    X = centres[segment] + rng.normal(0.0, 1.0, (n, 3))
    flag = np.zeros(n)
    flag[rng.choice(n, n // 100, replace=False)] = 1.0
    table = pd.DataFrame({"id": range(n), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    return table.assign(complained=flag), segment


def flag_majority_clusters(labels: np.ndarray, flag: np.ndarray) -> list[tuple[int, int]]:
    """(size, flagged members) of each cluster where flagged users are the majority."""
    out = []
    for k in np.unique(labels[labels >= 0]):
        members = labels == k
        if flag[members].mean() >= 0.5:
            out.append((int(members.sum()), int(flag[members].sum())))
    return out


def test_prepare_encoding_a_one_percent_flag_no_longer_forms_its_own_cluster() -> None:
    table, segment = three_blobs_and_a_rare_flag()
    flag = table["complained"].to_numpy()
    assert flag.sum() == 20
    prepared = prepared_of(table, ["a", "b", "c", "complained"])
    cfg = SearchConfig(kmeans={"k": [2, 8]}, agglomerative={"k": [2, 8]})  # type: ignore[arg-type]
    # The old encoding, standardised: the 20 flagged users are ~10 units from everyone.
    standardised = prepared.X.copy()
    standardised[:, 3] = StandardScaler().fit_transform(flag[:, None])[:, 0]
    assert standardised[flag == 1, 3].min() > 9.9
    before = run_search(standardised, cfg)
    isolated = [
        c for c in before.candidates if flag_majority_clusters(c.labels, flag) == [(20, 20)]
    ]
    assert {c.params["k"] for c in isolated if c.algorithm == "kmeans"} == set(range(3, 9))
    # As a flag: no candidate of any algorithm makes the flagged users (or most of them) a
    # cluster, the planted segments win, and each persona has about everyone's 1%.
    after = run_search(prepared.X, cfg)
    for c in after.candidates:
        assert all(flagged <= 10 for _, flagged in flag_majority_clusters(c.labels, flag)), c
    assert sum(c.eligible for c in after.candidates) > sum(c.eligible for c in before.candidates)
    assert after.winner.n_clusters == 3 and adjusted_rand_score(segment, after.labels) > 0.85
    numbers_only = run_search(prepared.X[:, :3], cfg)  # the same search without the flag
    assert adjusted_rand_score(numbers_only.labels, after.labels) > 0.95
    shares = pd.Series(flag).groupby(after.labels).mean()
    assert len(shares) == 3 and shares.max() < 0.02


# --------------------------------------------------------------------------- redundancy

SERVICES = ["OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV"]


def telecom(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """ "No internet service" repeated in five service columns, as in telecom churn tables."""
    rng = np.random.default_rng(seed)
    internet = rng.choice(["DSL", "Fiber optic", "No"], n, p=[0.35, 0.45, 0.2])
    table = pd.DataFrame(
        {"id": range(n), "tenure": rng.integers(0, 72, n), "InternetService": internet}
    )
    for service in SERVICES:
        yes_no = rng.choice(["Yes", "No"], n)
        table[service] = np.where(internet == "No", "No internet service", yes_no)
    return table


def test_prepare_encoding_one_fact_in_six_columns_is_clustered_once() -> None:
    table = telecom()
    roles = ["tenure", "InternetService", *SERVICES]
    frame = select_features(table, "id", FeaturesConfig(behavioral=roles))
    with pytest.warns(UserWarning) as caught:
        prepared = prepare(frame, PreprocessingConfig(transform="none"))
    repeats = ", ".join(f"'{s}_No internet service' (r = 1.000)" for s in SERVICES)
    assert [str(w.message) for w in caught] == [
        f"clustering column(s) {repeats} repeat 'InternetService_No' (|r| >= 0.98 after "
        "encoding): dropped from the matrix, 'InternetService_No' kept, so one fact is not "
        "counted 6 times; set preprocessing.redundancy_threshold to change"
    ]
    # Independently: one-hot with pandas, Pearson r with numpy, drop the repeats.
    dummies = pd.get_dummies(table[roles[1:]], dtype=float)
    tenure = StandardScaler().fit_transform(table[["tenure"]])
    everything = np.column_stack([tenure, dummies.to_numpy()])
    names = ["tenure", *dummies.columns]
    r = np.corrcoef(everything, rowvar=False)
    kept_idx = names.index("InternetService_No")
    dropped = [f"{s}_No internet service" for s in SERVICES]
    assert all(r[kept_idx, names.index(d)] > 0.999 for d in dropped)
    assert prepared.redundant == [
        {"column": d, "kept": "InternetService_No", "r": 1.0} for d in dropped
    ]
    keep = [j for j, name in enumerate(names) if name not in dropped]
    assert prepared.columns == [names[j] for j in keep]
    np.testing.assert_allclose(prepared.X, everything[:, keep], rtol=0, atol=1e-12)
    # The one-hot columns of one column (Yes and No among internet users) are not compared.
    assert all(f"{s}_Yes" in prepared.columns and f"{s}_No" in prepared.columns for s in SERVICES)
    # Profiles still see every source column.
    assert prepared.frame.categorical_features == roles[1:]


def correlated(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return pd.DataFrame(
        {
            "id": range(n),
            "x": x,
            "near": -3.0 * x + rng.normal(0, 0.1, n),  # r about -0.999
            "close": x + rng.normal(0, 0.33, n),  # r about 0.95
            "other": rng.normal(0, 1, n),
        }
    )


def test_prepare_encoding_one_fact_in_six_columns_is_said_once_in_the_persona_text() -> None:
    """Six service columns say "No internet service" exactly when InternetService is "No": the
    matrix keeps one indicator, and the personas' names, summaries, goals and frustrations say
    the fact once, through InternetService, not once per column."""
    services = [*SERVICES, "StreamingMovies"]
    rng = np.random.default_rng(1)
    table = telecom(800, seed=1)
    table["StreamingMovies"] = np.where(
        table["InternetService"] == "No", "No internet service", rng.choice(["Yes", "No"], 800)
    )
    # Independently: the six indicators are one column (pandas), InternetService == "No".
    no_internet = (table["InternetService"] == "No").to_numpy()
    for s in services:
        assert ((table[s] == "No internet service").to_numpy() == no_internet).all()
    config = Config(
        sources=[{"kind": "file", "path": "users.csv"}],
        id_column="id",
        features={"behavioral": ["tenure", "InternetService", *services]},
        preprocessing={"transform": "none"},
        search={"kmeans": {"k": [2, 3], "n_init": 2}, "agglomerative": None, "dbscan": None},
    )
    with pytest.warns(UserWarning, match="repeat 'InternetService_No'"):
        result = run(config, table=SourceTable(frame=table, labels=["users.csv"]))
    matrix = result.prepared.columns
    assert "InternetService_No" in matrix
    assert not [c for c in matrix if c.endswith("_No internet service")]
    assert [r["kept"] for r in result.prepared.redundant] == ["InternetService_No"] * 6
    # The persona that is the users without internet (the search finds them: 1 SD apart).
    groups = pd.Series(no_internet).groupby(result.labels).mean()
    assert groups.max() == 1.0
    for p in result.personas:
        repeated = [c for c in p.category_contrasts if c.value == "No internet service"]
        assert repeated == []
        n = p.narrative
        assert n is not None
        text = " ".join(
            [n.name, n.tagline or "", n.summary] + [i.text for i in (*n.goals, *n.frustrations)]
        ).casefold()
        # The fact, never through the service columns, and at most once in the summary.
        assert "no internet service" not in text
        assert n.summary.casefold().count('internet service "no"') <= 1


def test_prepare_encoding_near_duplicates_by_the_threshold() -> None:
    table = correlated()
    r = table[["x", "near", "close", "other"]].corr()
    assert r.loc["x", "near"] < -0.98 and 0.9 < r.loc["x", "close"] < 0.98
    cols = ["x", "near", "close", "other"]
    prepared, said = quietly(lambda: prepared_of(table, cols))
    assert prepared.columns == ["x", "close", "other"]
    assert prepared.redundant == [
        {"column": "near", "kept": "x", "r": round(float(r.loc["x", "near"]), 4)}
    ]
    shown = round(r.loc["x", "near"], 4)
    assert said == [
        f"clustering column(s) 'near' (r = {shown:.3f}) repeat 'x' (|r| >= 0.98 "
        "after encoding): dropped from the matrix, 'x' kept, so one fact is not counted 2 "
        "times; set preprocessing.redundancy_threshold to change"
    ]
    lower = PreprocessingConfig(transform="none", redundancy_threshold=0.9)
    prepared, _ = quietly(lambda: prepared_of(table, cols, lower))
    assert prepared.columns == ["x", "other"]
    off = PreprocessingConfig(transform="none", redundancy_threshold=None)
    prepared, said = quietly(lambda: prepared_of(table, cols, off))
    assert prepared.columns == cols and prepared.redundant == [] and said == []
    assert "redundant" not in prepared.transformer.named_steps


def test_prepare_encoding_redundant_columns_are_dropped_before_pca() -> None:
    table = correlated()
    config = PreprocessingConfig(transform="none", pca=2)
    cols = ["x", "near", "close", "other"]
    prepared, _ = quietly(lambda: prepared_of(table, cols, config))
    kept = StandardScaler().fit_transform(table[["x", "close", "other"]])
    expected = PCA(n_components=2, random_state=0).fit(kept)
    assert prepared.columns == ["pc1", "pc2"]
    assert prepared.pca_variance == [float(v) for v in expected.explained_variance_ratio_]
    np.testing.assert_allclose(
        np.abs(prepared.X), np.abs(expected.transform(kept)), rtol=0, atol=1e-10
    )
    model = model_of(prepared)
    np.testing.assert_allclose(model.transform(table), prepared.X, rtol=0, atol=1e-10)


def test_prepare_encoding_redundancy_is_measured_on_a_seeded_sample_of_large_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(apg.prepare.encoding, "REDUNDANCY_ROWS", 100)
    rows = redundancy_rows(400, seed=3)
    assert len(rows) == 100 and np.array_equal(rows, np.unique(rows))
    assert np.array_equal(rows, redundancy_rows(400, seed=3))
    assert np.array_equal(redundancy_rows(80, seed=3), np.arange(80))
    # "twin" equals x on the sampled rows only: r = 1 there, lower on every row.
    table = correlated()
    monkeypatch.setattr(apg.prepare.preprocessing, "redundancy_rows", lambda n, seed: rows)
    other = np.setdiff1d(np.arange(400), rows)
    twin = table["x"].to_numpy().copy()
    twin[other] = np.random.default_rng(0).normal(0, 1, len(other))
    table["twin"] = twin
    assert table["x"].corr(table["twin"]) < 0.5
    prepared, _ = quietly(lambda: prepared_of(table, ["x", "twin", "other"]))
    assert prepared.columns == ["x", "other"]


# --------------------------------------------------------------------------- whole, streamed, model


def everything(n: int = 400, seed: int = 2) -> pd.DataFrame:
    """Flags with gaps, two-valued text, a repeated fact, a near copy, a date, a category."""
    table = telecom(n, seed).drop(columns=["TechSupport", "StreamingTV"])
    rng = np.random.default_rng(seed)
    table["complained"] = np.where(rng.random(n) < 0.03, 1.0, 0.0)
    table.loc[rng.random(n) < 0.05, "complained"] = np.nan
    table["paperless"] = np.where(rng.random(n) < 0.4, "Yes", "No")
    table["spend"] = rng.gamma(2.0, 30.0, n)
    table["spend_cents"] = table["spend"] * 100 + rng.normal(0, 1, n)
    signup = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    table["signup"] = [d.strftime("%d/%m/%Y") for d in signup]
    return table


ALL = [
    "tenure",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "complained",
    "paperless",
    "spend",
    "spend_cents",
    "signup",
]


def pair(
    table: pd.DataFrame, config: PreprocessingConfig, roles: list[str] = ALL
) -> tuple[Prepared, Prepared, list[str]]:
    features = FeaturesConfig(behavioral=roles)
    memory, said = quietly(
        lambda: prepare(
            select_features(table, "id", features, preprocessing=config),
            config,
            min_cluster_share=0.05,
        )
    )
    lazy, said_lazy = quietly(
        lambda: prepare_by_column(
            select_features_by_column(Columns(table), "id", features, preprocessing=config),
            config,
            min_cluster_share=0.05,
        )
    )
    assert said_lazy == said
    return memory, lazy, said


def streamed_X(prepared: Prepared, batch: int = 53) -> np.ndarray:
    raw = prepared.frame.raw
    return np.vstack([transform(prepared, b) for b in raw.batches(raw.columns, batch)])  # type: ignore[union-attr]


@pytest.mark.parametrize("missing", ["impute_median", "drop_rows"])
@pytest.mark.parametrize("scaling", ["standard", "robust"])
@pytest.mark.parametrize("by_column", [False, True])
def test_prepare_encoding_a_column_at_a_time_is_the_whole_tables_to_the_bit(
    monkeypatch: pytest.MonkeyPatch, missing: str, scaling: str, by_column: bool
) -> None:
    if by_column:
        monkeypatch.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", 70)
    monkeypatch.setattr(apg.prepare.encoding, "REDUNDANCY_ROWS", 150)  # a sample decides
    config = PreprocessingConfig(missing=missing, scaling=scaling)  # type: ignore[arg-type]
    memory, lazy, said = pair(everything(), config)
    assert len(said) == 4  # the date, the repeated fact, the near copy, the rare complaint
    assert lazy.columns == memory.columns
    assert "spend_cents" not in memory.columns and "complained_1" in memory.columns
    assert [r["column"] for r in memory.redundant] == [
        "spend_cents",
        "OnlineSecurity_No internet service",
        "OnlineBackup_No internet service",
        "DeviceProtection_No internet service",
    ]
    for name in ("redundant", "binary", "dates", "transforms", "imputed", "rows_dropped"):
        assert getattr(lazy, name) == getattr(memory, name), name
    assert np.array_equal(streamed_X(lazy), memory.X)


def model_of(prepared: Prepared, X: np.ndarray | None = None) -> StoredModel:
    """The stored model of a run with two clusters split on its first column; ``X``: the
    matrix of a streamed run (which does not hold one)."""
    X = prepared.X if X is None else X
    labels = (X[:, 0] > np.median(X[:, 0])).astype(np.intp)
    cluster = ClusterModel.from_fit("kmeans", X, labels)
    model = from_fitted(prepared.transformer, cluster, "kmeans", {"k": 2}, X, labels)
    return StoredModel.from_json(model.to_json())


def test_prepare_encoding_stored_model_applies_flags_dates_and_drops() -> None:
    table = everything()
    memory, lazy, _ = pair(table, PreprocessingConfig())
    model = model_of(memory)
    doc = json.loads(model.to_json())["preprocessing"]
    assert doc["binary"] == ["complained"]
    assert len(doc["drop"]) == 4 and doc["dates"]["signup"]["format"] == "%d/%m/%Y"
    # The run's own raw rows give the run's matrix, whole or streamed.
    np.testing.assert_allclose(model.transform(table), memory.X, rtol=0, atol=1e-12)
    assert np.array_equal(model_of(lazy, memory.X).transform(table), model.transform(table))
    # New users: a flag value never seen and missing values count as the common value.
    new = everything(50, seed=7)
    new.loc[0:3, "complained"] = [7.0, np.nan, 1.0, 0.0]
    got = model.transform(new)
    flag = memory.columns.index("complained_1")
    assert list(got[0:4, flag]) == [0.0, 0.0, SQRT2, 0.0]


def test_prepare_encoding_models_without_flags_stay_format_1_and_old_ones_load() -> None:
    table = correlated().drop(columns=["near"])
    prepared = prepared_of(table, ["x", "close", "other"])
    model = model_of(prepared)
    doc = json.loads(model.to_json())
    assert doc["format"] == 1 and "binary" not in doc["preprocessing"]
    assert np.array_equal(StoredModel.from_dict(doc).transform(table), model.transform(table))
    with pytest.raises(Exception, match=re.escape("(expects 1 or 2); upgrade apg")):
        StoredModel.from_dict({**doc, "format": 3})


def test_prepare_encoding_the_run_passes_min_cluster_share_and_settings() -> None:
    table, _ = three_blobs_and_a_rare_flag(400)
    table["joined"] = [f"{1 + i % 28:02d}-0{1 + i % 9}-2021" for i in range(400)]
    config = Config(
        sources=[{"kind": "file", "path": "users.csv"}],
        id_column="id",
        features={"behavioral": ["a", "b", "complained", "joined"]},
        preprocessing={"transform": "none", "reference_date": "2022-01-01"},
        search={"min_cluster_share": 0.05},
    )
    source = SourceTable(frame=table, labels=["users.csv"])
    with pytest.warns(UserWarning) as caught:
        prepared = prepare_table(source, config)
    assert [str(w.message) for w in caught] == [
        "users.csv: column 'joined' holds dates, read as %d-%m-%Y; clustered as days before "
        "2022-01-01 (preprocessing.reference_date)",
        "column 'complained': its rarer value '1' covers 4 user(s) (1.0%), fewer than "
        "search.min_cluster_share (5%): too few for a persona of their own. It stays a "
        "feature, its two values √2 apart, so it cannot dominate distances",
    ]
    assert prepared.columns == ["a", "b", "joined", "complained_1"]


# --------------------------------------------------------------------------- properties

_CELL = st.one_of(st.none(), st.sampled_from([0.0, 1.0]))
_TEXT = st.one_of(st.none(), st.sampled_from(["yes", "no"]))


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, list[str], PreprocessingConfig]:
    """Flags, two-valued text, numbers and copies of columns, with gaps."""
    rows = draw(st.integers(12, 60))
    data: dict[str, Any] = {"id": [f"u{i}" for i in range(rows)]}
    for j in range(draw(st.integers(0, 3))):
        data[f"f{j}"] = np.array(draw(st.lists(_CELL, min_size=rows, max_size=rows)), dtype=float)
    for j in range(draw(st.integers(0, 2))):
        data[f"t{j}"] = np.array(draw(st.lists(_TEXT, min_size=rows, max_size=rows)), object)
    numbers = st.floats(-1e3, 1e3, allow_nan=False)
    for j in range(draw(st.integers(1, 2))):
        data[f"x{j}"] = np.array(draw(st.lists(numbers, min_size=rows, max_size=rows)))
    names = [c for c in data if c != "id"]
    for j, source in enumerate(draw(st.lists(st.sampled_from(names), max_size=2))):
        data[f"copy{j}"] = data[source]  # a repeat of another column
    config = PreprocessingConfig(
        missing=draw(st.sampled_from(["impute_median", "impute_mean", "drop_rows"])),
        scaling=draw(st.sampled_from(["standard", "minmax", "robust"])),
        transform="none",
    )
    return pd.DataFrame(data), [c for c in data if c != "id"], config


def attempt(fn: Any) -> Any:
    try:
        return quietly(fn)
    except DataError as exc:
        return str(exc)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tables())
def test_prepare_encoding_random_tables_stream_and_store_alike(
    case: tuple[pd.DataFrame, list[str], PreprocessingConfig],
) -> None:
    table, roles, config = case
    features = FeaturesConfig(behavioral=roles)
    memory = attempt(
        lambda: prepare(
            select_features(table, "id", features, degenerate="drop"),
            config,
            min_cluster_share=0.1,
        )
    )
    lazy = attempt(
        lambda: prepare_by_column(
            select_features_by_column(Columns(table), "id", features, degenerate="drop"),
            config,
            min_cluster_share=0.1,
        )
    )
    if isinstance(memory, str) or isinstance(lazy, str):
        assert lazy == memory
        return
    (memory, said), (lazy, said_lazy) = memory, lazy
    assert said_lazy == said
    assert lazy.columns == memory.columns and lazy.redundant == memory.redundant
    assert np.array_equal(streamed_X(lazy, batch=7), memory.X)
    # No two kept columns of different table columns are repeats.
    sources = {c: c if c in roles else c.rsplit("_", 1)[0] for c in memory.columns}
    if len(memory.X) > 1 and memory.X.shape[1] > 1:
        # A column of near-zero values (1e-185) has a variance that underflows: its r is NaN,
        # which the check below skips, not an error.
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.atleast_2d(np.corrcoef(memory.X, rowvar=False))
        for i, a in enumerate(memory.columns):
            for j, b in enumerate(memory.columns[:i]):
                if sources[a] != sources[b] and np.isfinite(r[i, j]):
                    assert abs(r[i, j]) < 0.98 + 1e-9, (a, b)
    # Numeric flags hold 0 or √2; one-hot columns 0 or 1.
    for j, name in enumerate(memory.columns):
        source = sources[name]
        if source in memory.frame.binary and source in memory.frame.numeric_features:
            assert set(np.unique(memory.X[:, j])) <= {0.0, SQRT2}
        elif source in memory.frame.categorical_features:
            assert set(np.unique(memory.X[:, j])) <= {0.0, 1.0}
    model = model_of(memory)
    np.testing.assert_allclose(model.transform(memory.frame.raw), memory.X, rtol=1e-9, atol=1e-9)


def test_prepare_encoding_a_streamed_parquet_run_is_the_whole_run(tmp_path: Path) -> None:
    """The whole pipeline on a Parquet table with a text date, flags, two-valued text and
    repeated facts: streamed (a column or a batch at a time) as read whole, to the bit."""
    path = tmp_path / "users.parquet"
    table = everything(900, seed=4)
    table["id"] = [f"u{i:04d}" for i in range(len(table))]
    table.to_parquet(path, index=False, row_group_size=200)
    config = parse_config(
        {
            "sources": [{"kind": "file", "path": path.name}],
            "id_column": "id",
            "features": {"behavioral": ALL},
            "search": {"agglomerative": None, "dbscan": None, "kmeans": {"k": [2, 4]}},
            "narration": {"client": "offline"},
        },
        "test",
        base_dir=tmp_path,
    )
    results = {}
    for stream in ("off", "on"):
        config.search.stream = stream
        results[stream], said = quietly(lambda: run(config))
        assert any("holds dates, read as %d/%m/%Y" in m for m in said)
    whole, streamed = results["off"], results["on"]
    assert isinstance(streamed.table, StreamedTable) and not isinstance(whole.table, StreamedTable)
    for name in ("columns", "redundant", "binary", "dates", "imputed"):
        assert getattr(streamed.prepared, name) == getattr(whole.prepared, name), name
    assert "complained_1" in whole.prepared.columns and len(whole.prepared.redundant) == 4
    np.testing.assert_array_equal(streamed.labels, whole.labels)
    assert [p.model_dump() for p in streamed.personas] == [p.model_dump() for p in whole.personas]
