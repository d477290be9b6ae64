"""The run configuration: defaults, unknown keys, roles and option values (issue 2)."""

from __future__ import annotations

import copy
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apg.config import Config, SearchConfig, load_config, parse_config
from apg.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
HINT = "check the spelling against the README's config reference"

BASE: dict[str, Any] = {
    "sources": [{"kind": "file", "path": "users.csv"}],
    "id_column": "user_id",
    "features": {"behavioral": ["a", "b"], "attitudinal": ["c"], "demographic": ["d"]},
}


def base(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return data


def error_of(data: Any, origin: str = "config") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, origin)
    return str(info.value)


def invalid(*lines: str, origin: str = "config") -> str:
    return f"{origin}: invalid config:\n  " + "\n  ".join(lines)


def _expand(k: Any) -> list[int]:
    return list(range(k[0], k[1] + 1)) if isinstance(k, list) else [k]


# --------------------------------------------------------------------------- defaults


def test_config_defaults_equal_demo_yaml() -> None:
    demo = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    cfg = parse_config(base())
    pre = cfg.preprocessing
    assert {
        "missing": pre.missing,
        "categorical": pre.categorical,
        "scaling": pre.scaling,
        "pca": pre.pca,
    } == demo["preprocessing"]
    s, ds = cfg.search, demo["search"]
    assert s.kmeans is not None and s.agglomerative is not None and s.dbscan is not None
    assert s.kmeans.k == _expand(ds["kmeans"]["k"])
    assert s.agglomerative.k == _expand(ds["agglomerative"]["k"])
    assert s.agglomerative.linkage == ds["agglomerative"]["linkage"]
    assert s.dbscan.eps == ds["dbscan"]["eps"]
    assert s.dbscan.min_samples == ds["dbscan"]["min_samples"]
    for key in ("max_clusters", "min_cluster_share", "max_noise_share", "seed"):
        assert getattr(s, key) == ds[key], key
    assert cfg.narration.client == demo["narration"]["client"]
    assert cfg.preprocessing.degenerate_columns == "error"


def test_config_demo_yaml_loads_and_resolves_against_its_folder() -> None:
    cfg = load_config(DEMO)
    assert cfg.base_dir == DEMO.parent.resolve()
    assert cfg.id_column == "user_id"
    assert cfg.sources[0].path == "../demo/users.csv"
    assert "age" in cfg.features.demographic
    assert "age" not in cfg.features.clustering
    assert cfg.features.clustering == [*cfg.features.behavioral, *cfg.features.attitudinal]


def test_config_minimal_config_applies_no_optional_transform() -> None:
    cfg = parse_config(base())
    assert cfg.preprocessing.pca is None
    assert cfg.preprocessing.scaling == "standard"
    assert cfg.preprocessing.missing == "impute_median"


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("colour",), "colour"),
        (("search", "kmeans", "kk"), "search.kmeans.kk"),
        (("search", "max_cluster"), "search.max_cluster"),
        (("preprocessing", "scale"), "preprocessing.scale"),
        (("features", "behavioural"), "features.behavioural"),
        (("narration", "clientt"), "narration.clientt"),
        (("sources", 0, "pth"), "sources[0].pth"),
    ],
)
def test_config_unknown_key_is_an_error_naming_its_path(path: tuple[Any, ...], named: str) -> None:
    data = base(search={"kmeans": {"k": 3}}, preprocessing={}, narration={})
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = 1
    assert error_of(data) == invalid(f"unknown key {named!r}; {HINT}")


_KEY_CHARS = string.ascii_letters + string.digits + "_-. "
_SECTIONS = ["", "search", "preprocessing", "narration", "features", "search.kmeans", "source"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.text(alphabet=_KEY_CHARS, min_size=1, max_size=20),
    section=st.sampled_from(_SECTIONS),
)
@example(key="bogus", section="")
@example(key="k ", section="search.kmeans")
def test_config_random_unknown_key_always_names_the_key(key: str, section: str) -> None:
    data = base(search={"kmeans": {"k": 3}}, preprocessing={}, narration={})
    if section == "source":
        node, prefix = data["sources"][0], "sources[0]."
    else:
        node, prefix = data, ""
        for part in filter(None, section.split(".")):
            node = node[part]
        prefix = f"{section}." if section else ""
    if key in node or key in type(_model_at(section)).model_fields:
        return  # a real key, not an unknown one
    node[key] = "x"
    message = error_of(data)
    assert f"unknown key {prefix + key!r}" in message
    assert message.startswith("config: invalid config:\n")


def _model_at(section: str) -> Any:
    cfg = parse_config(base(search={"kmeans": {"k": 3}}))
    if section == "source":
        return cfg.sources[0]
    node: Any = cfg
    for part in filter(None, section.split(".")):
        node = getattr(node, part)
    return node


def test_config_unknown_key_starting_with_function_is_named() -> None:
    data = base()
    data["function-x"] = 1
    assert error_of(data) == invalid(f"unknown key 'function-x'; {HINT}")


def test_config_unknown_key_named_like_a_source_kind_is_named() -> None:
    data = base()
    data["sources"][0]["file"] = "users.csv"
    assert error_of(data) == invalid(f"unknown key 'sources[0].file'; {HINT}")


def test_config_several_problems_are_all_listed() -> None:
    data = base(search={"kmeans": {"kk": 3}, "max_noise_share": 2})
    data["colour"] = 1
    message = error_of(data, origin="my.yaml")
    assert message.startswith("my.yaml: invalid config:\n  ")
    lines = message.splitlines()[1:]
    assert sorted(lines) == sorted(
        [
            f"  unknown key 'colour'; {HINT}",
            f"  unknown key 'search.kmeans.kk'; {HINT}",
            "  search.max_noise_share: Input should be less than or equal to 1 (got 2)",
        ]
    )


# --------------------------------------------------------------------------- k ranges


@settings(max_examples=80, deadline=None)
@given(lo=st.integers(2, 60), width=st.integers(0, 40), algo=st.sampled_from(["kmeans", "agg"]))
def test_config_k_pair_is_an_inclusive_range(lo: int, width: int, algo: str) -> None:
    hi = lo + width
    key = "kmeans" if algo == "kmeans" else "agglomerative"
    cfg = parse_config(base(search={key: {"k": [lo, hi]}, "max_clusters": max(hi, 10)}))
    grid = getattr(cfg.search, key)
    assert grid.k == list(range(lo, hi + 1))
    assert len(grid.k) == width + 1 and grid.k[0] == lo and grid.k[-1] == hi


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 500))
def test_config_k_single_integer_is_one_value(k: int) -> None:
    cfg = parse_config(base(search={"kmeans": {"k": k}, "max_clusters": max(k, 10)}))
    assert cfg.search.kmeans is not None
    assert cfg.search.kmeans.k == [k]


@settings(max_examples=80, deadline=None)
@given(lo=st.integers(-50, 60), hi=st.integers(-50, 60))
def test_config_k_invalid_range_is_an_error_naming_the_key(lo: int, hi: int) -> None:
    valid = 2 <= lo <= hi
    data = base(search={"agglomerative": {"k": [lo, hi]}, "max_clusters": max(hi, 10)})
    if valid:
        assert parse_config(data).search.agglomerative.k == list(range(lo, hi + 1))  # type: ignore[union-attr]
        return
    assert error_of(data) == invalid(
        f"search.agglomerative.k: k range [{lo}, {hi}] must satisfy 2 <= min <= max"
    )


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, "search.kmeans.k: every k must be at least 2, got 1"),
        (
            True,
            "search.kmeans.k: k must be an integer or a [min, max] pair of integers, got True",
        ),
        ([2, 1, 4], "search.kmeans.k: every k must be at least 2, got 1"),
        ([], "search.kmeans.k: k must be an integer or a [min, max] pair of integers, got []"),
        (
            [2.0, 4],
            "search.kmeans.k: k must be an integer or a [min, max] pair of integers, got [2.0, 4]",
        ),
        (
            "2-5",
            "search.kmeans.k: k must be an integer or a [min, max] pair of integers, got '2-5'",
        ),
    ],
)
def test_config_k_malformed_is_an_error(k: Any, expected: str) -> None:
    assert error_of(base(search={"kmeans": {"k": k}})) == invalid(expected)


# --------------------------------------------------------------------------- roles


def test_config_column_with_two_roles_is_an_error_naming_it() -> None:
    data = base(features={"behavioral": ["a", "age"], "demographic": ["age"]})
    assert error_of(data) == invalid(
        "features: column 'age' is given both behavioral and demographic; give each column one role"
    )


def test_config_attitudinal_and_behavioral_overlap_is_an_error() -> None:
    data = base(features={"behavioral": ["a"], "attitudinal": ["nps", "a"]})
    assert error_of(data) == invalid(
        "features: column 'a' is given both behavioral and attitudinal; give each column one role"
    )


def test_config_column_listed_twice_in_one_role_is_an_error() -> None:
    data = base(features={"behavioral": ["a", "b", "a"]})
    assert error_of(data) == invalid(
        "features: column 'a' is given twice; give each column one role"
    )


@pytest.mark.parametrize("role", ["behavioral", "attitudinal", "demographic"])
def test_config_id_column_as_a_feature_is_an_error(role: str) -> None:
    features: dict[str, list[str]] = {"behavioral": ["a"], "attitudinal": [], "demographic": []}
    features[role] = [*features[role], "user_id"]
    assert error_of(base(features=features)) == invalid(
        f"config: id column 'user_id' is also listed as {role}; the id is never a feature"
    )


def test_config_only_demographics_is_an_error() -> None:
    data = base(features={"demographic": ["age"]})
    assert error_of(data) == invalid(
        "features: at least one behavioral or attitudinal column is needed to cluster"
    )


def test_config_demographic_columns_are_never_clustering_columns() -> None:
    cfg = parse_config(base())
    assert cfg.features.clustering == ["a", "b", "c"]
    assert not set(cfg.features.clustering) & set(cfg.features.demographic)


# --------------------------------------------------------------------------- option values


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"preprocessing": {"scaling": "zscore"}},
            "preprocessing.scaling: Input should be 'standard', 'minmax' or 'robust' "
            "(got 'zscore')",
        ),
        (
            {"preprocessing": {"missing": "fill"}},
            "preprocessing.missing: Input should be 'impute_median', 'impute_mean' or "
            "'drop_rows' (got 'fill')",
        ),
        (
            {"preprocessing": {"degenerate_columns": "ignore"}},
            "preprocessing.degenerate_columns: Input should be 'error' or 'drop' (got 'ignore')",
        ),
        (
            {"preprocessing": {"pca": 1.5}},
            "preprocessing.pca: pca=1.5 as a variance share must be between 0 and 1 (exclusive)",
        ),
        ({"preprocessing": {"pca": 0}}, "preprocessing.pca: pca=0 components must be >= 1"),
        (
            {"search": {"max_noise_share": 2}},
            "search.max_noise_share: Input should be less than or equal to 1 (got 2)",
        ),
        (
            {"search": {"min_cluster_share": 0.6}},
            "search.min_cluster_share: Input should be less than 0.5 (got 0.6)",
        ),
        (
            {"search": {"max_clusters": 1}},
            "search.max_clusters: Input should be greater than or equal to 2 (got 1)",
        ),
        (
            {"search": {"seed": "x"}},
            "search.seed: Input should be a valid integer, unable to parse string as an "
            "integer (got 'x')",
        ),
        (
            {"search": {"dbscan": {"min_samples": [1]}}},
            "search.dbscan.min_samples[0]: Input should be greater than or equal to 2 (got 1)",
        ),
        (
            {"search": {"agglomerative": {"linkage": ["wards"]}}},
            "search.agglomerative.linkage[0]: Input should be 'ward', 'average' or 'complete' "
            "(got 'wards')",
        ),
        (
            {"search": {"kmeans": None, "agglomerative": None, "dbscan": None}},
            "search: all algorithms are disabled; enable kmeans, agglomerative or dbscan",
        ),
        (
            {"narration": {"client": "gpt"}},
            "narration.client: Input should be 'offline' or 'openai' (got 'gpt')",
        ),
        (
            {"sources": []},
            "sources: List should have at least 1 item after validation, not 0 (got [])",
        ),
    ],
)
def test_config_invalid_option_value_is_an_error_naming_the_key(
    changes: dict[str, Any], expected: str
) -> None:
    assert error_of(base(**changes)) == invalid(expected)


def test_config_dbscan_nonpositive_eps_is_an_error_naming_the_key() -> None:
    message = error_of(base(search={"dbscan": {"eps": [0.5, 0.0]}}))
    assert message.startswith("config: invalid config:\n  search.dbscan.eps")
    assert "Input should be greater than 0 (got 0.0)" in message


def test_config_pca_true_is_an_error() -> None:
    assert error_of(base(preprocessing={"pca": True})) == invalid(
        "preprocessing.pca: pca must be null, an integer >= 1 or a variance share in (0, 1)"
    )


@pytest.mark.parametrize(("pca", "expected"), [(3, 3), (0.8, 0.8), (None, None)])
def test_config_pca_accepts_components_or_variance_share(pca: Any, expected: Any) -> None:
    assert parse_config(base(preprocessing={"pca": pca})).preprocessing.pca == expected


def test_config_missing_required_keys_are_named() -> None:
    data = base()
    del data["id_column"]
    del data["features"]
    message = error_of(data)
    assert sorted(message.splitlines()[1:]) == [
        "  missing required key 'features'",
        "  missing required key 'id_column'",
    ]


def test_config_unknown_source_kind_is_an_error() -> None:
    data = base(sources=[{"kind": "ftp", "path": "x"}])
    message = error_of(data)
    assert message.startswith("config: invalid config:\n  sources[0]: ")
    assert "'ftp'" in message


def test_config_not_a_mapping_is_an_error() -> None:
    assert error_of([1, 2], origin="x.yaml") == (
        "x.yaml: the config must be a mapping of keys, got list"
    )


def test_config_model_rejects_unknown_keys_directly() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Config.model_validate(base(extra=1))


# --------------------------------------------------------------------------- env and files


def test_config_env_variables_are_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APG_TEST_DATA_DIR", "/data/here")
    cfg = parse_config(base(sources=[{"kind": "file", "path": "${APG_TEST_DATA_DIR}/u.csv"}]))
    assert cfg.sources[0].path == "/data/here/u.csv"


def test_config_unset_env_variable_is_an_error_naming_it() -> None:
    data = base(sources=[{"kind": "file", "path": "${APG_NOT_SET_ANYWHERE}/u.csv"}])
    assert error_of(data) == (
        "sources[0].path: environment variable 'APG_NOT_SET_ANYWHERE' is not set; "
        "export it or remove ${APG_NOT_SET_ANYWHERE} from the config"
    )


def test_config_load_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"config file {str(path)!r} does not exist; pass an existing --config FILE"
    )


def test_config_load_invalid_yaml_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources: [\n  - kind: file\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: not valid YAML at line ")


def test_config_load_binary_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: not a UTF-8 text file"


def test_config_load_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: the config must be a mapping of keys, got NoneType"


def test_config_load_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    data = base(search={"kmeans": {"k": [2, 4], "n_inits": 3}})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == invalid(
        f"unknown key 'search.kmeans.n_inits'; {HINT}", origin=str(path)
    )


def test_config_load_sets_base_dir_to_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cfgs"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(base()), encoding="utf-8")
    assert load_config(path).base_dir == folder.resolve()


@pytest.mark.parametrize(
    ("k", "values"),
    [(4, [4]), ([4], [4]), ([3, 5], [3, 4, 5]), ([7, 3, 5, 3], [3, 5, 7])],
)
def test_config_k_forms(k: Any, values: list[int]) -> None:
    assert SearchConfig.model_validate({"kmeans": {"k": k}}).kmeans.k == values  # type: ignore[union-attr]


def test_config_dump_validates_again_to_the_same_config() -> None:
    cfg = SearchConfig.model_validate({"kmeans": {"k": [2, 10]}})
    again = SearchConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg


def test_config_prompts_dir_resolves_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "c.yaml").write_text(
        "sources: [{kind: file, path: u.csv}]\n"
        "id_column: id\n"
        "features: {behavioral: [a]}\n"
        "narration: {prompts_dir: my-prompts}\n"
    )
    assert load_config(folder / "c.yaml").narration.prompts_dir == str(folder / "my-prompts")
