"""Shared fixtures: an isolated environment and real sample data on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's APG_*/OPENAI_* settings or writes into the repo."""
    import os

    for name in list(os.environ):
        if name.startswith(("APG_", "OPENAI_")) and name != "APG_TEST_POSTGRES_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def sample_users() -> pd.DataFrame:
    from apg.sources.sample import generate_users

    return generate_users(1500, seed=0)


@pytest.fixture
def sample_csv(tmp_path: Path, sample_users: pd.DataFrame) -> Path:
    path = tmp_path / "users.csv"
    sample_users.to_csv(path, index=False)
    return path


def shared_dataset(name: str) -> Path:
    """A real public dataset from ../shared/data; skip when the folder is not there."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found: the shared datasets are not mounted beside the repo")
    return path
