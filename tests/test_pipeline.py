"""One whole run (sources -> ... -> outputs), checked against pandas / sklearn recomputations."""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from selection_rule import expected_eligible, rule_winner
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.metrics import pairwise_distances, silhouette_score
from sklearn.preprocessing import PowerTransformer, StandardScaler

from apg.config import Config, parse_config
from apg.errors import ApgError, DataError, SearchError, SourceError
from apg.pipeline import run
from apg.report.outputs import CANDIDATE_COLUMNS, write_outputs
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL

DEMOGRAPHIC = ["age", "gender", "country", "occupation"]
GRID: dict[str, Any] = {
    "kmeans": {"k": [2, 4], "n_init": 2},
    "agglomerative": {"k": [2, 4], "linkage": ["ward"]},
    "dbscan": {"min_samples": [5]},
}
ORDER = {"kmeans": 0, "agglomerative": 1, "dbscan": 2}
FILES = {
    "personas.json",
    "candidates.csv",
    "assignments.csv",
    "report.md",
    "report.html",
    ".apg-output.json",
}


def make_config(csv: Path, id_column: str = "user_id", **changes: Any) -> Config:
    data: dict[str, Any] = {
        "sources": [{"kind": "file", "path": str(csv)}],
        "id_column": id_column,
        "features": {
            "behavioral": list(BEHAVIORAL),
            "attitudinal": list(ATTITUDINAL),
            "demographic": DEMOGRAPHIC,
        },
        "search": GRID,
    }
    data.update(changes)
    return parse_config(data, "test")


def run_to(config: Config, out: Path, **kw: Any) -> Path:
    write_outputs(run(config), out, **kw)
    return out


class Outputs:
    """The files of one run, read with plain pandas / json."""

    def __init__(self, folder: Path, id_column: str = "user_id") -> None:
        self.folder = folder
        self.doc = json.loads((folder / "personas.json").read_text(encoding="utf-8"))
        self.candidates = pd.read_csv(
            folder / "candidates.csv", keep_default_na=False, na_values=[""]
        )
        self.assignments = pd.read_csv(
            folder / "assignments.csv", keep_default_na=False, dtype={id_column: str}
        )
        self.report = (folder / "report.md").read_text(encoding="utf-8")

    @property
    def features(self) -> list[str]:
        f = self.doc["data"]["features"]
        return [*f["behavioral"], *f["attitudinal"]]


def rebuild_matrix(raw: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The clustering matrix rebuilt independently: median impute, the README's default
    transform (|pandas skew| >= 1 and more than two values: log1p, or Yeo-Johnson with
    negatives), then standard scale."""
    values = pd.DataFrame(
        SimpleImputer(strategy="median").fit_transform(raw[features].to_numpy(float)),
        columns=features,
    )
    for col in features:
        x = values[col]
        if x.nunique() > 2 and abs(x.skew()) >= 1.0:
            if x.min() >= 0:
                values[col] = np.log1p(x)
            else:
                pt = PowerTransformer(method="yeo-johnson", standardize=False)
                values[col] = pt.fit_transform(x.to_frame())[:, 0]
    return StandardScaler().fit_transform(values.to_numpy())


def check_invariants(
    out: Outputs, raw: pd.DataFrame, id_column: str, config: Config, X: np.ndarray | None = None
) -> None:
    """The issue's invariants, each recomputed from the raw table and the files."""
    doc, cands, assign = out.doc, out.candidates, out.assignments
    raw = raw.assign(**{id_column: raw[id_column].astype(str)})
    # files and columns
    assert {p.name for p in out.folder.iterdir()} >= FILES
    assert list(cands.columns) == CANDIDATE_COLUMNS
    assert list(assign.columns) == [id_column, "cluster", "persona_id"]
    # roles: no demographic / id among features or matrix columns
    demo = set(config.features.demographic)
    assert not demo & set(out.features)
    assert not any(
        c == d or c.startswith(f"{d}_")
        for c in doc["data"]["matrix_columns"]
        for d in demo | {id_column}
    )
    assert doc["data"]["demographics"] == config.features.demographic
    # rows
    assert doc["data"]["rows_read"] == len(raw)
    assert doc["data"]["rows_used"] == len(assign)
    assert doc["data"]["rows_used"] + doc["data"]["rows_dropped"] == len(raw)
    # sizes and shares
    noise = int((assign["cluster"] == -1).sum())
    counts = assign[assign["cluster"] >= 0]["persona_id"].value_counts()
    personas = doc["personas"]
    assert {p["persona_id"]: p["size"] for p in personas} == counts.to_dict()
    assert sum(p["size"] for p in personas) == len(assign) - noise
    assert doc["outliers"]["size"] == noise
    for p in personas:
        assert p["share"] == pytest.approx(p["size"] / len(assign))
    assert sum(p["share"] for p in personas) == pytest.approx(1 - noise / len(assign))
    assert (assign.loc[assign["cluster"] == -1, "persona_id"] == "").all()
    assert [p["size"] for p in personas] == sorted((p["size"] for p in personas), reverse=True)
    # centroids = pandas group means of the raw values, joined on the id
    merged = assign.merge(raw, on=id_column, how="left", validate="one_to_one")
    numeric = [f for f in out.features if pd.api.types.is_numeric_dtype(raw[f])]
    means = merged[merged["cluster"] >= 0].groupby("persona_id")[numeric].mean()
    for p in personas:
        for f in numeric:
            assert p["centroid"][f] == pytest.approx(means.loc[p["persona_id"], f], rel=1e-9)
        magnitudes = [abs(c["std_diff"]) for c in p["contrasts"]]
        assert magnitudes == sorted(magnitudes, reverse=True)
        members = set(merged.loc[merged["persona_id"] == p["persona_id"], id_column])
        assert set(p["representatives"]) <= members
        assert len(p["representatives"]) == min(10, p["size"])
    # the winner obeys the rule, recomputed from candidates.csv
    best = rule_winner(cands, config.search)
    assert cands["eligible"].tolist() == expected_eligible(cands, config.search, best)
    assert cands["selected"].sum() == 1 and bool(cands.loc[best, "selected"])
    sel = doc["selection"]
    assert sel["algorithm"] == cands.loc[best, "algorithm"]
    assert sel["params"] == json.loads(cands.loc[best, "params"])
    assert sel["n_clusters"] == cands.loc[best, "n_clusters"] == len(personas)
    assert sel["silhouette"] == pytest.approx(cands.loc[best, "silhouette"])
    assert sel["noise_share"] == pytest.approx(noise / len(assign))
    # silhouette of the winner = sklearn's on the independently rebuilt matrix
    if X is None:
        X = rebuild_matrix(merged, out.features)
    labels = merged["cluster"].to_numpy()
    valid = labels >= 0
    expected_sil = silhouette_score(X[valid], labels[valid])
    assert sel["silhouette"] == pytest.approx(expected_sil, rel=1e-9)


# --------------------------------------------------------------------------- one shared run


@pytest.fixture(scope="module")
def sample_run(
    tmp_path_factory: pytest.TempPathFactory, sample_users: pd.DataFrame
) -> tuple[Outputs, pd.DataFrame, Config]:
    folder = tmp_path_factory.mktemp("pipeline")
    csv = folder / "users.csv"
    sample_users.to_csv(csv, index=False)
    config = make_config(csv)
    run_to(config, folder / "out")
    return Outputs(folder / "out"), pd.read_csv(csv), config


def test_run_writes_the_four_files(sample_run: tuple[Outputs, pd.DataFrame, Config]) -> None:
    out, _, _ = sample_run
    assert {p.name for p in out.folder.iterdir()} == FILES


def test_run_outputs_obey_the_invariants(sample_run: tuple[Outputs, pd.DataFrame, Config]) -> None:
    out, raw, config = sample_run
    check_invariants(out, raw, "user_id", config)


def test_run_personas_json_has_the_documented_fields(
    sample_run: tuple[Outputs, pd.DataFrame, Config],
) -> None:
    out, raw, _ = sample_run
    doc = out.doc
    assert {"run_id", "created_at", "data", "selection", "personas", "outliers"} <= set(doc)
    assert doc["run_id"].startswith("run-")
    data = doc["data"]
    assert data["features"] == {"behavioral": list(BEHAVIORAL), "attitudinal": list(ATTITUDINAL)}
    assert data["matrix_columns"] == [*BEHAVIORAL, *ATTITUDINAL]
    missing = raw[[*BEHAVIORAL, *ATTITUDINAL]].isna().sum()
    assert data["imputed"] == {c: int(n) for c, n in missing.items() if n}
    assert data["rows_dropped"] == 0 and data["dropped_columns"] == []
    assert {"algorithm", "params", "n_clusters", "silhouette", "noise_share", "elbow_k"} <= set(
        doc["selection"]
    )
    for p in doc["personas"]:
        assert {
            "persona_id",
            "cluster",
            "size",
            "share",
            "centroid",
            "contrasts",
            "demographics",
            "representatives",
            "narrative",
        } <= set(p)
        assert {"name", "summary", "goals", "frustrations", "source"} <= set(p["narrative"])
        assert p["narrative"]["source"] == "offline"
        assert set(p["demographics"]) == set(DEMOGRAPHIC)
        for c in p["contrasts"]:
            assert {"feature", "cluster_mean", "population_mean", "std_diff"} <= set(c)


def test_run_demographics_equal_pandas_crosstab(
    sample_run: tuple[Outputs, pd.DataFrame, Config],
) -> None:
    out, raw, _ = sample_run
    merged = out.assignments.merge(raw, on="user_id")
    for col in ("gender", "country", "occupation"):
        values = merged[col].astype(object).where(merged[col].notna(), "(missing)")
        table = pd.crosstab(merged["persona_id"], values)
        population = values.value_counts(normalize=True)
        for p in out.doc["personas"]:
            row = table.loc[p["persona_id"]]
            row = row[row > 0]
            got = {c["value"]: c for c in p["demographics"][col]["categories"]}
            assert {v: c["count"] for v, c in got.items()} == row.to_dict()
            for value, count in row.items():
                share = count / row.sum()
                assert got[value]["share"] == pytest.approx(share)
                assert got[value]["lift"] == pytest.approx(share / population[value])
    ages = merged.groupby("persona_id")["age"]
    for p in out.doc["personas"]:
        summary = p["demographics"]["age"]["cluster"]
        assert summary["mean"] == pytest.approx(ages.mean()[p["persona_id"]])
        assert summary["median"] == pytest.approx(ages.median()[p["persona_id"]])
        assert summary["q1"] == pytest.approx(ages.quantile(0.25)[p["persona_id"]])
        assert summary["q3"] == pytest.approx(ages.quantile(0.75)[p["persona_id"]])


def test_run_contrasts_are_standardized_mean_differences(
    sample_run: tuple[Outputs, pd.DataFrame, Config],
) -> None:
    out, raw, _ = sample_run
    merged = out.assignments.merge(raw, on="user_id")
    features = out.features
    pop_mean, pop_std = raw[features].mean(), raw[features].std(ddof=1)
    group = merged.groupby("persona_id")[features].mean()
    for p in out.doc["personas"]:
        expected = (group.loc[p["persona_id"]] - pop_mean) / pop_std
        got = {c["feature"]: c for c in p["contrasts"]}
        assert set(got) == set(features)
        for f in features:
            assert got[f]["std_diff"] == pytest.approx(expected[f])
            assert got[f]["population_mean"] == pytest.approx(pop_mean[f])
        assert [c["feature"] for c in p["contrasts"]] == sorted(
            features, key=lambda f: -abs(expected[f])
        )


def test_run_representatives_are_nearest_the_centre(
    sample_run: tuple[Outputs, pd.DataFrame, Config],
) -> None:
    out, raw, _ = sample_run
    merged = out.assignments.merge(raw, on="user_id")
    X = rebuild_matrix(merged, out.features)
    for p in out.doc["personas"]:
        rows = np.flatnonzero(merged["persona_id"] == p["persona_id"])
        centre = X[rows].mean(axis=0, keepdims=True)
        dist = pairwise_distances(X[rows], centre).ravel()
        nearest = merged["user_id"].to_numpy()[rows[np.argsort(dist, kind="stable")[:10]]]
        assert p["representatives"] == list(nearest)


def test_run_candidate_scores_are_complete(
    sample_run: tuple[Outputs, pd.DataFrame, Config],
) -> None:
    out, _, _ = sample_run
    cands = out.candidates
    assert set(cands["algorithm"]) == {"kmeans", "agglomerative", "dbscan"}
    params = [json.loads(p) for p in cands["params"]]
    assert [p["k"] for p, a in zip(params, cands["algorithm"], strict=True) if a == "kmeans"] == [
        2,
        3,
        4,
    ]
    km = cands[cands["algorithm"] == "kmeans"]
    assert km["inertia"].notna().all()
    assert cands[cands["algorithm"] != "kmeans"]["inertia"].isna().all()
    scored = cands[cands["n_clusters"] >= 2]
    assert scored[["silhouette", "davies_bouldin", "calinski_harabasz"]].notna().all().all()
    assert (cands["seconds"] >= 0).all()
    assert (cands.loc[~cands["eligible"], "reason"].str.len() > 0).all()
    assert cands.loc[cands["eligible"], "reason"].isna().all()


def test_run_elbow_is_the_kneedle_of_candidates_inertia(
    sample_run: tuple[Outputs, pd.DataFrame, Config],
) -> None:
    out, _, _ = sample_run
    km = out.candidates[out.candidates["algorithm"] == "kmeans"]
    ks = [json.loads(p)["k"] for p in km["params"]]
    w = km["inertia"].to_numpy()
    x = (np.array(ks) - ks[0]) / (ks[-1] - ks[0])
    y = (w[0] - w) / (w[0] - w[-1])
    assert out.doc["selection"]["elbow_k"] == ks[int(np.argmax(y - x))]
    assert "K-Means elbow (WCSS vs k): k = " + str(out.doc["selection"]["elbow_k"]) in out.report


def test_run_report_names_the_winner_and_every_persona(
    sample_run: tuple[Outputs, pd.DataFrame, Config],
) -> None:
    out, _, _ = sample_run
    sel = out.doc["selection"]
    assert f"{len(out.doc['personas'])} personas from 1,500 users" in out.report
    assert "Demographic (describe only, never clustered): age, gender, country, occupation" in (
        out.report
    )
    for p in out.doc["personas"]:
        assert f"### {p['persona_id']} · {p['narrative']['name']}" in out.report
    assert f"silhouette {sel['silhouette']:.3f}" in out.report


# --------------------------------------------------------------------------- variants


def test_run_dbscan_winner_keeps_noise_out_of_personas(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pts = np.vstack(
        [rng.normal(c, 0.4, (100, 2)) for c in [(0, 0), (5, 0), (0, 5)]]
        + [rng.uniform(-3, 8, (15, 2))]
    )
    raw = pd.DataFrame(
        {
            "uid": [f"id{i}" for i in range(len(pts))],
            "x": pts[:, 0].round(3),
            "y": pts[:, 1].round(3),
            "seg": rng.choice(["a", "b"], len(pts)),
        }
    )
    raw.to_csv("blobs.csv", index=False)
    config = parse_config(
        {
            "sources": [{"kind": "file", "path": "blobs.csv"}],
            "id_column": "uid",
            "features": {"behavioral": ["x", "y"], "demographic": ["seg"]},
            "search": GRID,
        },
        base_dir=tmp_path,
    )
    out = Outputs(run_to(config, tmp_path / "out"), "uid")
    assert out.doc["selection"]["algorithm"] == "dbscan"
    noise = out.assignments["cluster"] == -1
    assert noise.sum() > 0
    assert out.doc["outliers"]["size"] == int(noise.sum())
    assert set(out.doc["outliers"]["demographics"]) == {"seg"}
    check_invariants(out, raw, "uid", config)
    # Counting noise as a cluster would give another silhouette: the check can fail.
    X = rebuild_matrix(raw, ["x", "y"])
    assert out.doc["selection"]["silhouette"] != pytest.approx(
        silhouette_score(X, out.assignments["cluster"])
    )


def test_run_pca_scores_in_the_reduced_space(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    users = sample_users.head(500)
    users.to_csv("users.csv", index=False)
    config = make_config(tmp_path / "users.csv", preprocessing={"pca": 3})
    out = Outputs(run_to(config, tmp_path / "out"))
    assert out.doc["data"]["matrix_columns"] == ["pc1", "pc2", "pc3"]
    scaled = rebuild_matrix(users, [*BEHAVIORAL, *ATTITUDINAL])
    pca = PCA(n_components=3, random_state=0).fit(scaled)
    np.testing.assert_allclose(
        out.doc["data"]["pca_explained_variance"], pca.explained_variance_ratio_
    )
    check_invariants(out, users, "user_id", config, X=pca.transform(scaled))


def test_run_drop_rows_uses_complete_rows_only(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    users = sample_users.head(500)
    users.to_csv("users.csv", index=False)
    config = make_config(tmp_path / "users.csv", preprocessing={"missing": "drop_rows"})
    out = Outputs(run_to(config, tmp_path / "out"))
    complete = users[[*BEHAVIORAL, *ATTITUDINAL]].notna().all(axis=1)
    assert out.doc["data"]["rows_dropped"] == int((~complete).sum()) > 0
    assert out.doc["data"]["imputed"] == {}
    assert list(out.assignments["user_id"]) == list(users.loc[complete, "user_id"])
    kept = users[complete]
    X = rebuild_matrix(kept, [*BEHAVIORAL, *ATTITUDINAL])
    check_invariants(out, users, "user_id", config, X=X)


def test_run_degenerate_columns_drop_warns_and_records(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    users = sample_users.head(300).assign(plan_tier=2, empty=np.nan)
    users.to_csv("users.csv", index=False)
    config = make_config(
        tmp_path / "users.csv",
        features={
            "behavioral": ["logins_per_month", "plan_tier", "empty"],
            "attitudinal": ["nps"],
            "demographic": ["age"],
        },
        preprocessing={"degenerate_columns": "drop"},
    )
    with pytest.warns(UserWarning) as record:
        result = run(config)
    messages = [str(w.message) for w in record]
    origin = f"source #1 (file {tmp_path / 'users.csv'})"
    assert messages[1] == f"{origin}: dropped column 'empty': it is entirely missing"
    assert messages[0].startswith(
        f"source #1 (file {tmp_path / 'users.csv'}): dropped column 'plan_tier': it is constant ("
    )
    write_outputs(result, tmp_path / "out")
    out = Outputs(tmp_path / "out")
    assert out.doc["data"]["dropped_columns"] == ["plan_tier", "empty"]
    assert out.features == ["logins_per_month", "nps"]
    assert "Dropped columns: plan_tier, empty" in out.report


def test_run_degenerate_column_is_an_error_by_default(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    users = sample_users.head(300).assign(empty=np.nan)
    users.to_csv("users.csv", index=False)
    config = make_config(
        tmp_path / "users.csv",
        features={"behavioral": ["logins_per_month", "empty"], "demographic": ["age"]},
    )
    with pytest.raises(DataError) as info:
        run(config)
    assert str(info.value) == (
        f"source #1 (file {tmp_path / 'users.csv'}): column 'empty' is entirely missing and "
        "cannot separate users; remove it from features or set "
        "preprocessing.degenerate_columns: drop"
    )


def test_run_no_eligible_candidate_is_a_search_error(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    config = make_config(
        tmp_path / "users.csv",
        search={
            "kmeans": {"k": [3, 4], "n_init": 1},
            "agglomerative": None,
            "dbscan": None,
            "min_cluster_share": 0.45,
        },
    )
    with pytest.raises(SearchError, match=r"^none of the 2 candidates meets the selection rules"):
        run(config)


def test_run_missing_source_file_is_a_source_error(tmp_path: Path) -> None:
    config = make_config(tmp_path / "nope.csv")
    with pytest.raises(SourceError) as info:
        run(config)
    path = tmp_path / "nope.csv"
    assert str(info.value) == (
        f"source #1 (file {path}): file {str(path)!r} does not exist; check the path"
    )


def test_run_reports_progress_by_stage(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    said: list[str] = []
    result = run(make_config(tmp_path / "users.csv"), progress=said.append)
    stages = [line.split(":")[0] for line in said]
    assert stages[:3] == ["read", "read", "prepare"]
    assert said[1] == "read: 300 rows, 17 columns"
    assert said[2] == "prepare: 300 rows x 11 columns"
    assert f"search: chose {result.search.winner.key}, " in "\n".join(said)
    assert said[-1] == f"narrate: {len(result.personas)} personas (offline)"


# --------------------------------------------------------------------------- determinism


def _mask_created_at(text: str, created_at: str) -> str:
    return text.replace(created_at, "<created_at>")


def test_run_same_data_and_seed_give_identical_files(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    sample_users.head(600).to_csv("users.csv", index=False)
    config = make_config(tmp_path / "users.csv")
    a = Outputs(run_to(config, tmp_path / "a"))
    b = Outputs(run_to(make_config(tmp_path / "users.csv"), tmp_path / "b"))
    for name in ("assignments.csv",):
        assert (a.folder / name).read_bytes() == (b.folder / name).read_bytes()
    ja = _mask_created_at((a.folder / "personas.json").read_text(), a.doc["created_at"])
    jb = _mask_created_at((b.folder / "personas.json").read_text(), b.doc["created_at"])
    assert ja == jb
    ra = _mask_created_at(a.report, a.doc["created_at"])
    rb = _mask_created_at(b.report, b.doc["created_at"])
    assert ra == rb
    pd.testing.assert_frame_equal(
        a.candidates.drop(columns="seconds"), b.candidates.drop(columns="seconds")
    )
    ca = (a.folder / "candidates.csv").read_text().splitlines()
    cb = (b.folder / "candidates.csv").read_text().splitlines()
    assert [line.rsplit(",", 1)[0] for line in ca] == [line.rsplit(",", 1)[0] for line in cb]


def test_run_with_source_date_epoch_and_no_timing_is_byte_identical(
    tmp_path: Path, sample_users: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    sample_users.head(600).to_csv("users.csv", index=False)
    a = run_to(make_config(tmp_path / "users.csv"), tmp_path / "a", include_timing=False)
    b = run_to(make_config(tmp_path / "users.csv"), tmp_path / "b", include_timing=False)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    doc = json.loads((a / "personas.json").read_text())
    assert doc["created_at"] == "2023-11-14T22:13:20Z"
    assert pd.read_csv(a / "candidates.csv")["seconds"].isna().all()


def test_run_only_created_at_depends_on_the_clock(
    tmp_path: Path, sample_users: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = run_to(make_config(tmp_path / "users.csv"), tmp_path / "a", include_timing=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000999")
    b = run_to(make_config(tmp_path / "users.csv"), tmp_path / "b", include_timing=False)
    for name in ("assignments.csv", "candidates.csv", "report.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_run_identity_includes_the_seed(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    one = run(make_config(tmp_path / "users.csv"))
    config = make_config(tmp_path / "users.csv")
    config.search.seed = 7
    seven = run(config)
    assert one.run_id != seven.run_id  # the seed is part of the run's identity
    assert len(one.search.candidates) == len(seven.search.candidates)


# --------------------------------------------------------------------------- outputs folder


def test_write_outputs_replaces_an_existing_folder(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    out = tmp_path / "out"
    run_to(make_config(tmp_path / "users.csv"), out)
    # An earlier run narrated with an LLM: its llm_calls.jsonl is apg's and goes with it.
    manifest = json.loads((out / ".apg-output.json").read_text())
    manifest["files"].append("llm_calls.jsonl")
    (out / ".apg-output.json").write_text(json.dumps(manifest))
    (out / "llm_calls.jsonl").write_text("{}\n")
    run_to(make_config(tmp_path / "users.csv"), out)
    assert {p.name for p in out.iterdir()} == FILES
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_write_outputs_refuses_a_file_as_folder(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    target = tmp_path / "out"
    target.write_text("keep me")
    result = run(make_config(tmp_path / "users.csv"))
    with pytest.raises(ApgError) as info:
        write_outputs(result, target)
    assert str(info.value) == (
        f"output path {str(target)!r} exists and is not a folder; choose another --out"
    )
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "users.csv"]


def test_write_outputs_folder_respects_the_umask(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    sample_users.head(300).to_csv("users.csv", index=False)
    old = os.umask(0o022)
    try:
        run_to(make_config(tmp_path / "users.csv"), tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_run_sample_fixture_warning_free(tmp_path: Path, sample_users: pd.DataFrame) -> None:
    """A plain run raises no warning at all (pytest turns warnings into errors)."""
    sample_users.head(300).to_csv("users.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_to(make_config(tmp_path / "users.csv"), tmp_path / "out")
    assert (tmp_path / "out" / "personas.json").is_file()


def test_run_keeps_ids_as_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ids = [f"{i:03d}" for i in range(40)]
    ids[-1] = "1"  # distinct from "001" as text
    (tmp_path / "ids.csv").write_text(
        "id,x,y\n"
        + "".join(
            f"{i},{a:.4f},{b:.4f}\n" for i, a, b in zip(ids, *rng.normal(size=(2, 40)), strict=True)
        )
    )
    config = parse_config(
        {
            "sources": [{"kind": "file", "path": "ids.csv"}],
            "id_column": "id",
            "features": {"behavioral": ["x", "y"]},
            "search": GRID,
        },
        base_dir=tmp_path,
    )
    out = Outputs(run_to(config, tmp_path / "out"), "id")
    assert list(out.assignments["id"]) == ids


def test_run_significance_level_reaches_every_fact_sheet(
    sample_users: pd.DataFrame, tmp_path: Path
) -> None:
    """narration.significance decides "over-represented" on the sheet the narrator cites, the
    report's cards and the stored report alike."""
    from apg.report.data import report_data_from_result
    from apg.store.reports import from_document, to_document

    csv = tmp_path / "users.csv"
    sample_users.to_csv(csv, index=False)
    strict = run(make_config(csv, narration={"significance": 1e-300}))
    loose = run(make_config(csv))
    for result in (strict, loose):
        data = report_data_from_result(result)
        stored = from_document(json.loads(json.dumps(to_document(data))))
        for p in result.personas:
            assert p.narrative is not None
            assert data.facts[p.persona_id] == p.narrative.facts
            assert stored.significance == result.config.narration.significance
    said = [" ".join(p.narrative.facts.values()) for p in strict.personas if p.narrative]
    assert not any("significantly over-represented" in text for text in said)
    said = [" ".join(p.narrative.facts.values()) for p in loose.personas if p.narrative]
    assert any("significantly over-represented" in text for text in said)
