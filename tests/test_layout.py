"""The code's layout, as README's "Architecture" describes it: imports point one way, no module
imports back into one that imports it (at load time or lazily), and no module grows past 400
lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"dmwan_qdrant": REPO / "dmwan_qdrant", "dmwan_qdrant.cli": REPO / "cli",
            "dmwan_qdrant.training": REPO / "training"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the three source trees by its installed dotted name."""
    found = {}
    for package, folder in PACKAGES.items():
        for file in sorted(folder.rglob("*.py")):
            parts = [package, *file.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = file
    return found


def imported(name: str, file: Path, known: dict[str, Path]) -> set[str]:
    """The known modules that ``name`` imports anywhere in its source, lazily or not.

    ``from package import submodule`` counts as importing the submodule only; an import under
    ``if TYPE_CHECKING:`` never runs and is left out.
    """
    tree = ast.parse(file.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for sub in node.body for n in ast.walk(sub)}
    here = name if file.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = subs if len(subs) == len(node.names) else [base, *subs]
        for target in targets:
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, file, known) for name, file in known.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_the_finder_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_the_library_never_imports_the_fronts():
    fronts = ("dmwan_qdrant.cli", "dmwan_qdrant.training")
    back = {(m, d) for m, deps in import_graph().items() if not m.startswith(fronts)
            for d in deps if d.startswith(fronts)}
    assert back == set()


def test_cli_commands_import_the_root_not_the_assembly():
    graph = import_graph()
    assert {m for m, deps in graph.items() if "dmwan_qdrant.cli.app" in deps} <= {"dmwan_qdrant.cli.__main__"}


LAYERS = [  # README, "Architecture": bottom first
    {"dmwan_qdrant", "errors", "settings", "interrupts", "imageio", "lazy", "ray_runtime", "versions"},
    {"model", "runtime", "store", "data"},
    {"encoder"},
    {"search", "ingest", "eval", "check", "sheet", "point_ids"},
    {"cli", "server", "training", "fastembed"},
]


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_imports_never_point_up_a_layer():
    up = {(m, d) for m, deps in import_graph().items() for d in deps if layer(d) > layer(m)}
    assert up == set()


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_module_over_400_lines(package):
    long = {name: n for name, file in modules().items() if name.startswith(package)
            if (n := len(file.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_package_is_installed():
    """A wheel holds only the packages pyproject lists (an editable install finds the rest)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert {name for name, file in modules().items() if file.name == "__init__.py"} == listed
