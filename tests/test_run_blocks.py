"""Steps that go through a large table a block of rows at a time (to bound memory) give what
one pass over all rows gives: the fingerprint, the stored members, assignments.csv and the
stored model. The tests shrink the blocks to a few rows."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import store_helpers as h

import apg.prepare.preprocessing
import apg.report.outputs
import apg.store.record
from apg.report.outputs import write_outputs
from apg.search.model_io import StoredModel
from apg.sources import fingerprint
from apg.store import Store
from apg.store import schema as t

# The package exports the function under the module's name.
fingerprint_module = importlib.import_module("apg.sources.fingerprint")


def test_fingerprint_in_blocks_of_text_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    n = 103
    frame = pd.DataFrame(
        {
            "id": [f"u{i:03d}" for i in range(n)],
            "plan": rng.choice(["free", "pro", None], n),
            "mixed": pd.Series([1, "1", 2.5, None] * 25 + ["x", "y", "z"], dtype=object),
            "cat": pd.Categorical(rng.choice(["a", "b"], n)),
            "spend": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 3.0, n)),
        }
    )
    whole = fingerprint(frame)  # every column in one block: 103 rows < TEXT_BLOCK_ROWS
    monkeypatch.setattr(fingerprint_module, "TEXT_BLOCK_ROWS", 10)
    assert fingerprint(frame) == whole
    assert fingerprint(frame.iloc[::-1]) == whole  # still independent of row order
    assert fingerprint(frame.assign(plan=frame["plan"].fillna("free"))) != whole
    assert fingerprint(frame.iloc[:0]) == fingerprint(frame.iloc[:0].copy())


def test_run_in_blocks_stores_and_writes_what_one_pass_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = h.blobs()  # 600 users in 4 segments
    whole_fingerprint = fingerprint(frame)
    monkeypatch.setattr(fingerprint_module, "TEXT_BLOCK_ROWS", 7)
    monkeypatch.setattr(apg.store.record, "MEMBER_BATCH", 7)
    monkeypatch.setattr(apg.report.outputs, "ASSIGNMENT_CHUNK_ROWS", 7)
    monkeypatch.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", 50)
    with Store(f"sqlite:///{tmp_path / 'apg.db'}") as store:
        stored = h.run(store, frame)
        result = stored.result
        with store.read() as conn:
            members = conn.execute(
                sa.select(t.members.c.user_id, t.members.c.cluster).where(
                    t.members.c.run_id == stored.run_id
                )
            ).all()
            document = conn.execute(sa.select(t.models.c.document)).scalar_one()
    assert result.table.fingerprint == whole_fingerprint
    labels = result.labels.tolist()
    assert sorted(members) == sorted(zip(frame["user_id"], labels, strict=True))
    # The stored model (fitted column by column above 50 rows) places every user as labelled.
    assert np.array_equal(StoredModel.from_json(document).assign(frame), result.labels)

    out = write_outputs(result, tmp_path / "out")
    persona_of = {p.cluster: p.persona_id for p in result.personas}
    expected = pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "cluster": labels,
            "persona_id": [persona_of.get(c, "") for c in labels],
        }
    ).to_csv(index=False, lineterminator="\n")
    assert (out / "assignments.csv").read_text(encoding="utf-8") == expected
