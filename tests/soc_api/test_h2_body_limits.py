"""H2: request bodies are bounded before they are read, and single events by size, fields and
depth. The socket tests talk raw HTTP/1.1 to a real uvicorn server, so they see exactly when
the answer comes: before the body was sent, or when the stream passed the limit."""

from __future__ import annotations

import contextlib
import json
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import ApiLimits, ApiSettings, Settings
from soc_core.devnode import free_port
from soc_core.events import format_timestamp, utcnow
from soc_core.query import event_query
from soc_core.store import SqliteStore, Store
from tests.support.servers import serve

PASSWORD = "a-very-long-password"
HUGE = 250 * 1024 * 1024
SMALL_INGEST = 64 * 1024


@dataclass
class Server:
    port: int
    sensor_key: str
    admin_token: str


def setup_accounts(client: TestClient) -> tuple[str, str]:
    accounts.add_tenant(client.app.state.store, tenant_id="police", name="Police")  # type: ignore[attr-defined]
    accounts.add_user(
        client.app.state.store,  # type: ignore[attr-defined]
        username="boss",
        password=PASSWORD,
        memberships=[Membership(PROVINCE, "admin")],
    )
    token = client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD}).json()["access_token"]
    created = client.post(
        "/api/sensors", json={"name": "web01", "tenant": "police"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    return created.json()["api_key"], token


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    settings = Settings(data_dir=tmp_path, api=ApiSettings(limits=ApiLimits(ingest_bytes=SMALL_INGEST)))
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    app = create_app(settings, store)
    sensor_key, admin_token = setup_accounts(TestClient(app))
    port = free_port()
    with serve(app, port=port):
        yield Server(port, sensor_key, admin_token)
    store.close()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (status, lower-cased headers, body); waits up to the socket timeout."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    header_block, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def assert_closed_by_server(sock: socket.socket) -> None:
    """After the answer the server drops the connection rather than read the rest."""
    with contextlib.suppress(ConnectionResetError):  # a reset is a drop too
        assert sock.recv(65536) == b""


def test_h2_unauthenticated_huge_ingest_is_refused_before_the_body_is_sent(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(head("POST", "/api/ingest", {"Content-Type": "application/json", "Content-Length": str(HUGE)}))
        # not one byte of the 250 MB body has been sent: the answer must not wait for it
        status, headers, body = read_response(sock)
        assert status == 401
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        assert json.loads(body)["title"] == "Unauthorized"
        assert_closed_by_server(sock)


def test_h2_unauthenticated_ui_form_gets_the_sign_in_page_before_the_body(server: Server) -> None:
    with connect(server) as sock:
        form = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(HUGE)}
        sock.sendall(head("POST", "/ui/cases", form))
        status, headers, _ = read_response(sock)
        assert status == 303 and headers["location"].startswith("/ui/login")
        assert headers["connection"] == "close"


def test_h2_declared_length_over_the_route_limit_is_413_at_once(server: Server) -> None:
    cases = [
        ("/api/ingest", server.sensor_key, SMALL_INGEST + 1, "api.limits.ingest_bytes"),
        ("/api/rules/validate", server.admin_token, 1024 * 1024 + 1, "api.limits.rule_bytes"),
        ("/api/alerts/bulk", server.admin_token, 256 * 1024 + 1, "api.limits.body_bytes"),
    ]
    for path, token, length, key in cases:
        with connect(server) as sock:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            sock.sendall(head("POST", path, {**headers, "Content-Length": str(length)}))
            status, headers, body = read_response(sock)
            assert status == 413, (path, body)
            assert headers["content-type"] == "application/problem+json"
            assert headers["connection"] == "close"
            problem = json.loads(body)
            assert key in problem["detail"] and problem["request_id"] == headers["x-request-id"]
            assert_closed_by_server(sock)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_h2_chunked_body_over_the_limit_is_cut_with_413(server: Server) -> None:
    piece = b"[" * 8192  # never valid JSON: only the limit can end this request early
    with connect(server) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/ingest",
                {
                    "Authorization": f"Bearer {server.sensor_key}",
                    "Content-Type": "application/json",
                    "Transfer-Encoding": "chunked",
                },
            )
        )
        sent = 0
        while sent <= SMALL_INGEST:
            sock.sendall(chunk(piece))
            sent += len(piece)
        # the stream is left open (no final chunk): only a server that cuts at the limit answers
        status, headers, body = read_response(sock)
        assert status == 413
        assert headers["connection"] == "close"
        assert "api.limits.ingest_bytes" in json.loads(body)["detail"]


def test_h2_chunked_body_under_the_limit_is_taken(server: Server) -> None:
    payload = json.dumps({"events": [event(1), event(2)]}).encode()
    with connect(server) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/ingest",
                {
                    "Authorization": f"Bearer {server.sensor_key}",
                    "Content-Type": "application/json",
                    "Transfer-Encoding": "chunked",
                },
            )
            + chunk(payload[:50])
            + chunk(payload[50:])
            + b"0\r\n\r\n"
        )
        status, headers, body = read_response(sock)
        assert status == 200, body
        assert json.loads(body)["created"] == 2
        assert headers.get("connection") != "close"  # the body was read whole: keep-alive
        readable, _, _ = select.select([sock], [], [], 0)
        assert not readable  # the server left the connection open


def event(i: int, **extra: object) -> dict[str, object]:
    return {
        "@timestamp": format_timestamp(utcnow()),
        "event.dataset": "system.auth",
        "message": f"Failed password for root from 203.0.113.{i} port 22",
        "source.ip": f"203.0.113.{i}",
        **extra,
    }


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def test_h2_events_over_the_shape_limits_are_refused_one_by_one(store: Store) -> None:
    client = TestClient(create_app(Settings(), store))
    key, _ = setup_accounts(client)
    wide = event(2, **{f"labels.f{i}": i for i in range(1000)})
    deep = event(3, **{"labels.deep": nested(16)})  # 16 levels inside the event: 17 in all
    big = event(4, message="x" * (256 * 1024))
    almost = event(5, **{"labels.deep": nested(15)}, **{f"labels.f{i}": i for i in range(900)})
    events = [event(1), wide, deep, big, almost, event(6)]
    response = client.post("/api/ingest", json={"events": events}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["created"] == 3
    refused = {item["index"]: item["reason"] for item in result["rejected"]}
    assert set(refused) == {1, 2, 3}
    assert "more than 1000 fields (api.limits.event_fields)" in refused[1]
    assert "deeper than 16 levels (api.limits.event_depth)" in refused[2]
    assert "more than 262144 (api.limits.event_bytes)" in refused[3]
    store.refresh()
    stored = store.search_events(event_query(tenants=["police"], size=10)).items
    assert sorted(e["source.ip"] for e in stored) == ["203.0.113.1", "203.0.113.5", "203.0.113.6"]


def test_h2_a_deeply_nested_body_is_a_client_error(store: Store) -> None:
    client = TestClient(create_app(Settings(), store))
    key, _ = setup_accounts(client)
    body = '{"events": [' + "[" * 100_000 + "]" * 100_000 + "]}"
    response = client.post(
        "/api/ingest",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
