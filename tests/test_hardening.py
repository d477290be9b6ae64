"""Hardening (issue 18): bad seeds, impossible k ranges, duplicate YAML keys, spreadsheet
formulas in exports, HTML in report.md: one clear error or inert text, never a traceback."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from apg.cli.main import main
from apg.config import SearchConfig, load_config
from apg.errors import ConfigError
from apg.report.markdown import _md
from apg.store.export import spreadsheet_safe


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_hardening_seed_out_of_range_is_one_error_line(seed: str, sample_csv: Path) -> None:
    code, out, err = invoke(
        "run", "--data", str(sample_csv), "--id", "user_id", "--behavioral", "nps",
        "--seed", seed, "--no-store",
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err == f"error: --seed {seed}: a seed is a whole number from 0 to 4294967295\n"


def test_hardening_config_seed_out_of_range_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"less than or equal to 4294967295"):
        SearchConfig(seed=2**32)


def test_hardening_k_beyond_max_clusters_is_an_error_not_a_silent_clip() -> None:
    with pytest.raises(ValueError) as info:
        SearchConfig.model_validate({"kmeans": {"k": [2, 100000]}})
    assert (
        "kmeans.k goes up to 100000 but max_clusters is 10: candidates above it could never be "
        "chosen; lower the k range or raise search.max_clusters"
    ) in str(info.value)


def test_hardening_duplicate_yaml_keys_are_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "sources: [{kind: file, path: u.csv}]\nid_column: user_id\n"
        "features: {behavioral: [a]}\nsearch:\n  seed: 1\n  seed: 2\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: not valid YAML at line 6, column 3: key 'seed' is given twice (lines 5 and "
        "6); keep one"
    )


def test_hardening_yaml_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}: not valid YAML at line 2, column 1: ")


def test_hardening_same_key_in_different_mappings_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "sources": [{"kind": "file", "path": "u.csv"}],
                "id_column": "user_id",
                "features": {"behavioral": ["a"]},
                "search": {"kmeans": {"k": [2, 3]}, "agglomerative": {"k": [2, 3]}},
            }
        ),
        encoding="utf-8",
    )
    assert load_config(path).search.kmeans.k == [2, 3]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Loyal buyer", "Loyal buyer"),
        (3, 3),
    ],
)
def test_hardening_csv_cells_never_start_a_formula(value: object, expected: object) -> None:
    assert spreadsheet_safe(value) == expected
    # Through the csv module and back, the cell is what a spreadsheet would read.
    cell = next(csv.reader(io.StringIO(csv_line(spreadsheet_safe(value)), newline="")))[0]
    assert cell == str(expected)


def csv_line(value: object) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow([value])
    return buf.getvalue()


def test_hardening_report_md_shows_html_from_the_data_as_text() -> None:
    assert _md("<script>alert(1)</script> | x") == "&lt;script&gt;alert(1)&lt;/script&gt; \\| x"
