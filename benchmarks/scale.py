"""How a full run grows with the number of users: Parquet in, stored personas out.

    python benchmarks/scale.py                     # 10k, 100k, 1M users x 15 features
    python benchmarks/scale.py --rows 10000 100000
    python benchmarks/scale.py --stream --rows 1000000 3000000   # the streamed run
    python benchmarks/scale.py --table dense --rows 1000000      # a table DBSCAN wins
    python benchmarks/scale.py --table users dense --rows 1000000   # K-Means vs DBSCAN winner
    python benchmarks/scale.py --rows 20000 --exact-max-rows 20000   # an exact run

Each size runs in a fresh process (so peak memory is that run's own) through the same code
as `apg run` with the offline narrator, and prints wall time, peak memory and the time per
stage (search is the fit on the sample in sample mode; assign places every user with the
winner's rule). The last column is the ratio to the first size, so growth with n is visible.
Peak memory is the summed RSS of the run's process tree (the run and its tree workers at the
same moment), sampled every 50 ms.

``--table users`` (default) is the sample users table widened to 15 features, which K-Means
wins. ``--table dense`` is 15 numeric features: six dense blobs of different sizes and
spreads, plus 3% of users scattered around them; the default search picks DBSCAN there, so
every user is placed by the nearest-core rule (``apg.search.core_rule``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from peak import run_sampled

EXTRA = 4  # the sample table has 11 clustering columns; 4 more make 15


def make_table(rows: int, path: Path) -> list[str]:
    import numpy as np

    from apg.sources.sample import generate_users

    table = generate_users(rows, seed=0)
    rng = np.random.default_rng(1)
    # Extra behavioural signals correlated with existing ones, as real tables have.
    table["pages_per_session"] = (
        table["avg_session_minutes"].fillna(10) / 3 + rng.gamma(2.0, 1.0, rows)
    ).round(2)
    table["mobile_share"] = rng.beta(2, 2, rows).round(3)
    table["notifications_opened"] = rng.poisson(
        np.clip(table["logins_per_month"].to_numpy() / 2, 0.1, None)
    )
    table["referrals"] = rng.poisson(0.3 + (table["nps"].fillna(5).to_numpy() > 8), rows)
    table.to_parquet(path, index=False)
    return EXTRA_COLUMNS


EXTRA_COLUMNS = ["pages_per_session", "mobile_share", "notifications_opened", "referrals"]
DENSE_COLUMNS = [f"signal_{j}" for j in range(15)]


def make_dense_table(rows: int, path: Path) -> None:
    """Six dense blobs of different sizes and spreads in 15 features, 3% scattered users."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (6, 15))
    shares = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
    spread = np.array([0.5, 0.7, 0.4, 0.6, 0.5, 0.8])
    blob = rng.choice(6, rows, p=shares)
    X = centres[blob] + rng.normal(0, 1, (rows, 15)) * spread[blob, None]
    scattered = rng.random(rows) < 0.03
    X[scattered] = rng.uniform(-10, 10, (int(scattered.sum()), 15))
    table = pd.DataFrame(X.round(3), columns=DENSE_COLUMNS)
    table.insert(0, "user_id", np.arange(rows))
    table.to_parquet(path, index=False)


def one(
    rows: int, workdir: Path, stream: str = "auto", table: str = "users", exact: int | None = None
) -> dict[str, float]:
    """Run one size in this process on the Parquet file the parent wrote; returns timings."""
    from apg.config import parse_config
    from apg.report.outputs import write_outputs
    from apg.sources.sample import ATTITUDINAL, BEHAVIORAL, DEMOGRAPHIC, ID_COLUMN
    from apg.store import open_store
    from apg.store.runner import run_with_store

    data = workdir / f"users-{rows}.parquet"
    features = {
        "behavioral": [*BEHAVIORAL, *EXTRA_COLUMNS],
        "attitudinal": list(ATTITUDINAL),
        "demographic": list(DEMOGRAPHIC),
    }
    if table == "dense":
        features = {"behavioral": DENSE_COLUMNS}
    search: dict[str, object] = {"stream": stream}
    if exact is not None:
        search["exact_max_rows"] = exact
    config = parse_config(
        {
            "sources": [{"kind": "file", "path": str(data)}],
            "id_column": ID_COLUMN,
            "features": features,
            "search": search,
        },
        "benchmark",
        base_dir=workdir,
    )
    store = open_store(f"sqlite:///{workdir / 'apg.db'}")
    start = time.perf_counter()
    stored = run_with_store(config, store)  # the pipeline, then one transaction into SQLite
    result = stored.result
    t0 = time.perf_counter()
    write_outputs(result, workdir / f"out-{rows}")
    timings = dict(result.timings)
    timings["write"] = time.perf_counter() - t0
    if "assign" not in timings:
        # Sample mode places every user inside the search stage; shown as its own stage.
        timings["assign"] = result.search.assign_seconds or 0.0
        timings["search"] -= timings["assign"]
    timings["wall"] = time.perf_counter() - start
    timings["store"] = timings["wall"] - sum(
        timings[s] for s in ("read", "prepare", "search", "assign", "profile", "narrate", "write")
    )
    timings["mode"] = result.search.mode  # type: ignore[assignment]
    timings["winner"] = result.search.winner.key  # type: ignore[assignment]
    timings["streamed"] = result.matrix is not None and not result.matrix.in_memory
    return timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument(
        "--stream",
        action="store_true",
        help="stream the Parquet file (search.stream: on); default: search.stream: off",
    )
    ap.add_argument("--table", choices=["users", "dense"], nargs="+", default=["users"])
    ap.add_argument("--exact-max-rows", type=int, help="search.exact_max_rows (default: apg's)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        stream = "on" if args.stream else "off"
        table = args.table[0]
        print(json.dumps(one(args.child, args.workdir, stream, table, args.exact_max_rows)))
        return
    stages = ["read", "prepare", "search", "assign", "profile", "narrate", "store", "write"]
    print(
        f"{'users':>10} {'wall s':>8} {'peak MiB':>9} "
        + " ".join(f"{s:>8}" for s in stages)
        + f" {'× first':>8}  winner"
    )
    first = None
    for rows, table in [(r, t) for r in args.rows for t in args.table]:
        with tempfile.TemporaryDirectory() as tmp:
            # The table is written by another process, so the run's peak memory is its own.
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"from pathlib import Path; import sys; "
                    f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import scale; "
                    f"scale.{'make_dense_table' if table == 'dense' else 'make_table'}"
                    f"({rows}, Path({tmp!r}) / 'users-{rows}.parquet')",
                ],
                check=True,
            )
            out, peak = run_sampled(
                [sys.executable, __file__, "--child", str(rows), "--workdir", tmp]
                + ["--table", table]
                + (["--stream"] if args.stream else [])
                + ([f"--exact-max-rows={args.exact_max_rows}"] if args.exact_max_rows else [])
            )
        t = json.loads(out.strip().splitlines()[-1])
        t["peak_mib"] = peak
        first = first or t["wall"]
        print(
            f"{rows:>10,} {t['wall']:>8.2f} {t['peak_mib']:>9.0f} "
            + " ".join(f"{t.get(s, 0):>8.2f}" for s in stages)
            + f" {t['wall'] / first:>8.2f}  {t['winner']} ({t['mode']}"
            + (", streamed)" if t["streamed"] else ")")
        )


if __name__ == "__main__":
    main()
