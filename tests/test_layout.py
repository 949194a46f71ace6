"""The package's layout as docs/architecture.rst describes it: no import cycle, even through
imports made inside functions, and the layers importing only downwards."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "django_sse"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports() -> dict[str, set[str]]:
    """Every module's imports of the package's modules, wherever in the module they are made."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        wanted: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                submodules = {f"{target}.{alias.name}" for alias in node.names} & known.keys()
                # `from . import x` of a submodule needs the submodule, not the whole package.
                wanted |= submodules if len(submodules) == len(node.names) else {target, *submodules}
            elif isinstance(node, ast.Import):
                wanted |= {alias.name for alias in node.names}
        graph[name] = (wanted & known.keys()) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif len(path) < len(graph):
                visit(target, [*path, target])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_the_graph_sees_the_imports_it_should():
    graph = imports()
    assert "django_sse.delivery.hub" in graph["django_sse.backends.base"]
    assert "django_sse.delivery.bridge" in graph["django_sse.response"]
    assert "django_sse.backends" in graph["django_sse.delivery.channel_stream"]  # lazily or not


def test_no_import_cycle():
    assert cycles(imports()) == []


def test_delivery_and_backends_never_import_the_user_facing_modules():
    graph = imports()
    top = {"views", "response", "asgi", "middleware", "publishing", "stats", "metrics", "testing"}
    for name, targets in graph.items():
        if name.startswith(("django_sse.delivery", "django_sse.backends")):
            assert not {t for t in targets if t.removeprefix("django_sse.") in top}, name


def test_the_wire_format_is_encoded_in_one_place():
    # Only event.py writes field lines ("data: ...", "id: ...", "retry: ..."): every other
    # module encodes through Event and its helpers.
    fields = ('f"data: ', 'f"id: ', 'f"retry: ', 'b"data: ', 'b"retry: ')
    writers = sorted(
        path.name for path in PACKAGE.rglob("*.py") if any(f in path.read_text() for f in fields)
    )
    assert writers == ["event.py"]
