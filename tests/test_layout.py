"""The package's shape: its packages point one way (LAYERS), no import cycle between its modules,
and no module imports another's private name. Walks the source with `ast`, so it sees lazy
(in-function) imports too; imports under `if TYPE_CHECKING:` are not run and do not count."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "arena"

# arena's packages from the top layer down (docs/architecture.md: "How the code is laid out"). A package imports
# only packages of the layers below its own: ui, bench -> sweep -> execute -> backends -> techniques
# -> measure, data -> models -> core. arena/bench (what the benchmark scripts share) stands beside
# ui; arena/testing (fault hooks, the test server helper) imports nothing of the arena's and sits
# at the bottom; __main__ is the entry point, above everything.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("ui", "bench"),
    ("sweep",),
    ("execute",),
    ("backends",),
    ("techniques",),
    ("measure", "data"),
    ("models",),
    ("core", "testing"),
)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(path: Path, modules: set[str], type_only: bool = False) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every arena import in `path`; those
    under `if TYPE_CHECKING:` too with `type_only`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if not type_only and _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "arena"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "arena":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                # `from arena.models import placement` imports a module, not a name
                out.append((sub, None, node.lineno) if sub in modules else (node.module, alias.name, node.lineno))
    return out


def graph(package: Path = PACKAGE, type_only: bool = False) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> modules it imports (packages resolved to their __init__; with `type_only`, the
    imports only a type checker runs too), and the private names imported across modules as
    'importer:line imports module.name'."""
    files = {module_name(p, package.parent): p for p in package.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in files}
    private = []
    for name, path in files.items():
        for target, imported, line in imports(path, set(files), type_only):
            if target not in files:
                continue
            if target != name:
                edges[name].add(target)
            if imported and imported.startswith("_") and not imported.startswith("__") and target != name:
                private.append(f"{name}:{line} imports {target}.{imported}")
    return edges, private


def package_of(module: str) -> str:
    """'arena.models.placement' -> 'models'; 'arena' (the package's __init__) -> 'arena'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def upward_imports(edges: dict[str, set[str]], layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """Every import of a package from its own layer or one above, as 'importer -> imported', and
    every package no layer lists."""
    rank = {package: i for i, layer in enumerate(layers) for package in layer}
    wrong = sorted({f"{package_of(m)} is in no layer" for m in edges if package_of(m) not in rank | {"arena": 0}})
    for module, targets in sorted(edges.items()):
        here = package_of(module)
        for target in sorted(targets):
            there = package_of(target)
            if here != there and here in rank and there in rank and rank[there] <= rank[here]:
                wrong.append(f"{module} -> {target}")
    return wrong


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


def test_no_module_reaches_itself_through_its_imports():
    edges, _ = graph()
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_no_import_cycle_even_through_imports_only_a_type_checker_runs():
    """A type-only cycle (registry -> a technique -> registry for its Config) still ties the two
    modules together: neither can be read, typed or moved without the other."""
    edges, _ = graph(type_only=True)
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_the_cycle_check_sees_type_only_imports(tmp_path):
    pkg = tmp_path / "arena"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from arena import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from arena.a import X\n")
    assert find_cycle(graph(pkg)[0]) is None
    assert find_cycle(graph(pkg, type_only=True)[0]) == ["arena.a", "arena.b", "arena.a"]


def test_packages_import_only_the_layers_below_their_own():
    edges, _ = graph()
    assert upward_imports(edges) == []


def test_every_arena_import_names_a_module_that_exists():
    """Lazy imports inside functions run only when called: a stale one (a module moved away)
    would fail at run time, on a path the other tests may not reach."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    missing = [f"{name}:{line} imports {target}" for name, path in files.items()
               for target, _, line in imports(path, set(files)) if target not in files]
    assert missing == []


def test_no_module_imports_a_private_name_of_another():
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


def test_the_direction_check_finds_a_lower_layer_importing_a_higher_one(tmp_path):
    """models importing techniques (as core once imported models) is caught, lazy or not; the
    same import under TYPE_CHECKING, or downward, is not; an unlisted package is named."""
    pkg = tmp_path / "arena"
    for sub in ("core", "models", "techniques", "newpkg"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "units.py").write_text("")
    (pkg / "techniques" / "registry.py").write_text("from arena.models import spec\nfrom arena.core import units\n")
    (pkg / "models" / "spec.py").write_text("def f():\n    from arena.techniques import registry\n")
    edges, _ = graph(pkg)
    assert upward_imports(edges) == ["newpkg is in no layer", "arena.models.spec -> arena.techniques.registry"]
    (pkg / "models" / "spec.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                            "    from arena.techniques import registry\n")
    (pkg / "newpkg" / "__init__.py").unlink()
    (pkg / "newpkg").rmdir()
    assert upward_imports(graph(pkg)[0]) == []


def benchmark_imports(folder: Path) -> list[str]:
    """`file:line module` for every import of the benchmark scripts' modules under `folder`."""
    out = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            out += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "benchmarks"]
    return out


def test_tests_reach_benchmark_scripts_only_as_processes(tmp_path):
    """What a test and a benchmark share lives in arena/ (arena/bench, arena/testing); a test runs a
    script as a user does, in a subprocess, never through its internals."""
    assert benchmark_imports(ROOT / "tests") == []
    (tmp_path / "test_x.py").write_text("import os\nfrom benchmarks.load_test import check\n")
    assert benchmark_imports(tmp_path) == ["test_x.py:2 benchmarks.load_test"]


@pytest.mark.parametrize("fact, allowed", [
    ("2**20", {"arena/core/units.py", "arena/testing/faults.py"}),
    ("1800", {"arena/core/limits.py"}),
    ('"fp32", "fp16", "bf16"', {"arena/models/dtypes.py"}),
    ('.tmp"', {"arena/core/paths.py"}),
])
def test_each_fact_has_one_home(fact, allowed):
    homes = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if fact in p.read_text(encoding="utf-8")}
    assert homes <= allowed, f"{fact!r} written outside its home: {sorted(homes - allowed)}"


# ----------------------------------------------------------------------------- function length

MAX_FUNCTION_LINES = 80
# Declarative tables: one long literal read as a table, not control flow.
TABLES = {"arena/bench/stages.py:_stages"}
def function_lengths(package: Path = PACKAGE) -> dict[str, int]:
    """'path:name' -> lines (def to last line), for every function and method in `package`."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[f"{path.relative_to(package.parent).as_posix()}:{node.name}"] = node.end_lineno - node.lineno + 1
    return out


def long_functions(package: Path = PACKAGE, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """'path:function' -> lines of every function longer than `limit`."""
    return {name: lines for name, lines in function_lengths(package).items() if lines > limit}


def test_no_function_is_longer_than_80_lines_but_declarative_tables():
    assert {k: v for k, v in long_functions().items() if k not in TABLES} == {}


def test_the_length_check_counts_a_long_function(tmp_path):
    pkg = tmp_path / "arena"
    pkg.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    method = body.replace("    ", "        ")
    (pkg / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n\nclass C:\n    def also(self):\n{method}")
    assert long_functions(pkg) == {"arena/m.py:long": 81, "arena/m.py:also": 81}


# ----------------------------------------------------------------------------- product and tooling apart

PRODUCT = sorted([*(p for p in PACKAGE.rglob("*.py") if "testing" not in p.relative_to(PACKAGE).parts),
                  ROOT / "app.py"])
SAMPLER_SWITCH = "ARENA_SAMPLE_STACKS"


def tooling_imports(paths: list[Path]) -> list[str]:
    """`file:line what` for every import of arena.testing in `paths`, and every import of the stack
    sampler that is not under an `if` reading its switch (ARENA_SAMPLE_STACKS)."""
    out = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            where = f"{path.name}:{node.lineno}"
            if any(n == "arena.testing" or n.startswith("arena.testing.") for n in names):
                out.append(f"{where} arena.testing")
            if "arena.core.stack_sampler" in names and not _under_switch(node, parents):
                out.append(f"{where} stack_sampler unswitched")
    return out


def _under_switch(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and SAMPLER_SWITCH in ast.unparse(node.test):
            return True
    return False


def test_production_modules_import_no_test_tooling():
    """No production module imports arena/testing (the fault hooks reach a worker through
    ARENA_HOOKS, set by the test entry point), and the stack sampler is imported only under its
    switch."""
    assert tooling_imports(PRODUCT) == []


def test_the_tooling_check_finds_a_planted_import(tmp_path):
    (tmp_path / "a.py").write_text("import os\n\ndef f():\n    from arena.testing import faults\n")
    (tmp_path / "b.py").write_text("from arena.core import stack_sampler\n")
    (tmp_path / "c.py").write_text("import os\nif os.environ.get('ARENA_SAMPLE_STACKS'):\n"
                                   "    from arena.core import stack_sampler\n")
    assert tooling_imports(sorted(tmp_path.glob("*.py"))) == ["a.py:4 arena.testing", "b.py:1 stack_sampler unswitched"]


def test_the_test_entry_point_names_the_fault_hooks():
    """The seam's two ends agree: conftest names a module whose HOOKS are all known points."""
    import importlib

    from arena.execute import hooks

    module = os.environ[hooks.HOOKS_ENV]
    assert module == "arena.testing.faults"
    assert set(importlib.import_module(module).HOOKS) <= set(hooks.POINTS)


def sys_path_patches(folder: Path) -> list[str]:
    """`file:line` of every sys.path change or E402 waiver in the scripts under `folder`."""
    out = []
    for path in sorted(folder.glob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"sys\.path\.(insert|append)|sys\.path\s*=|noqa: E402", line):
                out.append(f"{path.name}:{i}")
    return out


def test_benchmarks_run_as_modules_without_path_patching(tmp_path):
    """`python -m benchmarks.NAME` from the repository root finds arena/ by itself; a script that
    patches sys.path hides that it was run some other way."""
    assert sys_path_patches(ROOT / "benchmarks") == []
    (tmp_path / "x.py").write_text("import sys\nsys.path.insert(0, '..')\nimport arena  # noqa: E402\n")
    assert sys_path_patches(tmp_path) == ["x.py:2", "x.py:3"]


def script_invocations(text: str) -> list[str]:
    """Every script of benchmarks/ run by its path (not `python -m`) in `text`."""
    return re.findall(r"python3?\s+(?:\S+/)?benchmarks/\w+\.py", text)


def test_every_benchmark_is_invoked_as_a_module():
    """Docs, tests and stages say `python -m benchmarks.NAME` (a path invocation would not find
    arena/ without the patching removed above)."""
    here = Path(__file__)  # this file plants one on purpose
    texts = [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"), *(p for p in (ROOT / "tests").glob("*.py") if p != here),
             *(ROOT / "benchmarks").glob("*.py"), *PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*")]
    found = {str(p.relative_to(ROOT)): script_invocations(p.read_text(encoding="utf-8")) for p in texts if p.is_file()}
    assert {k: v for k, v in found.items() if v} == {}
    assert script_invocations("run python benchmarks/load_test.py --start") == ["python benchmarks/load_test.py"]
    # the stage table runs its scripts the same way (argv after the interpreter)
    from arena.bench import stages

    argvs = [part.settings["argv"] for stage in stages.STAGES.values() for part in stage.parts if "argv" in part.settings]
    assert argvs and all(argv[:2] == ["-m", argv[1]] and argv[1].startswith("benchmarks.") for argv in argvs)


def test_the_runner_reads_like_a_generate_loop_in_60_lines():
    assert function_lengths()["arena/execute/runner.py:execute"] <= 60
