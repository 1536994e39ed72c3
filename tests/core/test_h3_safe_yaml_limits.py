"""Issue 11 item 3: the limits of the one YAML loader (soc_core.safe_yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soc_core.errors import ParseError
from soc_core.safe_yaml import MAX_BYTES, MAX_DEPTH, MAX_NODES, iter_documents, load_yaml, load_yaml_file


def test_h3_size_node_count_depth_and_huge_integers_are_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text("x: '" + "a" * MAX_BYTES + "'\n")
    with pytest.raises(ParseError, match="over the 2,097,152-byte limit"):
        load_yaml_file(big)
    with pytest.raises(ParseError, match="more than 200,000 YAML nodes"):
        load_yaml("[" + "1," * MAX_NODES + "1]", source="many.yml")
    assert load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, source="ok.yml") is not None
    with pytest.raises(ParseError, match="nested more than 64") as caught:
        load_yaml("a:\n" + "".join("  " * n + f"k{n}:\n" for n in range(1, 70)), source="deep.yml")
    assert caught.value.where is not None and caught.value.where.startswith("deep.yml:")
    with pytest.raises(ParseError, match="invalid YAML value") as caught:
        load_yaml("a: 1\nb: " + "9" * 5000 + "\n", source="int.yml")
    assert caught.value.where == "int.yml:1"


def test_h3_documents_keep_their_lines_and_plain_yaml_still_loads() -> None:
    text = "a: 1\nb: [x, y]\n---\n# note\nc: {d: true}\n"
    documents = list(iter_documents(text, source="two.yml"))
    assert [(doc.line, doc.end_line) for doc in documents] == [(1, 3), (5, 6)]
    assert [doc.data for doc in documents] == [{"a": 1, "b": ["x", "y"]}, {"c": {"d": True}}]
