"""A hostile corpus through the command line (issue 18): every bad input ends in one
``error:`` line with exit 1, no traceback, no output folder and no run stored as succeeded."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from apg.cli.main import main

Case = Callable[[Path], list[str]]


def _users(rows: int = 60, **columns: object) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    frame = pd.DataFrame({"user_id": range(rows), "a": rng.normal(size=rows)})
    return frame.assign(**columns)


def _csv(tmp: Path, frame: pd.DataFrame, behavioral: str = "a,b") -> list[str]:
    frame.to_csv(tmp / "users.csv", index=False)
    return ["--data", str(tmp / "users.csv"), "--id", "user_id", "--behavioral", behavioral]


def infinite(tmp: Path) -> list[str]:
    return _csv(tmp, _users(b=[np.inf] + [1.0] * 59))


def overflowing(tmp: Path) -> list[str]:
    return _csv(tmp, _users(b=[1e308, -1e308] + [1.0, 2.0] * 29))


def text_infinity(tmp: Path) -> list[str]:
    return _csv(tmp, _users(b=["-inf"] + ["1"] * 59))


def nested_struct(tmp: Path) -> list[str]:
    table = pa.table({"user_id": list(range(40)), "a": [float(i) for i in range(40)],
                      "b": [{"x": i} for i in range(40)]})  # fmt: skip
    pq.write_table(table, tmp / "users.parquet")
    return ["--data", str(tmp / "users.parquet"), "--id", "user_id", "--behavioral", "a,b"]


def nested_list(tmp: Path) -> list[str]:
    table = pa.table({"user_id": list(range(40)), "a": [float(i) for i in range(40)],
                      "b": [[i, 1] for i in range(40)]})  # fmt: skip
    pq.write_table(table, tmp / "users.parquet")
    return ["--data", str(tmp / "users.parquet"), "--id", "user_id", "--behavioral", "a,b"]


def one_giant_line(tmp: Path) -> list[str]:
    (tmp / "users.csv").write_bytes(b"\x00garbage" * 200_000)
    return ["--data", str(tmp / "users.csv"), "--id", "user_id", "--behavioral", "a"]


def wide_header(tmp: Path) -> list[str]:
    header = ",".join(f"c{i}" for i in range(10_001))
    (tmp / "users.csv").write_text(header + "\n" + ",".join(["1"] * 10_001) + "\n")
    return ["--data", str(tmp / "users.csv"), "--id", "c0", "--behavioral", "c1"]


def missing_column(tmp: Path) -> list[str]:
    return _csv(tmp, _users(b=1.0), behavioral="a,nope")


def duplicate_ids(tmp: Path) -> list[str]:
    return _csv(tmp, _users(b=np.arange(60.0)).assign(user_id=[1, 1, *range(2, 60)]))


def too_few_rows(tmp: Path) -> list[str]:
    return _csv(tmp, _users(9, b=np.arange(9.0)))


def binary_file(tmp: Path) -> list[str]:
    (tmp / "users.csv").write_bytes(bytes(range(256)) * 50)
    return ["--data", str(tmp / "users.csv"), "--id", "user_id", "--behavioral", "a"]


def config_is_a_folder(tmp: Path) -> list[str]:
    (tmp / "conf").mkdir()
    return ["--config", str(tmp / "conf")]


def alias_bomb(tmp: Path) -> list[str]:
    lines = ['l0: &l0 ["${HOME}", "${HOME}", "${HOME}", "${HOME}", "${HOME}", "${HOME}"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 6)}]" for i in range(1, 10)]
    (tmp / "bomb.yaml").write_text("\n".join(lines) + "\n")
    return ["--config", str(tmp / "bomb.yaml")]


def duplicate_keys(tmp: Path) -> list[str]:
    (tmp / "c.yaml").write_text("id_column: a\nid_column: b\n")
    return ["--config", str(tmp / "c.yaml")]


def not_yaml(tmp: Path) -> list[str]:
    (tmp / "c.yaml").write_text("sources: [\n")
    return ["--config", str(tmp / "c.yaml")]


def unknown_key(tmp: Path) -> list[str]:
    _users(b=1.0).to_csv(tmp / "users.csv", index=False)
    (tmp / "c.yaml").write_text(
        "sources: [{kind: file, path: users.csv}]\nid_column: user_id\n"
        "features: {behavioral: [a]}\nsearch: {kmeans: {kk: [2]}}\n"
    )
    return ["--config", str(tmp / "c.yaml")]


def huge_grid(tmp: Path) -> list[str]:
    _users(b=1.0).to_csv(tmp / "users.csv", index=False)
    (tmp / "c.yaml").write_text(
        "sources: [{kind: file, path: users.csv}]\nid_column: user_id\n"
        "features: {behavioral: [a]}\nsearch: {dbscan: {eps: ["
        + ", ".join(str(0.01 * i) for i in range(1, 300))
        + "]}}\n"
    )
    return ["--config", str(tmp / "c.yaml")]


def bad_seed(tmp: Path) -> list[str]:
    return [*_csv(tmp, _users(b=np.arange(60.0))), "--seed", "-1"]


CASES = [
    infinite, overflowing, text_infinity, nested_struct, nested_list, one_giant_line,
    wide_header, missing_column, duplicate_ids, too_few_rows, binary_file, config_is_a_folder,
    alias_bomb, duplicate_keys, not_yaml, unknown_key, huge_grid, bad_seed,
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_hostile_input_is_one_error_line_and_leaves_nothing(case: Case, tmp_path: Path) -> None:
    db = tmp_path / "apg.db"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", *case(tmp_path), "--db", str(db), "--out", str(out)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    # One error, last; an invalid config lists each problem on an indented line under it.
    assert len(errors) == 1, result.stderr
    assert all(line.startswith("  ") for line in lines[errors[0] + 1 :]), result.stderr
    assert not out.exists()
    if db.exists():
        with sqlite3.connect(db) as conn:
            statuses = [s for (s,) in conn.execute("SELECT status FROM apg_runs")]
        assert "succeeded" not in statuses and "running" not in statuses
