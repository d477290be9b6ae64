"""The package layout is the pipeline: stage folders in data order, imports only pointing down
the stage list, no import cycles (a package's ``__init__`` counts as a module), and a short top
level. Parsed from the source, so a lazy import inside a function counts like any other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "apg"

# The stage order: a module may import its own layer and the layers before it, never later.
LAYERS: list[tuple[str, ...]] = [
    ("apg.errors", "apg.version"),
    ("apg.sources",),
    ("apg.config",),
    ("apg.prepare",),
    ("apg.search",),
    ("apg.profiles",),
    ("apg.narration",),
    ("apg.pipeline",),
    ("apg.report",),
    ("apg.store",),
    ("apg.service",),
    # The Python API (apg.generate): the CLI's run path, so it sits just under the CLI and the
    # web app and may never import them.
    ("apg.api",),
    ("apg.cli", "apg.web", "apg.__main__", "apg"),
]
TOP_LEVEL_LIMIT = 10


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported apg module, line) for every import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "apg":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "apg":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno


def graph(root: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    modules = module_names(root)
    return {
        name: [(t, line) for t, line in imports_of(name, path, modules) if t != name]
        for name, path in modules.items()
    }


def layer_of(name: str) -> int:
    best, rank = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank < 0:
        raise AssertionError(f"{name} belongs to no layer; add it to LAYERS in {__file__}")
    return rank


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _ in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward_imports(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    return [
        f"{name}:{line} imports {target}"
        for name, targets in sorted(edges.items())
        for target, line in targets
        if layer_of(target) > layer_of(name)
    ]


def own_face_imports(edges: dict[str, list[tuple[str, int]]], root: Path = PACKAGE) -> list[str]:
    """A module inside a package importing that package's ``__init__`` (its face for callers)."""
    modules = module_names(root)
    bad = []
    for name, targets in sorted(edges.items()):
        if modules[name].name == "__init__.py":
            continue
        ancestors = {name.rsplit(".", i)[0] for i in range(1, name.count("."))}
        bad += [f"{name}:{line} imports {t}" for t, line in targets if t in ancestors]
    return bad


def test_layout_has_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_layout_imports_point_only_down_the_stage_order() -> None:
    assert upward_imports(graph()) == []


def test_layout_modules_never_import_their_own_package_face() -> None:
    assert own_face_imports(graph()) == []


def test_layout_top_level_is_short_and_every_folder_says_what_it_produces() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, top
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import" in doc, f"{folder.name}/__init__.py: say what it may import"


# The checker itself, on small packages with known faults: it must be able to fail.
def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "apg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "apg"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "__init__.py": "",
                "store/__init__.py": "from apg.store.record import save\n",
                "store/record.py": "def save():\n    from apg.store import Store\n",
            },
            [["apg.store", "apg.store.record"]],
        ),
        (
            {
                "__init__.py": "",
                "service/__init__.py": "",
                "service/daemon.py": "from apg.service import scheduler\n",
                "service/scheduler.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from apg.service.daemon import Daemon\n"
                ),
            },
            [["apg.service.daemon", "apg.service.scheduler"]],
        ),
        ({"__init__.py": "", "a.py": "from . import b\n", "b.py": "import apg.errors\n"}, []),
    ],
    ids=["through a package face", "type-checking import", "no cycle"],
)
def test_layout_cycle_finder_on_known_graphs(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    assert cycles(graph(write_package(tmp_path, files))) == expected


def test_layout_upward_and_face_checks_on_a_known_graph(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "search/__init__.py": "",
            "search/leaderboard.py": "from apg.report.html import render\n",
            "report/__init__.py": "",
            "report/html.py": "from apg.report import charts\nfrom apg import report\n",
            "report/charts.py": "",
        },
    )
    edges = graph(root)
    assert upward_imports(edges) == ["apg.search.leaderboard:1 imports apg.report.html"]
    assert own_face_imports(edges, root) == ["apg.report.html:2 imports apg.report"]
