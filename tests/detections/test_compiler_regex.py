"""Regex translation to Lucene: prefix-factored alternatives with an empty branch."""

from __future__ import annotations

import pytest

from detections.targets.lucene_regex import LuceneRegex
from detections.targets.walk import UnsupportedConstruct
from soc_core.store import ElasticsearchStore


def translate(pattern: str) -> str:
    return LuceneRegex(UnsupportedConstruct).translate(pattern)[0]


@pytest.mark.parametrize(
    ("pattern", "lucene"),
    [("-(e|ec)x", ".*\\-(e(c)?)x.*"), ("a(b|bc|bd)", ".*a(b(c|d)?).*"), ("(foo|foobar)", ".*(foo(bar)?).*")],
)
def test_empty_alternatives_become_optional_groups(pattern: str, lucene: str) -> None:
    assert translate(pattern) == lucene


@pytest.mark.elasticsearch
def test_the_translation_matches_in_elasticsearch(es_store: ElasticsearchStore) -> None:
    index = f"{es_store.prefix}-regex"
    client = es_store.client
    client.indices.create(index=index, mappings={"properties": {"v": {"type": "keyword"}}})
    client.index(index=index, document={"v": "powershell -ec SQBFAFgA"}, refresh=True)
    client.index(index=index, document={"v": "powershell -e SQBFAFgA"}, refresh=True)
    query = {"regexp": {"v": {"value": translate("-(e|ec) ")}}}
    assert client.count(index=index, query=query)["count"] == 2
    client.indices.delete(index=index)
