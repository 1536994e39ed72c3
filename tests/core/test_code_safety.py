"""A15 — the product's own code never reaches for the dangerous tools: no pickle, no unsafe
YAML loading, no eval/exec, no shell commands, no templates built from user input."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("soc_core", "sensors", "detections", "playbooks", "soc_api")
# Playbook templates are compiled from the playbook's own text on purpose, in jinja2's immutable
# sandbox (tests/playbooks/test_pb2_templates.py proves what it refuses); nowhere else.
SANDBOXED_TEMPLATES = {"playbooks/templating.py"}
SOURCES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def violations(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            module = getattr(node, "module", None) or ""
            if any(name.split(".")[0] in {"pickle", "marshal", "shelve"} for name in names) or module in {
                "pickle",
                "marshal",
                "shelve",
            }:
                found.append(f"{where}: imports a deserialiser of code")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in {"eval", "exec", "compile"} and isinstance(func, ast.Name):
                found.append(f"{where}: {name}()")
            if name in {"load", "load_all", "unsafe_load", "full_load"} and isinstance(func, ast.Attribute):
                owner = func.value
                if isinstance(owner, ast.Name) and owner.id == "yaml":
                    found.append(f"{where}: yaml.{name}() (use safe_load)")
            sandboxed = str(path.relative_to(root)) in SANDBOXED_TEMPLATES
            if name == "from_string" and isinstance(func, ast.Attribute) and not sandboxed:
                found.append(f"{where}: a template built from a string")
            for keyword in node.keywords:
                if keyword.arg == "shell" and isinstance(keyword.value, ast.Constant) and keyword.value.value:
                    found.append(f"{where}: subprocess with shell=True")
            if name == "system" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "os":
                found.append(f"{where}: os.system()")
    return found


def test_sources_were_found() -> None:
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dangerous_calls(path: Path) -> None:
    assert violations(path) == []


def test_the_checker_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport yaml, os, subprocess\n"
        "yaml.load(x)\neval('1')\nsubprocess.run('ls', shell=True)\nos.system('id')\nenv.from_string(t)\n"
    )
    assert len(violations(bad, root=tmp_path)) == 6
