"""Per-persona confidence and the weak-structure flag: the documented rule, the figures
against scikit-learn, and where a reader sees them (personas.json, reports, CLI, exports)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.metrics import silhouette_samples

from apg.cli.main import main
from apg.config import parse_config
from apg.pipeline import run
from apg.profiles.confidence import level_of
from apg.report.markdown import WEAK_TITLE


@pytest.mark.parametrize(
    ("size", "silhouette", "stability", "level"),
    [
        (500, 0.40, 0.90, "high"),
        (500, 0.20, 0.90, "medium"),  # stable but not well separated
        (500, 0.40, 0.60, "medium"),  # separated but only fairly stable
        (500, 0.40, 0.45, "low"),  # dissolves on other samples
        (500, 0.05, 0.95, "low"),  # members as close to another persona
        (20, 0.40, 0.95, "low"),  # too few users
        (500, 0.40, None, "medium"),  # stability not measured
    ],
)
def test_confidence_levels_follow_the_rule(
    size: int, silhouette: float, stability: float | None, level: str
) -> None:
    assert level_of(size, silhouette, stability).level == level


def test_confidence_low_says_why() -> None:
    c = level_of(20, 0.05, 0.4)
    assert c.reasons == [
        "stability 0.40 < 0.5: it dissolves on other samples",
        "silhouette 0.05 < 0.1: its members are as close to others",
        "20 users < 30",
    ]


def write(tmp_path: Path, frame: pd.DataFrame, cols: list[str]) -> Path:
    frame.to_csv(tmp_path / "t.csv", index=False)
    raw = {
        "sources": [{"kind": "file", "path": "t.csv"}],
        "id_column": "uid",
        "features": {"behavioral": cols},
        "search": {"kmeans": {"k": [2, 6], "n_init": 3}, "agglomerative": None, "dbscan": None},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return tmp_path / "run.yaml"


def planted(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [8, 0], [0, 8]], dtype=float)
    X = np.vstack([rng.normal(c, 1.0, size=(n // 3, 2)) for c in centres])
    frame = pd.DataFrame(X, columns=["a", "b"])
    frame.insert(0, "uid", [f"u{i}" for i in range(len(frame))])
    return frame


def test_confidence_silhouette_and_stability_per_persona(tmp_path: Path) -> None:
    cfg = write(tmp_path, planted(), ["a", "b"])
    result = run(parse_config(yaml.safe_load(cfg.read_text()), base_dir=tmp_path))
    values = silhouette_samples(result.prepared.X, result.labels)
    assert result.search.weak == []
    cli = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", "out", "-q"])
    text = (tmp_path / "out" / "personas.json").read_text()
    assert json.loads(text)["selection"]["structure"] == "clear"
    assert "weak" not in text.lower() and "WEAK" not in cli.stdout
    for p in result.personas:
        assert p.confidence is not None
        assert p.confidence.silhouette == pytest.approx(values[result.labels == p.cluster].mean())
        assert p.confidence.stability == result.search.winner.cluster_stability[p.cluster]
        assert p.confidence.level == "high"


def test_weak_run_is_flagged_everywhere_a_reader_looks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.uniform(size=(900, 4)), columns=["a", "b", "c", "d"])
    frame.insert(0, "uid", [f"u{i}" for i in range(len(frame))])
    cfg = write(tmp_path, frame, ["a", "b", "c", "d"])
    result = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", "out", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "personas.json").read_text())
    reasons = doc["selection"]["structure_reasons"]
    assert doc["selection"]["structure"] == "weak" and reasons
    assert reasons[0].startswith("silhouette 0.")
    assert result.stdout.splitlines()[0] == (
        f"WEAK STRUCTURE: read these personas as tentative ({'; '.join(reasons)})"
    )
    listed = CliRunner().invoke(main, ["runs", "list"]).stdout.splitlines()[1]
    assert " succeeded, weak " in listed
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"> **{WEAK_TITLE}.**" in md
    assert "; ".join(reasons) in md
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<aside class="weak" role="alert">' in html
    pid = doc["personas"][0]["persona_id"]
    shown = CliRunner().invoke(main, ["personas", "show", pid]).stdout
    conf = doc["personas"][0]["confidence"]
    assert f"confidence {conf['level']}: stability {conf['stability']:.2f}" in shown
    rows = pd.read_csv(
        pd.io.common.StringIO(CliRunner().invoke(main, ["export", "--format", "csv"]).stdout)
    )
    assert rows.set_index("persona_id").loc[pid, "confidence"].startswith("confidence ")
