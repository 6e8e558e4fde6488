"""The layout's promises: one home per fact, no UI dependency in the engine, no import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import jamey_engine
from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS
from jamey_engine.memory.layers import MAX_QUERY_CHARS
from jamey_engine.service import create_app

PACKAGE = Path(jamey_engine.__file__).parent


def test_the_routes_offer_exactly_the_stores_layers(engine: Engine) -> None:
    schema = create_app(engine).openapi()
    search = schema["paths"]["/memories/search"]["get"]["parameters"]
    layer = next(p for p in search if p["name"] == "layer")
    enum = (
        layer["schema"].get("enum")
        or schema["components"]["schemas"][layer["schema"]["$ref"].split("/")[-1]]["enum"]
    )
    assert tuple(enum) == LAYERS
    query = next(p for p in search if p["name"] == "q")
    assert query["schema"]["maxLength"] == MAX_QUERY_CHARS


def test_importing_every_engine_module_imports_no_streamlit() -> None:
    code = (
        "import pkgutil, sys, jamey_engine\n"
        "for info in pkgutil.walk_packages(jamey_engine.__path__, 'jamey_engine.'):\n"
        "    if '.migrations.' not in info.name:\n"
        "        __import__(info.name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'streamlit', 'workbench_ui'})\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Engine modules that ``path`` imports anywhere (functions included), TYPE_CHECKING blocks aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_import_cycle_crosses_a_package_boundary() -> None:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    modules = set(paths)
    graph = {name: _imports(path, name, modules) for name, path in paths.items()}

    def package_of(module: str) -> str:
        return module if paths[module].name == "__init__.py" else module.rpartition(".")[0]

    # Tarjan's strongly connected components: any component spanning two packages is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    crossing: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            packages = {package_of(m) for m in component if paths[m].name != "__init__.py"}
            if len(component) > 1 and len(packages) > 1:
                crossing.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert crossing == []
