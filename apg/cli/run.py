"""``apg run``: the whole pipeline from a config or the quick ``--data`` form, to ``--out``.

The options become a :class:`~apg.config.Config`; the run itself is :func:`apg.api.execute`,
the same call :func:`apg.generate` makes, and ``--out`` is :meth:`apg.api.Run.save`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from apg.api.inputs import MAX_SEED, ROLES, ROW_ID
from apg.api.inputs import run_inputs as api_run_inputs
from apg.cli.options import parse_algorithms, parse_k, parse_names, parse_sep
from apg.cli.store import CONTEXT
from apg.config import (
    AgglomerativeGrid,
    Config,
    DbscanGrid,
    KMeansGrid,
    load_config,
    parse_config,
)
from apg.errors import ApgError, ConfigError
from apg.sources.base import SourceContext
from apg.sources.file import FileSource, default_separator, detect_separator, format_of

# ROW_ID (from the API): the id column apg run --data adds when no --id is given, the row
# number (1 = first data row), as apg.generate numbers a DataFrame's rows.
TEXT_FORMATS = ("csv", "tsv")


def quick_config(
    data: Path,
    id_column: str | None,
    roles: dict[str, list[str]],
    sep: str | None = None,
    na_values: list[str] | None = None,
) -> Config:
    """The config that ``apg run --data ...`` stands for. Without ``id_column`` the rows are
    numbered into a new column :data:`ROW_ID`, which becomes the id."""
    options: dict[str, Any] = {}
    if sep is not None:
        options["sep"] = sep
    if na_values:
        options["na_values"] = list(na_values)
    source: dict[str, Any] = {"kind": "file", "path": str(data), "options": options}
    if id_column is None:
        source["row_id"] = ROW_ID
    raw = {
        "sources": [source],
        "id_column": ROW_ID if id_column is None else id_column,
        "features": {role: list(roles.get(role, [])) for role in ROLES},
    }
    return parse_config(raw, "command line", base_dir=Path.cwd())


def data_config(
    data: Path,
    id_column: str | None,
    lists: dict[str, str | None],
    sep: str | None,
    na_values: str | None,
    stream: bool | None,
) -> tuple[Config, list[str]]:
    """The config of ``apg run --data`` from the option texts, and the notes to print before
    the run (the separator used, the row-number id)."""
    if id_column == "":
        raise ConfigError(
            "--id '': give the id column's name, or leave --id out to number the rows"
        )
    roles = {
        role: parse_names(text, f"--{role}") for role, text in lists.items() if text is not None
    }
    if not roles.get("behavioral") and not roles.get("attitudinal"):
        raise ConfigError("--data needs --behavioral and/or --attitudinal columns to cluster")
    fmt = format_of(data)
    if fmt is not None and fmt not in TEXT_FORMATS:
        text_only = [o for o, v in (("--sep", sep), ("--na-values", na_values)) if v is not None]
        if text_only:
            verb = "applies" if len(text_only) == 1 else "apply"
            raise ConfigError(
                f"{' and '.join(text_only)} {verb} to text tables (.csv, .tsv, .txt); "
                f"{str(data)!r} is {fmt}"
            )
    markers = parse_names(na_values, "--na-values", "marker") if na_values is not None else None
    notes = []
    chosen = parse_sep(sep) if sep is not None else None
    if chosen is None and fmt in TEXT_FORMATS:
        chosen, note = _detected_separator(data, fmt)
        if note:
            notes.append(note)
    if id_column is None:
        taken = [role for role, names in roles.items() if ROW_ID in names]
        if taken:
            raise ConfigError(
                f"without --id the rows are numbered into a new column {ROW_ID!r}, but "
                f"{ROW_ID!r} is listed in --{taken[0]}; pass --id COLUMN naming the id column"
            )
        if stream:
            raise ConfigError(
                "--stream needs --id: numbering the rows (the id without --id) reads the "
                "table whole"
            )
        notes.append(
            f"read: no --id, so users are numbered by row in a new column {ROW_ID!r} (1 = the "
            "first data row); matching personas across runs then relies on the rows keeping "
            "their order"
        )
    config = quick_config(data, id_column, roles, chosen, markers)
    if id_column is None:
        config.search.stream = "off"
    return config, notes


def _detected_separator(data: Path, fmt: str) -> tuple[str | None, str | None]:
    """The separator to pass (None: the format's default) and the note that reports it."""
    spec = FileSource(path=str(data))
    try:
        first = spec.paths(SourceContext(base_dir=Path.cwd(), id_column=""))[0]
    except ApgError:
        return None, None  # the run says what is wrong with the path, as it always has
    default = default_separator(fmt)
    found = detect_separator(first, default)
    if not found.detected:
        return None, (
            f"read: {data} separated by {default!r} (the default for {first.suffix or fmt}: no "
            "separator splits every line into the same number of fields; pass --sep to choose)"
        )
    note = f"read: {data} separated by {found.sep!r} (detected)"
    return (None if found.sep == default else found.sep), note


def apply_search_options(config: Config, k_text: str | None, algorithms_text: str | None) -> None:
    """``--k`` and ``--algorithms`` over the config's search grid (they win over it)."""
    search = config.search
    if algorithms_text is not None:
        chosen = parse_algorithms(algorithms_text)
        defaults = {"kmeans": KMeansGrid, "agglomerative": AgglomerativeGrid, "dbscan": DbscanGrid}
        for name, grid in defaults.items():
            if name not in chosen:
                setattr(search, name, None)
            elif getattr(search, name) is None:
                setattr(search, name, grid())
    if k_text is not None:
        lo, hi = parse_k(k_text)
        grids = [g for g in (search.kmeans, search.agglomerative) if g is not None]
        if not grids:
            why = (
                f"--algorithms {algorithms_text!r} keeps neither"
                if algorithms_text is not None
                else "the config disables both"
            )
            raise ConfigError(
                f"--k {k_text!r} sets the k of kmeans and agglomerative, but {why}; "
                "drop --k or run one of them"
            )
        for grid in grids:
            grid.k = list(range(lo, hi + 1))
        # Asking for k up to MAX is asking for up to MAX personas.
        search.max_clusters = max(search.max_clusters, hi)


@click.command("run", context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="YAML config file (see configs/demo.yaml).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="A user table (.csv .tsv .txt .parquet .jsonl, or a glob), instead of --config.",
)
@click.option(
    "--id",
    "id_column",
    metavar="COLUMN",
    help=f"With --data: the id column (default: the row number, in a new column {ROW_ID!r}).",
)
@click.option("--behavioral", metavar="COLS", help="With --data: behavioral columns (clustered).")
@click.option("--attitudinal", metavar="COLS", help="With --data: attitudinal columns (clustered).")
@click.option(
    "--demographic", metavar="COLS", help="With --data: demographic columns (described only)."
)
@click.option(
    "--outcome",
    metavar="COLS",
    help="With --data: outcome columns such as churn (never clustered, reported per persona).",
)
@click.option(
    "--sep",
    help="With --data: field separator of a text table, e.g. ';' or '\\t' (default: detected "
    "among , ; tab |).",
)
@click.option(
    "--na-values",
    metavar="LIST",
    help="With --data: extra text that marks a missing value, comma-separated or @FILE "
    "(pandas na_values; empty cells and NA, NaN, null... already are).",
)
@click.option(
    "--k",
    "k_text",
    metavar="K|MIN-MAX",
    help="Numbers of clusters for kmeans and agglomerative, e.g. 3-8 or 5 (overrides the "
    "config; raises search.max_clusters to MAX).",
)
@click.option(
    "--algorithms",
    "algorithms_text",
    metavar="LIST",
    help="Run only these of kmeans, agglomerative, dbscan (overrides the config).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("apg-output"),
    show_default=True,
    help="Output folder: new, empty, or one apg wrote before (replaced whole, atomically).",
)
@click.option("--seed", type=int, help="Random seed (overrides search.seed).")
@click.option(
    "--llm",
    type=click.Choice(["offline", "openai"]),
    help="Narration client (overrides narration.client).",
)
@click.option("--model", help="LLM model name (overrides narration.model).")
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    help="Fit the candidates on this Dask scheduler (needs apg[dask]).",
)
@click.option(
    "--stream/--no-stream",
    default=None,
    help="Read a Parquet source a column or a batch at a time, never whole (overrides "
    "search.stream; default: when the table would not fit in half the free memory).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option(
    "--db",
    metavar="URL",
    help="Record the run in this database (default: $APG_DATABASE_URL, storage.url, "
    "else apg.db here).",
)
@click.option("--no-store", is_flag=True, help="Do not record the run in a database.")
@click.option(
    "--wait",
    is_flag=True,
    help="If another run (e.g. the daemon's) is in progress, wait for it instead of failing.",
)
def run(
    config_path: Path | None,
    data: Path | None,
    id_column: str | None,
    behavioral: str | None,
    attitudinal: str | None,
    demographic: str | None,
    outcome: str | None,
    sep: str | None,
    na_values: str | None,
    k_text: str | None,
    algorithms_text: str | None,
    out: Path,
    seed: int | None,
    llm: str | None,
    model: str | None,
    dask_address: str | None,
    stream: bool | None,
    quiet: bool,
    db: str | None,
    no_store: bool,
    wait: bool,
) -> None:
    """Run the whole pipeline and write personas to --out.

    \b
    Column lists (COLS, and LIST of --na-values):
      a,b,c         names separated by commas, spaces around them ignored
      "Spend, EUR"  double quotes keep a comma, surrounding spaces, a leading @ (or, in a
                    file, a leading #); a quote inside quotes is doubled: "5"" screen"
      @cols.txt     one name a line; blank lines and lines starting with # are skipped

    \b
    Examples:
      apg run --config configs/demo.yaml --out apg-output --seed 1
      apg run --config configs/demo.yaml --k 3-6 --algorithms kmeans,agglomerative
      apg run --data users.csv --id user_id --behavioral logins_per_month,sessions_per_week \\
              --attitudinal nps --demographic age,country --outcome churned
      apg run --data export.csv --sep ';' --na-values 'n/a,unknown' \\
              --behavioral @behavioral.txt --k 3-8 --algorithms kmeans
    """
    from apg.api import execute
    from apg.report.folder import check_output_folder

    if config_path and data:
        raise ConfigError("give either --config FILE or --data FILE, not both")
    texts = {
        "--id": id_column,
        "--behavioral": behavioral,
        "--attitudinal": attitudinal,
        "--demographic": demographic,
        "--outcome": outcome,
        "--sep": sep,
        "--na-values": na_values,
    }
    notes: list[str] = []
    if config_path:
        given = [k for k, v in texts.items() if v is not None]
        if given:
            verb, pronoun = ("applies", "it") if len(given) == 1 else ("apply", "them")
            raise ConfigError(
                f"{', '.join(given)} {verb} only with --data; set {pronoun} in the config"
            )
        config = load_config(config_path)
    elif data:
        lists = {
            "behavioral": behavioral,
            "attitudinal": attitudinal,
            "demographic": demographic,
            "outcome": outcome,
        }
        config, notes = data_config(data, id_column, lists, sep, na_values, stream)
    else:
        raise ConfigError("give --config FILE or --data FILE (see apg run --help)")
    apply_search_options(config, k_text, algorithms_text)
    if seed is not None:
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"--seed {seed}: a seed is a whole number from 0 to {MAX_SEED}")
        config.search.seed = seed
    if llm:
        config.narration.client = llm  # type: ignore[assignment]
    if model:
        config.narration.model = model
    if dask_address:
        config.search.backend = "dask"
        config.search.dask_address = dask_address
    if stream is not None:
        config.search.stream = "on" if stream else "off"

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(msg, err=True)

    if no_store and db:
        raise ConfigError("--db and --no-store contradict each other; give one")
    if no_store and wait:
        raise ConfigError("--wait waits for the database's run lock; it needs the store")
    # Checked before the run: a folder apg may not replace costs nothing to refuse now.
    protected = run_inputs(config, config_path, None if no_store else (db, config.storage.url))
    check_output_folder(out, protected)
    for note in notes:
        progress(note)
    if no_store:
        with failure_evidence(out, protected):
            done = execute(config, progress=progress, inputs=protected)
    else:
        from apg.store import open_store
        from apg.store.locks import LockHeld

        def waiting(exc: LockHeld) -> None:
            click.echo(f"waiting for {exc.holder.describe()} to finish", err=True)

        with open_store(db, config.storage.url) as store:
            with failure_evidence(out, protected):
                done = execute(
                    config,
                    store=store,
                    progress=progress,
                    inputs=protected,
                    wait=wait,
                    on_wait=waiting,
                )
            try:
                done.save(out)
            except (ApgError, OSError) as exc:
                # The folder passed the check before the run; a disk that filled up or a
                # folder changed meanwhile must not leave the run recorded as a success.
                why = exc if isinstance(exc, ApgError) else exc.strerror or exc
                store.fail_recorded(done.run_id, f"the output folder could not be written: {why}")
                if isinstance(exc, ApgError):
                    raise
                raise ApgError(
                    f"cannot write the output folder {str(out)!r}: {why}; the run "
                    f"{done.run_id} is recorded as failed"
                ) from None
    if no_store:
        done.save(out)
    click.echo(summary_text(done.result, out))
    if done.plan is not None:
        from apg.cli.store import continuity_text

        click.echo(continuity_text(done.plan, done.store_url or ""))
        if done.status == "degraded":
            click.echo(f"warning: recorded as degraded: {done.status_reason}", err=True)


def run_inputs(
    config: Config, config_path: Path | None, store: tuple[str | None, str | None] | None
) -> list[Path]:
    """The files a run reads or writes besides its output: its config, every local source file
    and its SQLite store (``store`` is ``(--db, storage.url)``, None without a store)."""
    from apg.store.engine import resolve_url, sqlite_path

    database = sqlite_path(resolve_url(*store)) if store else None
    return api_run_inputs(config, config_path, database)


@contextmanager
def failure_evidence(out: Path, protected: list[Path]) -> Iterator[None]:
    """When no candidate is eligible, still write the leaderboard (candidates.csv and a
    report.md with every rejection reason) to ``out`` before failing."""
    from apg.report.outputs import write_failure
    from apg.search.selection import NoEligibleError

    try:
        yield
    except NoEligibleError as exc:
        write_failure(exc.candidates, str(exc), out, protected=protected)
        raise NoEligibleError(
            f"{exc}\nEvery candidate and why it was rejected: {out / 'candidates.csv'}, "
            f"{out / 'report.md'}",
            exc.candidates,
        ) from None


def summary_text(result: Any, folder: Path) -> str:
    w = result.search.winner
    eligible = sum(c.eligible for c in result.search.candidates)
    weak = result.search.weak
    lines = (
        [f"WEAK STRUCTURE: read these personas as tentative ({'; '.join(weak)})"] if weak else []
    )
    stability = f", stability {w.stability:.2f}" if w.stability is not None else ""
    lines += [
        f"run {result.run_id}: {len(result.labels):,} users, "
        f"{len(result.search.candidates)} candidates ({eligible} eligible)",
        f"chosen: {w.key}, silhouette {w.silhouette:.3f}{stability}, "
        f"elbow k={result.search.elbow_k}",
        "",
    ]
    rows = [("persona", "size", "share", "confidence", "name")]
    rows += [
        (
            p.persona_id,
            f"{p.size:,}",
            f"{p.share:.1%}",
            p.confidence.level if p.confidence else "",
            p.narrative.name if p.narrative else "",
        )
        for p in result.personas
    ]
    if result.outliers.size:
        size, share = f"{result.outliers.size:,}", f"{result.outliers.share:.1%}"
        rows.append(("outliers", size, share, "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        lines.append(
            f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  "
            f"{r[3]:<{widths[3]}}  {r[4]}".rstrip()
        )
    lines += ["", f"results: {folder}"]
    return "\n".join(lines)
