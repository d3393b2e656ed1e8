"""The package's shape: no import cycle between its modules, and no module imports another's
private name. Walks the source with `ast`, so it sees lazy (in-function) imports too; imports
under `if TYPE_CHECKING:` are not run and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "arena"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(path: Path, modules: set[str]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every arena import in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "arena"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "arena":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                # `from arena.models import placement` imports a module, not a name
                out.append((sub, None, node.lineno) if sub in modules else (node.module, alias.name, node.lineno))
    return out


def graph(package: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> modules it imports (packages resolved to their __init__), and the private
    names imported across modules as 'importer:line imports module.name'."""
    files = {module_name(p, package.parent): p for p in package.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in files}
    private = []
    for name, path in files.items():
        for target, imported, line in imports(path, set(files)):
            if target not in files:
                continue
            if target != name:
                edges[name].add(target)
            if imported and imported.startswith("_") and not imported.startswith("__") and target != name:
                private.append(f"{name}:{line} imports {target}.{imported}")
    return edges, private


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    edges, _ = graph()
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_every_arena_import_names_a_module_that_exists():
    """Lazy imports inside functions run only when called: a stale one (a module moved away)
    would fail at run time, on a path the other tests may not reach."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    missing = [f"{name}:{line} imports {target}" for name, path in files.items()
               for target, _, line in imports(path, set(files)) if target not in files]
    assert missing == []


def test_no_private_name_imported_across_modules():
    _, private = graph()
    assert private == []


def test_checks_catch_what_they_look_for(tmp_path):
    """The walker itself: a planted cycle (through a lazy import) and a planted private import
    are found, so a green result above means something."""
    pkg = tmp_path / "arena"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from arena.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from arena.c import _hidden\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from arena import a\n"
                              "import arena.a\n_hidden = 1\n")
    edges, private = graph(pkg)
    assert find_cycle(edges) == ["arena.a", "arena.sub.b", "arena.c", "arena.a"]
    assert private == ["arena.sub.b:2 imports arena.c._hidden"]
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from arena import a\n_hidden = 1\n")
    assert find_cycle(graph(pkg)[0]) is None  # a TYPE_CHECKING import alone is no cycle


@pytest.mark.parametrize("fact, allowed", [
    ("2**20", {"arena/core/units.py", "arena/testing/faults.py"}),
    ("1800", {"arena/core/limits.py"}),
    ('"fp32", "fp16", "bf16"', {"arena/models/dtypes.py"}),
    ('.tmp"', {"arena/core/paths.py"}),
])
def test_each_fact_has_one_home(fact, allowed):
    homes = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if fact in p.read_text(encoding="utf-8")}
    assert homes <= allowed, f"{fact!r} written outside its home: {sorted(homes - allowed)}"
