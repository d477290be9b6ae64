"""Scale-out on a Dask cluster: candidate fits and Parquet assignment (``pip install apg[dask]``).

Fits: :func:`fit_candidates_dask` runs the search's units of work as tasks on the cluster
through joblib's ``dask`` backend: one K-Means fit per k, one tree per linkage cut at every k,
and one DBSCAN neighbour graph answering every (eps, min_samples). Each unit computes what the
local search (``apg.search.leaderboard``) computes, so candidates are equal: same labels, core
samples and trees, hence scores. K-Means runs on one OpenMP thread inside its task: its sums are
reduced per thread, so the thread count moves inertia and centres in the last bits; pinned,
they are the same on every machine (and bitwise those of a local fit pinned the same way).

Assignment: :func:`assign_parquet_dask` maps the stored model over the partitions of a Parquet
file (``dd.read_parquet(...).map_partitions``); :func:`write_labels_dask` gathers the
partitions in order into the labels CSV, the same bytes ``apg.search.streaming`` writes.
Workers need apg installed and must see the file at the same path (a shared filesystem).

Dask is imported only when used: apg works without it.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from apg.config import SearchConfig
from apg.errors import ConfigError
from apg.search import kernels
from apg.search.candidates import Candidate, dbscan_candidates
from apg.search.model_io import StoredModel
from apg.search.streaming import (
    FileReader,
    LabelsWriter,
    StreamResult,
    labels_frame,
    parquet_float_casts,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

INSTALL_HINT = 'the Dask backend needs the optional extra: pip install "apg[dask]"'
CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler before giving up
Progress = Callable[[str], None]


def require_dask() -> None:
    """Raise a ConfigError naming the extra to install when dask/distributed are missing."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from None


@contextmanager
def dask_client(
    address: str | None, *, timeout: float = CONNECT_TIMEOUT, option: str = "search.dask_address"
) -> Iterator[Client]:
    """A client of the scheduler at ``address``, closed on exit."""
    require_dask()
    if not address:
        raise ConfigError(
            f"the Dask backend needs a scheduler address: set {option} (e.g. "
            "tcp://scheduler:8786) or pass --dask ADDRESS"
        )
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g}s ({exc}); "
            f"check {option} and that `dask scheduler` is running there"
        ) from None
    try:
        yield client
    finally:
        client.close()


# -- units of work: plain functions, run the same locally or as tasks ------------------------
def kmeans_candidate(X: np.ndarray, k: int, n_init: int, seed: int) -> Candidate:
    """One K-Means fit of the grid, on one OpenMP thread (see the module docstring)."""
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="openmp"):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(X)
    return Candidate(
        "kmeans",
        {"k": k},
        model.labels_.astype(np.intp),
        seconds=time.perf_counter() - start,
        inertia=float(model.inertia_),
        centers=model.cluster_centers_,
    )


def linkage_candidates(
    X: np.ndarray, linkage: str, ks: list[int]
) -> tuple[np.ndarray, list[Candidate]]:
    """The tree of one linkage and its cut at every k."""
    start = time.perf_counter()
    tree = kernels.linkage_matrices(X, [linkage])[linkage]
    cuts = kernels.labels_from_linkage(tree, ks)
    per = (time.perf_counter() - start) / len(ks)
    return tree, [
        Candidate("agglomerative", {"k": k, "linkage": linkage}, cuts[k], seconds=per) for k in ks
    ]


# -- fits on the cluster ---------------------------------------------------------------------
def fit_candidates_dask(
    X: np.ndarray,
    cfg: SearchConfig,
    progress: Progress | None = None,
    trees: dict[str, np.ndarray] | None = None,
    *,
    client: Client | None = None,
) -> list[Candidate]:
    """Every candidate of the grid, fitted on the Dask cluster of ``client`` (else of
    ``cfg.dask_address``), in the order of the local search: K-Means, agglomerative, DBSCAN.
    Trees are stored into ``trees`` (by linkage) as the local search does."""
    say = progress or (lambda _msg: None)
    n = len(X)
    km = [k for k in cfg.kmeans.k if k < n] if cfg.kmeans is not None else []
    ag = [k for k in cfg.agglomerative.k if k < n] if cfg.agglomerative is not None else []
    linkages = list(cfg.agglomerative.linkage) if cfg.agglomerative is not None and ag else []
    if client is None:
        with dask_client(cfg.dask_address) as own:
            return fit_candidates_dask(X, cfg, progress, trees, client=own)
    require_dask()
    from joblib import Parallel, delayed, parallel_config

    n_init = cfg.kmeans.n_init if cfg.kmeans is not None else 0
    calls: list[Any] = [delayed(kmeans_candidate)(X, k, n_init, cfg.seed) for k in km]
    calls += [delayed(linkage_candidates)(X, m, ag) for m in linkages]
    if cfg.dbscan is not None:
        calls.append(delayed(dbscan_candidates)(X, cfg.dbscan))
    say(f"search: {len(calls)} fits on the Dask cluster at {client.scheduler.address}")
    out: list[Candidate] = []
    with parallel_config(backend="dask", client=client):
        results = iter(Parallel(n_jobs=-1, return_as="generator")(calls))
        out += [next(results) for _ in km]
        if cfg.kmeans is not None:
            say(f"search: kmeans k={km[0]}..{km[-1]}" if km else "search: kmeans skipped")
        for m in linkages:
            tree, cands = next(results)
            if trees is not None:
                trees[m] = tree
            out += cands
            say(f"search: agglomerative linkage={m}, k={ag[0]}..{ag[-1]}")
        if cfg.dbscan is not None:
            for m, group in next(results):
                out += group
                say(f"search: dbscan min_samples={m}, {len(group)} eps values")
    return out


# -- assignment on the cluster ---------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _model(text: str) -> StoredModel:
    return StoredModel.from_json(text)


def _assign_partition(
    part: pd.DataFrame,
    model_json: str,
    id_column: str,
    persona_of: dict[int, str],
    casts: dict[str, str],
) -> pd.DataFrame:
    for col, dtype in casts.items():
        if part[col].dtype.kind in "iu":
            part = part.assign(**{col: part[col].astype(np.dtype(dtype))})
    model = _model(model_json)
    labels = model.assign(part) if len(part) else np.empty(0, dtype=np.int64)
    return labels_frame(part[id_column], labels, persona_of, id_column)


def assign_parquet_dask(
    path: Path | str,
    model: StoredModel,
    id_column: str,
    *,
    persona_of: dict[int, str] | None = None,
    split_row_groups: bool | str = True,
) -> dd.DataFrame:
    """A lazy Dask frame of ``id, cluster, persona_id`` for the users of a Parquet file (or
    glob), rows in file order, one partition per row group (``split_row_groups="infer"``: Dask
    groups them by size). Checks the columns first, as ``apg.search.streaming`` does."""
    require_dask()
    import dask.dataframe as dd

    reader = FileReader(Path(path), "parquet", None, id_column, model)
    casts: dict[str, str] = {}
    for file, _ in reader.files:
        casts.update(parquet_float_casts(file, model.preprocessing.categorical))
    ddf = dd.read_parquet(
        [str(p.resolve()) for p, _ in reader.files],
        columns=reader.needed,
        split_row_groups=split_row_groups,
    )
    meta = labels_frame(ddf._meta[id_column], np.empty(0, dtype=np.int64), {}, id_column)
    return ddf.map_partitions(
        _assign_partition, model.to_json(), id_column, dict(persona_of or {}), casts, meta=meta
    )


def write_labels_dask(
    labels: dd.DataFrame,
    out: Path | str,
    client: Client,
    *,
    on_bad_ids: Callable[[], None] = lambda: None,
    window: int = 4,
) -> StreamResult:
    """Gather the partitions of ``labels`` in order into one CSV, at most ``window`` in flight
    (client memory: ``window`` partitions of labels, e.g. row groups). Ids are checked as
    ``apg.search.streaming`` checks them; ``on_bad_ids`` raises the exact error."""
    parts = labels.to_delayed()
    pending: deque[Any] = deque()
    try:
        with LabelsWriter(Path(out), str(labels.columns[0]), on_bad_ids) as writer:
            for i in range(len(parts)):
                while len(pending) < window and i + len(pending) < len(parts):
                    pending.append(client.compute(parts[i + len(pending)]))
                writer.write(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
    return writer.result()


def assign_parquet_dask_to_csv(
    path: Path | str,
    model: StoredModel,
    id_column: str,
    out: Path | str,
    client: Client | str,
    *,
    persona_of: dict[int, str] | None = None,
    split_row_groups: bool | str = True,
) -> StreamResult:
    """:func:`assign_parquet_dask` then :func:`write_labels_dask`: the bytes
    ``apg.search.streaming.assign_parquet`` writes. ``client`` may be an address (``--dask``)."""
    if isinstance(client, str):
        with dask_client(client, option="--dask") as own:
            return assign_parquet_dask_to_csv(
                path,
                model,
                id_column,
                out,
                own,
                persona_of=persona_of,
                split_row_groups=split_row_groups,
            )
    labels = assign_parquet_dask(
        path, model, id_column, persona_of=persona_of, split_row_groups=split_row_groups
    )
    reader = FileReader(Path(path), "parquet", None, id_column, model)
    return write_labels_dask(labels, out, client, on_bad_ids=reader.raise_id_error)
