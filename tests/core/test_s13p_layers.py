"""Issue 12 loose end, item 1: imports between the top-level packages flow one way (DESIGN §2).

Every import counts — module level, inside functions and under ``TYPE_CHECKING`` — because a lazy
import upward is still a dependency upward (``playbooks`` once reached ``soc_api.cli`` that way).
A package imports only packages of lower layers; packages of one layer do not import each other.
A new top-level package fails here until it is given a layer, here and in DESIGN §2.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

import soc_core

ROOT = Path(soc_core.__file__).parent.parent

# lowest first; DESIGN §2 writes the same order as "soc_core ← workflow ← … ← soc_api"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("soc_core",),
    ("workflow",),
    ("intel",),
    ("sensors", "detections", "playbooks"),
    ("reports",),
    ("scheduling",),
    ("soc_api",),
)
DATA_PACKAGES = ("rules",)  # shipped Sigma YAML: imports nothing of ours
NOT_PRODUCT = ("tests",)  # tests may import anything


def top_level_packages(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file() and p.name not in NOT_PRODUCT)


def imports_of(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                yield node.lineno, ".".join([*base, node.module] if node.module else base)
            else:
                yield node.lineno, node.module or ""


def layer_violations(root: Path, layers: Sequence[Sequence[str]], data: Sequence[str] = ()) -> list[str]:
    rank = {package: i for i, layer in enumerate(layers) for package in layer}
    known = set(rank) | set(data)
    problems = [
        f"{package}/: a top-level package with no layer; give it one in DESIGN §2 and in LAYERS"
        for package in top_level_packages(root)
        if package not in known
    ]
    for package in top_level_packages(root):
        if package not in known:
            continue
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imports_of(path, root):
                target = module.split(".")[0]
                if target == package or target not in known:
                    continue
                where = f"{path.relative_to(root)}:{line} imports {module}"
                if package in data:
                    problems.append(f"{where}: {package}/ is data and imports nothing of ours")
                elif target not in rank or rank[target] < rank[package]:
                    continue  # downward, or a data package
                elif rank[target] == rank[package]:
                    problems.append(f"{where}: {package} and {target} share a layer and stay independent")
                else:
                    problems.append(f"{where}: {target} is above {package} (DESIGN §2)")
    return problems


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_s13p_layers_checker_finds_every_kind_of_upward_import(tmp_path: Path) -> None:
    # the checker first: a check that can only pass proves nothing
    write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/ok.py": "import os\n",
            "low/lazy.py": "def f():\n    from high.x import y\n",
            "mid_a/__init__.py": "from . import sub\n",
            "mid_a/sub/__init__.py": "from ..sub import z\nfrom low import ok\n",
            "mid_a/peer.py": "import mid_b.thing\n",
            "mid_b/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import high\n",
            "high/__init__.py": "from low import ok\nfrom mid_a import sub\n",
            "data/__init__.py": "import low\n",
            "stray/__init__.py": "",
            "tests/__init__.py": "import high\n",
        },
    )
    problems = layer_violations(tmp_path, [("low",), ("mid_a", "mid_b"), ("high",)], data=["data"])
    assert problems == [
        "stray/: a top-level package with no layer; give it one in DESIGN §2 and in LAYERS",
        "data/__init__.py:1 imports low: data/ is data and imports nothing of ours",
        "low/lazy.py:2 imports high.x: high is above low (DESIGN §2)",
        "mid_a/peer.py:1 imports mid_b.thing: mid_a and mid_b share a layer and stay independent",
        "mid_b/__init__.py:3 imports high: high is above mid_b (DESIGN §2)",
    ]


def test_s13p_layers_imports_flow_one_way() -> None:
    found = top_level_packages(ROOT)
    assert {"soc_core", "playbooks", "soc_api"} <= set(found), f"packages not found under {ROOT}: {found}"
    problems = layer_violations(ROOT, LAYERS, DATA_PACKAGES)
    assert not problems, "imports against DESIGN §2's order:\n" + "\n".join(problems)


def test_s13p_layers_design_states_the_same_order() -> None:
    order = " ← ".join(", ".join(f"`{p}`" for p in layer) for layer in LAYERS)
    design = " ".join((ROOT / "DESIGN.md").read_text().split())
    assert f"Imports flow one way: {order}" in design, f"DESIGN §2 should say: Imports flow one way: {order}"
