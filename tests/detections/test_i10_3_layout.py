"""Issue 10 item 3: the layout of the ``detections`` package.

- no import cycle between its modules (every import counts: module level, inside functions and
  under ``TYPE_CHECKING``, since a cycle of any kind is a knot the next maintainer must untie);
- the module map in ``detections/__init__.py``'s docstring names every module, subpackages
  included;
- the fields the router reads are written out once, in ``detections/routing.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import detections

PACKAGE = Path(detections.__file__).parent
ROOT = PACKAGE.parent
SOURCE_PACKAGES = ("soc_core", "sensors", "detections", "soc_api")
# the values the route key is built from (detections.routing.ROUTING_FIELDS)
ROUTE_KEY_FIELDS = {"event.dataset", "process.name", "winlog.channel", "event.code", "winlog.event_id"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The package's modules that ``path`` imports, resolved as Python would."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target not in modules:
                continue
            submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
            # `from pkg import name` runs pkg/__init__ unless every name is a submodule of pkg
            if len(submodules) < len(node.names) or target != "detections":
                yield target
            yield from submodules


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: set(imported_modules(path, modules)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state:
                found = visit(successor)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_i10_3_no_import_cycle_in_detections() -> None:
    # the finder itself first: a check that can only pass would prove nothing
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    graph = import_graph()
    assert graph.get("detections.engine"), "the import graph was not read"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in detections/: " + " -> ".join(cycle or [])


def module_map_entries() -> list[str]:
    """The entries of the map, the literal block after the docstring's ``::``: the first word of
    each line at the block's own indent (deeper lines continue the one above), a module's path
    from the package with dots or slashes, ``.py`` or a trailing ``/`` allowed."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text())) or ""
    lines = doc.split("::", 1)[1].splitlines() if "::" in doc else []
    block = [line for line in lines if line.strip()]
    indent = len(block[0]) - len(block[0].lstrip()) if block else 0
    entries = []
    for line in block:
        if len(line) - len(line.lstrip()) < indent or not indent:
            break  # the block ended
        if len(line) - len(line.lstrip()) == indent:
            entries.append(line.split()[0].removesuffix(".py").strip("/").replace("/", "."))
    return entries


def test_i10_3_module_map_names_every_module() -> None:
    wanted = {name.removeprefix("detections.") for name in package_modules() if name != "detections"}
    entries = module_map_entries()
    missing = sorted(wanted - set(entries))
    assert not missing, f"detections/__init__.py's module map lacks: {missing}"
    assert {"engine", "routing", "evaluation", "workers"} <= wanted
    stale = sorted(set(entries) - wanted)
    assert not stale, f"detections/__init__.py's module map names modules that do not exist: {stale}"
    twice = sorted({entry for entry in entries if entries.count(entry) > 1})
    assert not twice, f"detections/__init__.py's module map names these more than once: {twice}"


def string_collections(path: Path) -> Iterator[tuple[int, set[str]]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            values = {elt.value for elt in node.elts if isinstance(elt, ast.Constant) and isinstance(elt.value, str)}
            yield node.lineno, values


def test_i10_3_routing_fields_written_once() -> None:
    copies = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in SOURCE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, values in string_collections(path)
        if values >= ROUTE_KEY_FIELDS
    ]
    assert len(copies) == 1 and copies[0].startswith("detections/routing.py:"), (
        f"the routing fields are written out at {copies}; want once, in detections/routing.py"
    )
    defined = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in SOURCE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(target, ast.Name) and target.id == "ROUTING_FIELDS"
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    assert len(defined) == 1 and defined[0].startswith("detections/routing.py:"), (
        f"ROUTING_FIELDS is defined at {defined}; want once, in detections/routing.py"
    )
