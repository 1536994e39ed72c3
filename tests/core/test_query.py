import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soc_core.query import (
    And,
    FieldEquals,
    FieldExists,
    FieldRange,
    MatchAll,
    Not,
    Or,
    QueryError,
    Text,
    event_query,
    parse_query,
)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("", MatchAll()),
        ("user.name:root", FieldEquals("user.name", "root")),
        ("user.name:ro*", FieldEquals("user.name", "ro*", wildcard=True)),
        ('message:"a b"', FieldEquals("message", "a b")),
        ("a b", And((Text("a"), Text("b")))),
        ("x:1 OR y:2", Or((FieldEquals("x", "1"), FieldEquals("y", "2")))),
        ("-x:1", Not(FieldEquals("x", "1"))),
        ("x:[1 TO 5]", FieldRange("x", "1", "5")),
        ("x:>=3", FieldRange("x", "3", None)),
        ("x:*", FieldExists("x")),
    ],
)
def test_parse(text: str, tree: object) -> None:
    assert parse_query(text) == tree


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("user.name:*root", "leading wildcard"),
        ("ro*", "without a field"),
        ("x:[1 TO", "parse"),
        ("a " * 70, "clauses"),
        ("x" * 3000, "characters"),
        ("[1 TO 2]", "range needs a field"),
    ],
)
def test_refused_queries_say_why(text: str, reason: str) -> None:
    with pytest.raises(QueryError, match=reason):
        parse_query(text)


def test_event_query_always_carries_tenants() -> None:
    query = event_query(tenants=["health", "police", "police"], size=10_000)
    assert query.tenants == ("health", "police")
    assert query.size == 500
    assert event_query(tenants=None, province_wide=True).tenants is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(text)
