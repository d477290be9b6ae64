"""Per-cluster profiles, each number recomputed with pandas / numpy from the raw table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances
from threadpoolctl import threadpool_limits

from apg.config import FeaturesConfig, PreprocessingConfig
from apg.prepare.features import FeatureFrame, select_features
from apg.prepare.preprocessing import Prepared, prepare
from apg.profiles.persona import N_REPRESENTATIVES, build_profiles

BEHAVIORAL = ["logins_per_month", "avg_session_minutes", "avg_order_value", "occupation"]
ATTITUDINAL = ["nps", "satisfaction"]
DEMOGRAPHIC = ["age", "gender", "country"]
NUMERIC = ["logins_per_month", "avg_session_minutes", "avg_order_value", "nps", "satisfaction"]


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    from apg.sources.sample import generate_users

    data = generate_users(360, seed=11)
    data.loc[[5, 17, 40], "gender"] = None  # some missing categorical demographics
    return data


@pytest.fixture(scope="module")
def prepared(users: pd.DataFrame) -> Prepared:
    roles = FeaturesConfig(behavioral=BEHAVIORAL, attitudinal=ATTITUDINAL, demographic=DEMOGRAPHIC)
    return prepare(select_features(users, "user_id", roles), PreprocessingConfig())


@pytest.fixture(scope="module")
def labels(prepared: Prepared) -> np.ndarray:
    with threadpool_limits(1):
        out = KMeans(n_clusters=4, n_init=3, random_state=0).fit_predict(prepared.X)
    out = out.astype(np.intp)
    out[np.arange(0, len(out), 37)] = -1  # some noise, as DBSCAN leaves
    return out


@pytest.fixture(scope="module")
def built(prepared: Prepared, labels: np.ndarray) -> tuple[list, object]:
    return build_profiles(prepared.frame, prepared.X, labels)


def joined(users: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    return users.assign(cluster=labels)


def test_build_profiles_sizes_shares_and_order(
    built: tuple[list, object], users: pd.DataFrame, labels: np.ndarray
) -> None:
    personas, outliers = built
    counts = pd.Series(labels[labels >= 0]).value_counts()
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(p.cluster, p.size) for p in personas] == [(int(c), int(n)) for c, n in expected]
    assert [p.persona_id for p in personas] == [f"P{i}" for i in range(1, len(expected) + 1)]
    for p in personas:
        assert p.share == pytest.approx(p.size / len(users))
    assert sum(p.size for p in personas) == len(users) - int((labels == -1).sum())
    assert outliers.size == int((labels == -1).sum())
    assert sum(p.share for p in personas) + outliers.share == pytest.approx(1.0)


def test_build_profiles_centroids_equal_pandas_group_means(
    built: tuple[list, object], users: pd.DataFrame, labels: np.ndarray
) -> None:
    personas, _ = built
    means = joined(users, labels).groupby("cluster")[NUMERIC].mean()
    assert users[NUMERIC].isna().any().any()  # missing values must be ignored, not imputed
    for p in personas:
        assert set(p.centroid) == set(NUMERIC)
        for col in NUMERIC:
            assert p.centroid[col] == pytest.approx(means.loc[p.cluster, col], rel=1e-12), col


def test_build_profiles_contrasts_are_standardized_differences_sorted_by_size(
    built: tuple[list, object], users: pd.DataFrame, labels: np.ndarray
) -> None:
    personas, _ = built
    data = joined(users, labels)
    pop_mean = users[NUMERIC].mean()
    pop_std = users[NUMERIC].std(ddof=1)
    for p in personas:
        members = data[data["cluster"] == p.cluster]
        assert [c.feature for c in p.contrasts] == sorted(
            NUMERIC, key=lambda f: -abs((members[f].mean() - pop_mean[f]) / pop_std[f])
        )
        magnitudes = [abs(c.std_diff) for c in p.contrasts]
        assert magnitudes == sorted(magnitudes, reverse=True)
        for c in p.contrasts:
            assert c.cluster_mean == pytest.approx(members[c.feature].mean())
            assert c.population_mean == pytest.approx(pop_mean[c.feature])
            diff = (members[c.feature].mean() - pop_mean[c.feature]) / pop_std[c.feature]
            assert c.std_diff == pytest.approx(diff)
            assert c.direction == ("higher" if diff > 0 else "lower")
            assert c.role == ("attitudinal" if c.feature in ATTITUDINAL else "behavioral")


def test_build_profiles_categorical_demographics_equal_crosstab(
    built: tuple[list, object], users: pd.DataFrame, labels: np.ndarray
) -> None:
    personas, _ = built
    data = joined(users, labels)
    for col in ("gender", "country"):
        values = data[col].astype(object).where(data[col].notna(), "(missing)")
        table = pd.crosstab(data["cluster"], values)
        population = values.value_counts(normalize=True)
        for p in personas:
            demo = p.demographics[col]
            assert demo.kind == "categorical"
            assert demo.missing == int(data.loc[data["cluster"] == p.cluster, col].isna().sum())
            row = table.loc[p.cluster]
            row = row[row > 0]
            got = {c.value: c for c in demo.categories}
            assert set(got) == set(row.index)
            for value, count in row.items():
                share = count / row.sum()
                assert got[value].count == count
                assert got[value].share == pytest.approx(share)
                assert got[value].population_share == pytest.approx(population[value])
                assert got[value].lift == pytest.approx(share / population[value])
            assert [c.count for c in demo.categories] == sorted(row.values, reverse=True)


def test_build_profiles_numeric_demographics_equal_pandas_summaries(
    built: tuple[list, object], users: pd.DataFrame, labels: np.ndarray
) -> None:
    personas, _ = built
    data = joined(users, labels)
    age = users["age"].dropna().to_numpy()
    for p in personas:
        demo = p.demographics["age"]
        members = data.loc[data["cluster"] == p.cluster, "age"]
        assert demo.kind == "numeric"
        assert demo.missing == int(members.isna().sum())
        m = members.dropna().to_numpy()
        assert demo.cluster is not None and demo.population is not None
        assert demo.cluster.mean == pytest.approx(m.mean())
        assert demo.cluster.median == pytest.approx(np.median(m))
        assert demo.cluster.q1 == pytest.approx(np.percentile(m, 25))
        assert demo.cluster.q3 == pytest.approx(np.percentile(m, 75))
        assert demo.population.mean == pytest.approx(age.mean())
        assert demo.population.median == pytest.approx(np.median(age))


def test_build_profiles_categorical_feature_shares(
    built: tuple[list, object], users: pd.DataFrame, labels: np.ndarray
) -> None:
    personas, _ = built
    data = joined(users, labels)
    data["occupation"] = (
        data["occupation"].astype(object).where(data["occupation"].notna(), "(missing)")
    )
    shares = pd.crosstab(data["cluster"], data["occupation"], normalize="index")
    for p in personas:
        got = p.categories["occupation"]
        expected = shares.loc[p.cluster]
        expected = expected[expected > 0]
        assert set(got) == set(expected.index)
        for value, share in expected.items():
            assert got[value] == pytest.approx(share)
        assert "occupation" not in p.centroid


def test_build_profiles_representatives_are_nearest_the_centre(
    built: tuple[list, object], prepared: Prepared, users: pd.DataFrame, labels: np.ndarray
) -> None:
    personas, _ = built
    ids = users["user_id"].to_numpy()
    for p in personas:
        members = np.flatnonzero(labels == p.cluster)
        centre = prepared.X[members].mean(axis=0, keepdims=True)
        dist = pairwise_distances(prepared.X[members], centre).ravel()
        order = np.argsort(dist, kind="stable")[:N_REPRESENTATIVES]
        assert p.representatives == [str(i) for i in ids[members[order]]]
        assert len(p.representatives) == N_REPRESENTATIVES


def test_build_profiles_outliers_profile_the_noise(
    built: tuple[list, object], users: pd.DataFrame, labels: np.ndarray
) -> None:
    _, outliers = built
    noise = labels == -1
    assert outliers.size == int(noise.sum())
    assert outliers.share == pytest.approx(noise.mean())
    pop_mean, pop_std = users[NUMERIC].mean(), users[NUMERIC].std(ddof=1)
    got = {c.feature: c.std_diff for c in outliers.contrasts}
    for col in NUMERIC:
        expected = (users.loc[noise, col].mean() - pop_mean[col]) / pop_std[col]
        assert got[col] == pytest.approx(expected)
    assert set(outliers.demographics) == set(DEMOGRAPHIC)


def test_build_profiles_no_noise_gives_an_empty_outlier_profile(prepared: Prepared) -> None:
    labels = (np.arange(len(prepared.X)) % 3).astype(np.intp)
    personas, outliers = build_profiles(prepared.frame, prepared.X, labels)
    assert outliers.size == 0 and outliers.share == 0.0
    assert outliers.contrasts == [] and outliers.demographics == {}
    assert [p.size for p in personas] == [120, 120, 120]
    assert [p.cluster for p in personas] == [0, 1, 2]  # equal sizes: ordered by cluster


def test_build_profiles_small_cluster_has_all_members_as_representatives() -> None:
    frame_src = pd.DataFrame(
        {
            "id": [f"x{i}" for i in range(14)],
            "v": [0.0, 0.25, 0.5, 0.75, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
        }
    )
    frame: FeatureFrame = select_features(frame_src, "id", FeaturesConfig(behavioral=["v"]))
    X = frame_src[["v"]].to_numpy()
    labels = np.array([0] * 4 + [1] * 10, dtype=np.intp)
    personas, _ = build_profiles(frame, X, labels)
    small = next(p for p in personas if p.cluster == 0)
    assert sorted(small.representatives) == ["x0", "x1", "x2", "x3"]
    # centre 0.375 (exact in binary): x1 and x2 are nearest (tie resolved by row order),
    # then x0 and x3
    assert small.representatives == ["x1", "x2", "x0", "x3"]
    assert small.centroid == {"v": 0.375}
