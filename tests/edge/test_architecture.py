"""The layering of DESIGN.md, checked on the source: every import, lazy ones included, read from the AST.

* ``edge/`` outside ``edge/cli/`` imports neither ``export`` nor ``calibration`` (the device has neither);
* no import cycle among ``edge`` modules;
* only the composition root (``edge.app``) imports the station; adapters get a StationControl;
* no module reads another object's private attributes through ``getattr``/``hasattr`` probing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


ALL = {**_modules("edge"), **_modules("export"), **_modules("calibration")}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (functions, TYPE_CHECKING blocks included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in ALL else base)  # 'from pkg import module' imports the module
    return out


GRAPH = {name: imports_of(path) for name, path in ALL.items()}


def test_the_walker_sees_lazy_and_type_checking_imports() -> None:
    assert "export.bench_torch" in GRAPH["edge.cli.bench_cmd"]  # inside a function
    assert "edge.ops.sources" in GRAPH["edge.ops.metrics"]  # under TYPE_CHECKING
    assert "edge.sim.products" in GRAPH["edge.sim.scene"]  # 'from edge.sim import products'


def test_the_device_runtime_imports_neither_export_nor_calibration() -> None:
    offenders = {name: sorted(i for i in deps if i.split(".")[0] in ("export", "calibration"))
                 for name, deps in GRAPH.items() if name.startswith("edge") and not name.startswith("edge.cli")}
    assert {k: v for k, v in offenders.items() if v} == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_in_edge() -> None:
    edge_graph = {k: {d for d in v if d.startswith("edge")} for k, v in GRAPH.items() if k.startswith("edge")}
    assert _cycles(edge_graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_composition_root_imports_the_station() -> None:
    users = sorted(name for name, deps in GRAPH.items() if "edge.service.station" in deps)
    assert users == ["edge.app"]


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.startswith("edge")))
def test_no_probing_of_private_attributes(name: str) -> None:
    tree = ast.parse(ALL[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr"):
            args = node.args
            attr = str(args[1].value) if len(args) >= 2 and isinstance(args[1], ast.Constant) else ""
            if attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__")):
                pytest.fail(f"{name}:{node.lineno} probes a private attribute {attr!r}")
