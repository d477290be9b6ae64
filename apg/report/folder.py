"""The output folder: which folder apg may replace, and replacing it without losing anything.

A run's files are written to a fresh sibling folder and swapped in at the end. The swap removes
what was there before, so apg only ever replaces a folder that is empty or that it wrote itself:
a folder apg writes carries a manifest (``.apg-output.json``) listing its files, and a folder
that holds anything else is refused before the run starts, with nothing deleted. The files a run
reads (its input table, its SQLite store, its config) may never sit inside the output folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from apg.errors import ApgError, listing
from apg.version import __version__

MANIFEST = ".apg-output.json"


class OutputFolderError(ApgError):
    """The output folder cannot be used without risking files apg did not write."""


def check_output_folder(out_dir: Path, protected: Iterable[Path] = ()) -> Path:
    """Refuse an output folder apg may not replace; returns it resolved. Deletes nothing.

    Called before a run starts (so a mistake costs nothing) and again just before the swap.
    """
    out = Path(out_dir).expanduser().resolve()
    shown = str(out_dir)
    for path in protected:
        inside = Path(path).expanduser().resolve()
        if inside == out or out in inside.parents:
            raise OutputFolderError(
                f"--out {shown!r} contains {str(path)!r}, which this run reads; apg replaces its "
                f"output folder whole, so choose a folder that holds no input, config or "
                f"database, e.g. --out {str(_suggestion(out))!r}"
            )
    if out.exists() and not out.is_dir():
        raise OutputFolderError(
            f"output path {shown!r} exists and is not a folder; choose another --out"
        )
    if out.is_dir():
        foreign = _foreign_entries(out)
        if foreign:
            raise OutputFolderError(
                f"output folder {shown!r} holds files apg did not write ({listing(foreign, 5)}); "
                "apg replaces its output folder whole and deletes nothing it did not write, so "
                f"choose a new or empty folder, e.g. --out {str(_suggestion(out))!r}"
            )
    _check_writable(out, shown)
    return out


def check_output_file(out: Path, protected: Iterable[Path]) -> None:
    """Refuse a single-file ``--out`` that is a folder or a file the command reads."""
    target = Path(out).expanduser().resolve()
    if target.is_dir():
        raise OutputFolderError(f"--out {str(out)!r} is a folder; give a file name")
    for path in protected:
        if Path(path).expanduser().resolve() == target:
            raise OutputFolderError(
                f"--out {str(out)!r} is {str(path)!r}, which this command reads; writing there "
                "would destroy it, so choose another file name"
            )


def replace_folder(
    staged: Path, out: Path, files: Sequence[str], protected: Iterable[Path]
) -> None:
    """Write the manifest into ``staged`` and swap it in for ``out``.

    The previous folder is moved aside first, so a crash in between leaves either the old or the
    new results, never a mix; afterwards only the files its own manifest lists are removed.
    """
    manifest = {"written_by": "apg", "version": __version__, "files": sorted(files)}
    (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    check_output_folder(out, protected)  # again: the folder may have changed during the run
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
    staged.rename(out)
    if old is not None:
        _remove_own(old)


def _foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that no apg manifest accounts for (all of them without one)."""
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return []
    own = _manifest_files(folder)
    if own is None:
        return names
    return [n for n in names if n != MANIFEST and (n not in own or _is_real_dir(folder / n))]


def _manifest_files(folder: Path) -> set[str] | None:
    path = folder / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    files = doc.get("files") if isinstance(doc, dict) else None
    if doc.get("written_by") != "apg" or not isinstance(files, list):
        return None
    # Only plain names: a manifest is never a licence to reach outside its folder.
    return {f for f in files if isinstance(f, str) and f and "/" not in f and f not in (".", "..")}


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _remove_own(old: Path) -> None:
    """Delete the files the old folder's manifest lists, then the folder if it is empty."""
    own = _manifest_files(old) or set()
    for name in [*own, MANIFEST]:
        target = old / name
        if target.is_symlink() or target.is_file():
            target.unlink(missing_ok=True)
    # Something that appeared after the last check stays where it is rather than be deleted.
    with contextlib.suppress(OSError):
        old.rmdir()


def _check_writable(out: Path, shown: str) -> None:
    existing = next(p for p in out.parents if p.exists())
    if not existing.is_dir():
        raise OutputFolderError(
            f"cannot create output folder {shown!r}: {str(existing)!r} is a file, not a folder; "
            "choose another --out"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}-probe-", dir=out.parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputFolderError(
            f"cannot create output folder {shown!r}: {exc.strerror or exc}; choose a folder you "
            "can write to"
        ) from None


def _suggestion(out: Path) -> Path:
    """A folder inside ``out`` that does not exist yet (so holds nothing to protect)."""
    for i in range(1, 100):
        candidate = out / ("apg-output" if i == 1 else f"apg-output-{i}")
        if not candidate.exists():
            return candidate
    return out / "apg-output-new"


def stage_folder(out: Path) -> Path:
    """A fresh folder beside ``out`` to write the run's files into."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        # mkdtemp makes the folder private (0700); results are for sharing, so honour umask.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
    except OSError as exc:
        raise OutputFolderError(
            f"cannot create output folder {str(out)!r}: {exc.strerror}"
        ) from None
    return tmp


def discard(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)
