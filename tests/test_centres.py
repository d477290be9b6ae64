"""Distances to cluster centres, whole and streamed: the same float64 bits either way.

Data spans many orders of magnitude so that any change in the order of additions shows in
the last bits (checked below), and holds -0.0 where numpy's choice of start matters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from apg.config import FeaturesConfig, PreprocessingConfig
from apg.prepare.features import FeatureFrame, select_features
from apg.prepare.preprocessing import Prepared, prepare
from apg.profiles.centres import CentreDistances, centre_distances
from apg.profiles.persona import (
    N_REPRESENTATIVES,
    Atypical,
    OutlierProfile,
    PersonaProfile,
    _categories,
    _ids_at,
    _num,
    _Population,
    build_profiles,
    build_profiles_from_distances,
    contrasts_for,
    demographics_for,
)
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL, DEMOGRAPHIC, ID_COLUMN, generate_users


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to the bit: -0.0 is not 0.0 and NaN equals NaN (np.array_equal says otherwise)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def wide(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Values from 1e-6 to 1e6, with some exact zeros of either sign."""
    X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-6, 6, size=(n, d))
    X[rng.random((n, d)) < 0.05] = -0.0
    X[rng.random((n, d)) < 0.02] = 0.0
    return X


def streamed(
    X: np.ndarray, labels: np.ndarray, batch: int
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Centres and distances from two passes over ``batch`` rows at a time."""
    acc = CentreDistances()
    starts = range(0, len(labels), batch)
    for s in starts:
        acc.add(X[s : s + batch], labels[s : s + batch])
    centres = acc.centres()
    parts = [acc.distances(X[s : s + batch], labels[s : s + batch]) for s in starts]
    return centres, np.concatenate(parts) if parts else np.empty(0)


def assert_streamed_equals_whole(X: np.ndarray, labels: np.ndarray, batch: int) -> None:
    centres, dist = streamed(X, labels, batch)
    expected = {int(c): X[labels == c].mean(axis=0) for c in np.unique(labels) if c >= 0}
    assert centres.keys() == expected.keys()
    for c, centre in expected.items():
        assert same_bits(centres[c], centre), c
    assert same_bits(dist, centre_distances(X, labels))


def awkward_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Noise, a single-member cluster, a cluster only in the last rows, gaps in the ids."""
    labels = rng.choice(np.array([-1, 0, 2, 3]), size=n, p=[0.1, 0.5, 0.3, 0.1])
    labels[n // 2] = 7  # one member
    labels[-max(1, n // 10) :] = 9  # absent from every batch but the last ones
    return labels.astype(np.intp)


@pytest.mark.parametrize("d", range(1, 21))
@pytest.mark.parametrize("batch", [1, 7, 61, 1000])
def test_streamed_centres_and_distances_are_bit_identical(d: int, batch: int) -> None:
    rng = np.random.default_rng(d * 1000 + batch)
    n = 1000  # batch 61 does not divide it; 1000 is the whole matrix in one batch
    X, labels = wide(rng, n, d), awkward_labels(rng, n)
    assert_streamed_equals_whole(X, labels, batch)


@pytest.mark.parametrize("d", [1, 2, 3, 8, 15])
def test_negative_zeros_average_as_numpy_averages_them(d: int) -> None:
    # numpy starts its sums at +0.0, so all -0.0 averages to +0.0; a start from the first row
    # would keep -0.0, and in one batch or many the centres would then differ in sign.
    X = np.full((40, d), -0.0)
    X[20:, 0] = 0.0
    X[30:, -1] = 1e-300
    labels = np.repeat(np.array([0, 1, 2, 3]), 10)
    for batch in (1, 3, 40):
        assert_streamed_equals_whole(X, labels, batch)


def test_the_data_tells_summation_orders_apart() -> None:
    # Without this the identity tests could pass by luck: adding per-batch sums, or summing
    # pairwise, must change some bits of this data's centres.
    X = wide(np.random.default_rng(0), 1000, 15)
    whole = X.mean(axis=0)
    per_batch = np.sum([X[s : s + 7].sum(axis=0) for s in range(0, 1000, 7)], axis=0) / 1000
    assert not same_bits(per_batch, whole)
    assert not same_bits(np.array([np.sum(X[:, j]) for j in range(15)]) / 1000, whole)


def test_batches_in_any_layout_give_the_same_bits() -> None:
    rng = np.random.default_rng(3)
    X, labels = wide(rng, 500, 6), awkward_labels(rng, 500)
    acc = CentreDistances()
    for s in range(0, 500, 128):
        acc.add(np.asfortranarray(X[s : s + 128]), labels[s : s + 128])
    dist = np.concatenate(
        [
            acc.distances(X[s : s + 128, ::-1][:, ::-1], labels[s : s + 128])
            for s in range(0, 500, 128)
        ]
    )
    assert same_bits(dist, centre_distances(X, labels))


def test_noise_only_and_empty_batches() -> None:
    acc = CentreDistances()
    acc.add(np.ones((3, 2)), np.full(3, -1))
    acc.add(np.empty((0, 2)), np.empty(0, dtype=np.intp))
    assert acc.centres() == {}
    assert np.isnan(acc.distances(np.ones((3, 2)), np.full(3, -1))).all()
    assert np.isnan(centre_distances(np.ones((3, 2)), np.full(3, -1))).all()


def test_misuse_is_refused() -> None:
    acc = CentreDistances()
    acc.add(np.ones((2, 3)), np.array([0, 0]))
    with pytest.raises(ValueError, match="columns"):
        acc.add(np.ones((2, 4)), np.array([0, 0]))
    with pytest.raises(ValueError, match="one label a row"):
        acc.add(np.ones((2, 3)), np.array([0]))
    with pytest.raises(ValueError, match="cluster 5 had no rows"):
        acc.distances(np.ones((1, 3)), np.array([5]))
    with pytest.raises(RuntimeError, match="first pass is over"):
        acc.add(np.ones((2, 3)), np.array([0, 0]))


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 80),
    d=st.integers(1, 9),
    k=st.integers(1, 6),
    batch=st.integers(1, 90),
    noise=st.floats(0, 1),
    zeros=st.floats(0, 1),
)
def test_streamed_equals_whole_on_random_data(
    seed: int, n: int, d: int, k: int, batch: int, noise: float, zeros: float
) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-12, 12, size=(n, d))
    X[rng.random((n, d)) < zeros] = -0.0
    labels = rng.integers(0, k, n).astype(np.intp)
    labels[rng.random(n) < noise] = -1
    assert_streamed_equals_whole(X, labels, batch)


# --------------------------------------------------------------------------------------
# Profiles: the split changes nothing, and streamed distances give the same profiles.


def build_profiles_before_the_split(
    frame: FeatureFrame, X: np.ndarray, labels: np.ndarray
) -> tuple[list[PersonaProfile], OutlierProfile]:
    """apg.profiles.persona.build_profiles as it was before centre distances were split out."""
    n = len(labels)
    clusters = sorted(
        (int(c) for c in np.unique(labels) if c >= 0), key=lambda c: (-int(np.sum(labels == c)), c)
    )
    population = _Population(frame)
    profiles = []
    for rank, cluster in enumerate(clusters, start=1):
        mask = labels == cluster
        members = np.flatnonzero(mask)
        rows = X[members]
        centre = rows.mean(axis=0)
        rows -= centre
        np.square(rows, out=rows)
        dist = np.sqrt(rows.sum(axis=1))
        del rows
        nearest = members[np.argsort(dist, kind="stable")[:N_REPRESENTATIVES]]
        q1, q3 = np.percentile(dist, [25, 75])
        beyond = np.flatnonzero(dist > q3 + 3.0 * (q3 - q1))
        far = members[beyond[np.argsort(-dist[beyond], kind="stable")]]
        profiles.append(
            PersonaProfile(
                persona_id=f"P{rank}",
                cluster=cluster,
                size=int(mask.sum()),
                share=float(mask.sum() / n),
                centroid={c: _num(frame.raw[c][mask].mean()) for c in frame.numeric_features},
                categories=_categories(frame, mask),
                contrasts=contrasts_for(frame, mask, population),
                demographics=demographics_for(frame, mask, population),
                representatives=_ids_at(frame.ids, nearest),
                atypical=Atypical(count=len(far), ids=_ids_at(frame.ids, far[:N_REPRESENTATIVES])),
            )
        )
    noise = labels < 0
    outliers = OutlierProfile(size=int(noise.sum()), share=float(noise.sum() / n) if n else 0.0)
    if noise.any():
        outliers.contrasts = contrasts_for(frame, noise, population)
        outliers.demographics = demographics_for(frame, noise, population)
    return profiles, outliers


def dumped(built: tuple[list[PersonaProfile], OutlierProfile]) -> tuple[list[dict], dict]:
    personas, outliers = built
    return [p.model_dump() for p in personas], outliers.model_dump()


@pytest.fixture(scope="module", params=[(2000, 0), (1500, 5)], ids=["2000x0", "1500x5"])
def prepared(request: pytest.FixtureRequest) -> Prepared:
    rows, seed = request.param
    users: pd.DataFrame = generate_users(rows, seed=seed)
    roles = FeaturesConfig(
        behavioral=list(BEHAVIORAL), attitudinal=list(ATTITUDINAL), demographic=list(DEMOGRAPHIC)
    )
    return prepare(select_features(users, ID_COLUMN, roles), PreprocessingConfig(transform="none"))


def kmeans_labels(X: np.ndarray, k: int, noise_every: int) -> np.ndarray:
    with threadpool_limits(1):
        labels = KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(X).astype(np.intp)
    if noise_every:
        labels[::noise_every] = -1
    return labels


@pytest.mark.parametrize(("k", "noise_every"), [(2, 0), (6, 29), (10, 7)])
def test_build_profiles_is_unchanged_by_the_split(
    prepared: Prepared, k: int, noise_every: int
) -> None:
    labels = kmeans_labels(prepared.X, k, noise_every)
    before = build_profiles_before_the_split(prepared.frame, prepared.X, labels)
    assert dumped(build_profiles(prepared.frame, prepared.X, labels)) == dumped(before)
    assert any(p.atypical.count for p in before[0])  # the fence is exercised too


def test_build_profiles_is_unchanged_on_random_labels(prepared: Prepared) -> None:
    # Random labels make wide, overlapping clusters, plus a single-member one.
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, 5, len(prepared.X)).astype(np.intp)
    labels[17] = 5
    before = build_profiles_before_the_split(prepared.frame, prepared.X, labels)
    assert dumped(build_profiles(prepared.frame, prepared.X, labels)) == dumped(before)


@pytest.mark.parametrize("batch", [1, 97, 4096])
def test_profiles_from_streamed_distances_equal_build_profiles(
    prepared: Prepared, batch: int
) -> None:
    labels = kmeans_labels(prepared.X, 6, 31)
    _, dist = streamed(prepared.X, labels, batch)
    assert same_bits(dist, centre_distances(prepared.X, labels))
    got = build_profiles_from_distances(prepared.frame, labels, dist)
    assert dumped(got) == dumped(build_profiles(prepared.frame, prepared.X, labels))


def test_distances_must_match_the_labels(prepared: Prepared) -> None:
    labels = np.zeros(len(prepared.X), dtype=np.intp)
    with pytest.raises(ValueError, match="distances for"):
        build_profiles_from_distances(prepared.frame, labels, np.zeros(3))
