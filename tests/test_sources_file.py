"""The file source reads each format like pandas does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from apg.sources.file import read_table


@pytest.mark.parametrize("options", [{}, {"columns": ["user_id", "nps", "country"]}])
def test_read_table_parquet_equals_pandas(
    tmp_path: Path, sample_users: pd.DataFrame, options: dict[str, object]
) -> None:
    path = tmp_path / "u.parquet"
    sample_users.to_parquet(path, index=False)
    got = read_table(path, "parquet", dict(options), key="user_id")
    pd.testing.assert_frame_equal(got, pd.read_parquet(path, **options))


def test_read_table_csv_keeps_ids_as_text(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("user_id,x\n0001,1\n1,2\n")
    got = read_table(path, "csv", {}, key="user_id")
    assert got["user_id"].tolist() == ["0001", "1"]
    assert got["x"].tolist() == [1, 2]
