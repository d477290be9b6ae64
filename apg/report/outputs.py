"""Write a run's files: personas.json, candidates.csv, assignments.csv, report.md.

Files are written into a temporary sibling folder and moved into place at the end, so a failed
run never leaves a half-written output folder; :mod:`apg.report.folder` decides which folders
may be replaced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from apg.narration.display import Labels
from apg.pipeline import RunResult, labels_frame
from apg.report.data import report_data_from_result
from apg.report.folder import check_output_folder, discard, replace_folder, stage_folder
from apg.report.html import render_html
from apg.report.markdown import render_failure, render_report
from apg.search.candidates import Candidate

CANDIDATE_COLUMNS = [
    "algorithm",
    "params",
    "n_clusters",
    "noise_share",
    "min_cluster_share",
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "inertia",
    "choice_silhouette",
    "stability",
    "evenness",
    "eligible",
    "reason",
    "selected",
    "seconds",
]


def _clean(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def personas_document(result: RunResult) -> dict[str, Any]:
    frame, prepared, w = result.frame, result.prepared, result.search.winner
    return _clean(
        {
            "run_id": result.run_id,
            "created_at": result.created_at,
            "data": {
                "rows_read": len(result.table.frame),
                "rows_used": len(result.labels),
                "rows_dropped": prepared.rows_dropped,
                "rows_per_source": result.table.rows_per_source,
                "fingerprint": result.table.fingerprint,
                "imputed": prepared.imputed,
                "transforms": prepared.transforms,
                "binary": prepared.binary,
                "dates": prepared.dates,
                "redundant": prepared.redundant,
                "features": {"behavioral": frame.behavioral, "attitudinal": frame.attitudinal},
                "dropped_columns": frame.dropped_columns,
                "demographics": frame.demographic,
                # How each column is shown (names, units, value labels); keys stay as given.
                "labels": Labels.from_config(result.config.labels).as_dict(
                    [*frame.features, *frame.demographic, *frame.outcome]
                ),
                "matrix_columns": prepared.columns,
                "pca_explained_variance": prepared.pca_variance,
            },
            "selection": {
                "algorithm": w.algorithm,
                "params": w.params,
                "n_clusters": w.n_clusters,
                "silhouette": w.silhouette,
                "noise_share": w.noise_share,
                "elbow_k": result.search.elbow_k,
                "candidates": len(result.search.candidates),
                "eligible": sum(c.eligible for c in result.search.candidates),
                "rule": result.config.search.selection,
                "stability": w.stability,
                # "weak" appears in the file only when the run is weak (tools grep for it).
                "structure": "weak" if result.search.weak else "clear",
                "structure_reasons": result.search.weak,
            },
            "personas": [p.model_dump(mode="json") for p in result.personas],
            "outliers": result.outliers.model_dump(mode="json"),
        }
    )


def candidates_frame(candidates: list[Candidate]) -> pd.DataFrame:
    rows = [
        {
            "algorithm": c.algorithm,
            "params": json.dumps(c.params, sort_keys=True),
            "n_clusters": c.n_clusters,
            "noise_share": c.noise_share,
            "min_cluster_share": c.min_cluster_share,
            "silhouette": c.silhouette,
            "davies_bouldin": c.davies_bouldin,
            "calinski_harabasz": c.calinski_harabasz,
            "inertia": c.inertia,
            "choice_silhouette": c.choice_silhouette,
            "stability": c.stability,
            "evenness": c.evenness,
            "eligible": c.eligible,
            "reason": c.reason,
            "selected": c.selected,
            "seconds": round(c.seconds, 4),
        }
        for c in candidates
    ]
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def write_outputs(
    result: RunResult,
    out_dir: Path,
    *,
    include_timing: bool = True,
    protected: Sequence[Path] = (),
) -> Path:
    """Write all files to ``out_dir`` at once; returns the folder.

    ``out_dir`` may only be new, empty or an earlier apg output folder; ``protected`` are files
    the run read, which it must not contain. ``include_timing=False`` blanks the ``seconds``
    column so reruns are byte-identical.
    """
    out_dir = check_output_folder(out_dir, protected)
    tmp = stage_folder(out_dir)
    try:
        doc = personas_document(result)
        (tmp / "personas.json").write_text(
            json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
        )
        cands = candidates_frame(result.search.candidates)
        if not include_timing:
            cands["seconds"] = ""
        cands.to_csv(tmp / "candidates.csv", index=False, lineterminator="\n")
        _write_assignments(result, tmp / "assignments.csv")
        (tmp / "report.md").write_text(render_report(result), encoding="utf-8")
        (tmp / "report.html").write_text(
            render_html(report_data_from_result(result)), encoding="utf-8"
        )
        calls = getattr(result, "llm_calls", [])
        if calls:
            with (tmp / "llm_calls.jsonl").open("w", encoding="utf-8") as fh:
                for call in calls:
                    fh.write(call.model_dump_json() + "\n")  # type: ignore[attr-defined]
        replace_folder(tmp, out_dir, [p.name for p in tmp.iterdir()], protected)
    except BaseException:
        discard(tmp)
        raise
    return out_dir


ASSIGNMENT_CHUNK_ROWS = 100_000


def _write_assignments(result: RunResult, path: Path) -> None:
    """assignments.csv a block of rows at a time: the whole table at once holds every id as a
    Python string (~60 MB per million users) and pandas' text copies of the columns."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        for start in range(0, max(len(result.labels), 1), ASSIGNMENT_CHUNK_ROWS):
            block = labels_frame(result, slice(start, start + ASSIGNMENT_CHUNK_ROWS))
            block.to_csv(fh, header=start == 0, index=False, lineterminator="\n")


def write_failure(
    candidates: list[Candidate], message: str, out_dir: Path, *, protected: Sequence[Path] = ()
) -> Path:
    """A run that found no eligible candidate: ``candidates.csv`` and a ``report.md`` that
    lists every candidate with the reason it was rejected and what to change."""
    out_dir = check_output_folder(out_dir, protected)
    tmp = stage_folder(out_dir)
    try:
        candidates_frame(candidates).to_csv(
            tmp / "candidates.csv", index=False, lineterminator="\n"
        )
        (tmp / "report.md").write_text(render_failure(candidates, message), encoding="utf-8")
        replace_folder(tmp, out_dir, [p.name for p in tmp.iterdir()], protected)
    except BaseException:
        discard(tmp)
        raise
    return out_dir
