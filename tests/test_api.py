"""The Python API (``apg.generate``, ``Run``, ``PersonaModel``) against the command line on the
same data and seed: same personas, same files, same assignments; errors and silence."""

from __future__ import annotations

import html
import io
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

import apg
from apg.cli.main import main
from apg.config import Config, load_config
from apg.errors import ConfigError, DataError, NotFoundError, StoreError
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL

ROLES: dict[str, list[str]] = {
    "behavioral": list(BEHAVIORAL),
    "attitudinal": list(ATTITUDINAL),
    "demographic": ["age", "gender", "country"],
}
KMEANS = {"kmeans": {"k": [2, 4]}, "agglomerative": None, "dbscan": None}
DBSCAN = {"kmeans": None, "agglomerative": None, "dbscan": {"min_samples": [5]}}
CLI_KMEANS = ["--k", "2-4", "--algorithms", "kmeans"]
CLI_DBSCAN = ["--algorithms", "dbscan"]
FILES = {
    "personas.json",
    "candidates.csv",
    "assignments.csv",
    "report.md",
    "report.html",
    ".apg-output.json",
}


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def cli_run(csv: Path, out: str, *extra: str) -> Result:
    return invoke(
        "run",
        "--data",
        str(csv),
        "--id",
        "user_id",
        *(a for role, cols in ROLES.items() for a in (f"--{role}", ",".join(cols))),
        "--out",
        out,
        "-q",
        *extra,
    )


def without_run_id(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "run_id"}


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@pytest.fixture
def users(sample_users: pd.DataFrame) -> pd.DataFrame:
    return sample_users.head(400).copy()


@pytest.fixture
def new_users(sample_users: pd.DataFrame) -> pd.DataFrame:
    """Users the run never saw, on an index of their own (predict must keep it)."""
    rows = sample_users.iloc[1000:1300].copy()
    rows.index = pd.RangeIndex(5000, 5300)
    return rows


@pytest.fixture
def users_csv(tmp_path: Path, users: pd.DataFrame) -> Path:
    path = tmp_path / "users.csv"
    users.to_csv(path, index=False)
    return path


def test_api_generate_on_a_frame_equals_apg_run_on_the_csv(
    tmp_path: Path, users: pd.DataFrame, users_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    before = users.copy()
    cli_run(users_csv, "cli-out", *CLI_KMEANS, "--seed", "3", "--no-store")
    run = apg.generate(users, id="user_id", **ROLES, config={"search": KMEANS}, seed=3)
    pd.testing.assert_frame_equal(users, before)  # the caller's frame is left alone

    cli = Path("cli-out")
    doc = json.loads((cli / "personas.json").read_text(encoding="utf-8"))
    assert without_run_id(as_json(run.to_dict())) == without_run_id(doc)
    assert as_json(run.selection) == doc["selection"]
    assert [p.id for p in run.personas] == [p["persona_id"] for p in doc["personas"]]
    assert [p.name for p in run.personas] == [p["narrative"]["name"] for p in doc["personas"]]
    assert all(p.profile.narrative is p.narrative for p in run.personas)

    assignments = pd.read_csv(
        cli / "assignments.csv", dtype={"user_id": str}, keep_default_na=False
    )
    pd.testing.assert_frame_equal(run.assignments, assignments, check_dtype=False)
    # The same rows as candidates.csv once written (timings aside).
    candidates = pd.read_csv(cli / "candidates.csv").drop(columns="seconds")
    mine = pd.read_csv(io.StringIO(run.candidates.to_csv(index=False))).drop(columns="seconds")
    pd.testing.assert_frame_equal(mine, candidates)

    saved = run.save(tmp_path / "api-out")
    assert {p.name for p in saved.iterdir()} == {p.name for p in cli.iterdir()} == FILES
    for name in ("report.md", "report.html"):
        ours = (saved / name).read_text(encoding="utf-8").replace(run.run_id, "RUN")
        theirs = (cli / name).read_text(encoding="utf-8").replace(doc["run_id"], "RUN")
        assert ours == theirs, name
    assert run.report_html() == (saved / "report.html").read_text(encoding="utf-8")


def test_api_recorded_run_and_persona_model_equal_apg_run_and_apg_assign(
    tmp_path: Path, users: pd.DataFrame, users_csv: Path, new_users: pd.DataFrame
) -> None:
    cli_run(users_csv, "cli-out", *CLI_DBSCAN, "--db", "cli.db")
    run = apg.generate(users, id="user_id", **ROLES, config={"search": DBSCAN}, store="api.db")
    assert run.recorded and run.plan is not None and run.status == "succeeded"
    cli_doc = json.loads(Path("cli-out/personas.json").read_text(encoding="utf-8"))
    assert as_json(run.to_dict()["personas"]) == cli_doc["personas"]  # stable ids included
    assert run.outliers.size > 0  # the noise below is real noise

    new_users.to_csv("new.csv", index=False)
    invoke("assign", "--db", "cli.db", "--data", "new.csv", "--out", "labels.csv")
    labels = pd.read_csv("labels.csv", dtype={"user_id": str}, keep_default_na=False)
    expected = [p or None for p in labels["persona_id"]]
    assert None in expected

    loaded = apg.PersonaModel.load(run.run_id, store=f"sqlite:///{tmp_path / 'api.db'}")
    for model in (run.model, loaded, apg.PersonaModel.load(store="api.db")):
        predicted = model.predict(new_users)
        assert predicted.index.equals(new_users.index)
        assert predicted.name == "persona_id"
        assert predicted.tolist() == expected
        assert model.predict_clusters(new_users).tolist() == labels["cluster"].tolist()
    assert loaded.run_id == run.run_id and loaded.id_column == "user_id"
    assert set(run.model.personas) == {p.id for p in run.personas}
    assert run.model.predict(new_users.iloc[:0]).empty


def test_api_repr_html_shows_every_persona_card(users: pd.DataFrame) -> None:
    run = apg.generate(users, id="user_id", **ROLES, config={"search": KMEANS})
    fragment = run._repr_html_()
    assert fragment.startswith('<div class="apg-run">')
    assert "<script" not in fragment and "<html" not in fragment
    for persona in run.personas:
        assert html.escape(persona.name) in fragment
        assert f'<span class="pid">{persona.id}</span>' in fragment
    # The same cards as report.html, the charts left out.
    page = run.report_html()
    start = page.index('<section id="personas">')
    assert page[start : page.index("</section>", start)] in fragment
    assert "<apg.Run" in repr(run) and run.personas[0].name in repr(run)


def test_api_never_prints_and_reports_progress_to_the_callback_and_logger(
    users: pd.DataFrame, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    lines: list[str] = []
    with caplog.at_level(logging.INFO, logger="apg"):
        run = apg.generate(
            users,
            id="user_id",
            **ROLES,
            config={"search": KMEANS},
            store="s.db",
            progress=lines.append,
        )
        run.save("out")
        run._repr_html_()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert any(line.startswith("search: chose") for line in lines)
    assert any(line.startswith("store: recorded") for line in lines)
    assert [r.getMessage() for r in caplog.records if r.name == "apg"] == lines


def test_api_accepts_a_config_path_dict_or_model_with_the_same_result(
    users_csv: Path, users: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    settings = {
        "sources": [{"kind": "file", "path": users_csv.name}],
        "id_column": "user_id",
        "features": ROLES,
        "search": {**KMEANS, "seed": 4},
    }
    path = users_csv.parent / "apg.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    runs = [
        apg.generate(config=path),
        apg.generate(config=str(path)),
        apg.generate(config=settings),
        apg.generate(config=load_config(path)),
        apg.generate(users, config=settings),  # the frame replaces the sources
    ]
    first = runs[0].to_dict()
    assert runs[0].config.search.seed == 4
    for run in runs[1:]:
        assert without_run_id(run.to_dict()) == without_run_id(first)
    assert runs[0].run_id == runs[1].run_id == runs[2].run_id == runs[3].run_id


def test_api_keyword_arguments_override_the_config(users: pd.DataFrame) -> None:
    config = Config.model_validate(
        {
            "sources": [{"kind": "file", "path": "elsewhere.csv"}],
            "id_column": "nobody",
            "features": {"behavioral": ["logins_per_month"], "demographic": ["age"]},
            "search": {**KMEANS, "seed": 5},
            "narration": {"min_cell": 7},
        }
    )
    kept = config.model_dump()
    run = apg.generate(
        users,
        id="user_id",
        behavioral=["logins_per_month", "purchases_per_year"],
        outcome="tenure_months",  # one name is one column
        config=config,
        seed=0,
        llm={"client": "offline", "min_cell": 3},
    )
    assert config.model_dump() == kept  # the caller's config is left alone
    used = run.config
    assert used.id_column == "user_id"
    assert used.features.behavioral == ["logins_per_month", "purchases_per_year"]
    assert used.features.demographic == ["age"]  # not given: the config's
    assert used.features.outcome == ["tenure_months"]
    assert used.search.seed == 0  # an explicit 0 overrides the config's 5
    assert used.narration.client == "offline" and used.narration.min_cell == 3
    assert [s.model_dump()["path"] for s in used.sources] == ["<DataFrame>"]
    assert set(run.personas[0].profile.outcomes) == {"tenure_months"}

    unseeded = apg.generate(users, id="user_id", config=config, llm="offline")
    assert unseeded.config.search.seed == 5 and unseeded.config.narration.min_cell == 7


def test_api_numbers_rows_without_an_id(users: pd.DataFrame) -> None:
    frame = users.drop(columns="user_id")
    frame.index = pd.RangeIndex(100, 100 + len(frame))
    run = apg.generate(frame, **ROLES, config={"search": KMEANS})
    assignments = run.assignments
    assert list(assignments.columns) == ["row", "cluster", "persona_id"]
    assert assignments["row"].tolist() == list(range(1, len(frame) + 1))
    predicted = run.model.predict(frame)
    assert predicted.index.equals(frame.index)
    assert predicted.tolist() == assignments["persona_id"].tolist()


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"behavioral": ["logins", "nps"]}, DataError, ["'logins'"]),
        ({"id": "uid", "behavioral": ["nps"]}, DataError, ["'uid'", "id=COLUMN"]),
        ({}, ConfigError, ["behavioral="]),
        ({"behavioral": ["nps"], "seed": -1}, ConfigError, ["seed=-1"]),
        ({"behavioral": ["nps"], "llm": "gpt"}, ConfigError, ["narration.client"]),
        ({"behavioral": ["nps"], "config": 3}, ConfigError, ["config="]),
        ({"behavioral": ["nps"], "config": "missing.yaml"}, ConfigError, ["missing.yaml"]),
        ({"behavioral": ["nps"], "attitudinal": ["nps"]}, ConfigError, ["'nps'"]),
    ],
    ids=[
        "unknown column",
        "unknown id",
        "no roles",
        "seed",
        "llm",
        "config type",
        "no file",
        "twice",
    ],
)
def test_api_errors_are_apg_errors_naming_the_fault(
    users: pd.DataFrame, kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        apg.generate(users, **{"id": "user_id", **kwargs})
    assert isinstance(caught.value, apg.ApgError)
    for word in words:
        assert word in str(caught.value)


def test_api_input_and_model_errors_are_apg_errors(users: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="DataFrame"):
        apg.generate(users.to_dict(), behavioral=["nps"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a DataFrame"):
        apg.generate()
    duplicated = pd.concat([users, users.head(2)])
    with pytest.raises(apg.ApgError, match="duplicate id"):
        apg.generate(duplicated, id="user_id", behavioral=["nps"])
    run = apg.generate(users, id="user_id", **ROLES, config={"search": KMEANS}, store="s.db")
    with pytest.raises(DataError, match="'nps'"):
        run.model.predict(users.drop(columns="nps"))
    with pytest.raises(NotFoundError):
        apg.PersonaModel.load("run-nope", store="s.db")
    with pytest.raises(StoreError, match="no database"):
        apg.PersonaModel.load(store="missing.db")
    Path("taken").mkdir()
    Path("taken/notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(apg.ApgError):
        run.save("taken")
    with pytest.raises(apg.ApgError):
        run.save(".")  # holds s.db, the run's store


def test_api_face_lists_the_public_names() -> None:
    assert set(apg.__all__) >= {"generate", "Run", "PersonaModel", "ApgError", "__version__"}
    for name in apg.__all__:
        assert getattr(apg, name) is not None
    with pytest.raises(AttributeError):
        apg.nothing_here  # noqa: B018
