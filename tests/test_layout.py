"""The package's layout rules: no import cycles between its modules, no imports hidden inside
functions (except optional dependencies), and modules short enough to read in one sitting."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

import spectralign_fast

PACKAGE = Path(spectralign_fast.__file__).parent
ROOT = "spectralign_fast"
# Imported inside functions on purpose: not installed by the package's own dependencies.
OPTIONAL = {"dask", "distributed", "skimage", "scipy", "nibabel", "nilearn", "cv2", "SimpleITK", "bioio"}
MAX_LINES = 1000


def _modules() -> Dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([ROOT] + parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.AST) -> List[str]:
    """Package modules that executing this import statement loads: the parent packages of the
    target too, unless ``module`` lies inside them (then they are already being imported), and
    never the root package, which every module's import starts from."""
    names: List[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = _resolve(module, node)
        subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
        # "from pkg import sub" loads pkg too, unless every name is a submodule of a package
        # that the importing module lies inside (it is already being imported).
        names = subs if len(subs) == len(node.names) and module.startswith(base + ".") else [base] + subs
    out = []
    for name in names:
        if not name.startswith(ROOT):
            continue
        parts = name.split(".")
        for k in range(2, len(parts) + 1):
            prefix = ".".join(parts[:k])
            inside = module == prefix or module.startswith(prefix + ".")
            if prefix in MODULES and (k == len(parts) or not inside):
                out.append(prefix)
    return out


def _top_level_imports(tree: ast.Module) -> List[ast.AST]:
    """Import statements that run when the module is imported (module body, including if/try
    blocks at module level), not those inside functions or classes."""
    found: List[ast.AST] = []

    def visit(body: List[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, (ast.If, ast.Try)):
                for block in (getattr(node, "body", []), getattr(node, "orelse", []),
                              getattr(node, "finalbody", [])):
                    visit(block)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


def _graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: Set[str] = set()
        for node in _top_level_imports(tree):
            edges.update(t for t in _targets(name, node) if t != name)
        graph[name] = edges
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return out


def test_no_import_cycles():
    graph = _graph()
    assert len(graph) > 30  # the scan found the package
    cycles = _cycles(graph)
    assert not cycles, "import cycles between modules: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle():
    # The test above can fail: a made-up graph with a cycle through a parent package.
    graph = {"spectralign_fast.a": {"spectralign_fast.b.c"}, "spectralign_fast.b": {"spectralign_fast.b.c"},
             "spectralign_fast.b.c": {"spectralign_fast.b", "spectralign_fast.a"}}
    assert _cycles(graph) == [["spectralign_fast.a", "spectralign_fast.b", "spectralign_fast.b.c"]]


def test_subpackage_parents_count_as_imports():
    # Importing spectralign_fast.io.atomic from outside io runs spectralign_fast.io first.
    graph = _graph()
    assert "spectralign_fast.io" in graph["spectralign_fast._config"]
    assert "spectralign_fast.io" not in graph["spectralign_fast.io.images"]


def test_no_imports_inside_functions_except_optional_dependencies():
    hidden = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        top = {id(n) for n in _top_level_imports(tree)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                if isinstance(node, ast.ImportFrom) and node.level:
                    root = ROOT
                elif isinstance(node, ast.ImportFrom):
                    root = (node.module or "").split(".")[0]
                else:
                    root = node.names[0].name.split(".")[0]
                if root not in OPTIONAL:
                    hidden.append(f"{name}:{node.lineno}")
    assert not hidden, f"imports inside functions (move them to the module's top): {hidden}"


def test_execute_never_imports_a_workflow():
    graph = _graph()
    bad = [(m, t) for m, ts in graph.items() if m.startswith(f"{ROOT}.execute")
           for t in ts if t.startswith(f"{ROOT}.workflows")]
    assert not bad


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_can_be_read_in_one_sitting(name):
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by what its parts do"
