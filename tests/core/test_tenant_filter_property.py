"""T2 — every event query the builder makes carries the caller's tenant filter, on both stores."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from soc_core.query import QueryError, event_query
from soc_core.store.elasticsearch import ElasticsearchStore
from soc_core.store.sqlite import SqliteStore

tenant_ids = st.from_regex(r"[a-z][a-z0-9_]{1,12}", fullmatch=True)
fields = st.sampled_from(["user.name", "source.ip", "host.name", "event.outcome", "organization.id", "message"])
values = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)
clauses = st.builds(lambda f, v: f"{f}:{v}", fields, values) | values
queries = st.lists(clauses, max_size=5).map(" OR ".join) | st.just("")


@settings(max_examples=300, deadline=None)
@given(st.lists(tenant_ids, min_size=1, max_size=4), queries)
def test_every_query_is_scoped(tenants: list[str], text: str) -> None:
    try:
        query = event_query(tenants=tenants, query=text)
    except QueryError:
        return
    assert query.tenants and set(query.tenants) == set(tenants)

    where, params = SqliteStore(":memory:")._where(query)
    assert f"events.tenant IN ({','.join('?' * len(query.tenants))})" in where
    assert params[-len(query.tenants) :] == list(query.tenants) or query.start or query.end

    es = ElasticsearchStore("http://127.0.0.1:9")
    filters = es._filters(query)
    assert {"terms": {"organization.id": list(query.tenants)}} in filters
    patterns = es._indices(query.tenants).split(",")
    assert sorted(patterns) == sorted(f"canhgac-events-{t}-*" for t in query.tenants)
    es.close()


@given(queries)
def test_a_query_naming_another_tenant_stays_inside_the_callers(text: str) -> None:
    try:
        query = event_query(tenants=["police"], query=f"organization.id:health {text}".strip())
    except QueryError:  # a bare AND/OR/NOT drawn as a value: not a query, nothing to scope
        return
    where, params = SqliteStore(":memory:")._where(query)
    assert "events.tenant IN (?)" in where and "police" in params
