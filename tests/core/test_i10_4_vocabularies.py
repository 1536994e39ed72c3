"""Issue 10 item 4: shared vocabularies and plumbing live in one place each.

- every error the product raises answers the API through one table (``soc_api.errors.ANSWERS``);
- the alert status set and its transitions are one module that the schemas, the engine, the
  triage service and the UI all read;
- ``open_store`` opens whatever the ``STORES`` registry names, and the config accepts exactly
  those names.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import get_args

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from starlette.middleware.base import RequestResponseEndpoint

import detections
import detections.alerts
import playbooks
import sensors
import soc_api
import soc_core
from detections.targets.walk import UnsupportedConstruct
from detections.workers import WorkerError
from sensors.errors import SpoolFull
from soc_api.errors import ANSWERS, install_error_handlers
from soc_api.schemas import AlertUpdate, BulkAlertUpdate
from soc_api.services.accounts import Throttled
from soc_api.services.throttle import Wait
from soc_core.alert_status import ALERT_STATUSES, CLOSED_STATUSES, OPEN_STATUSES, SETTABLE_STATUSES, TRANSITIONS
from soc_core.config import ElasticsearchSettings, Settings, StoreSettings
from soc_core.errors import Conflict, NotFound, ParseError, SocError, StoreUnavailable
from soc_core.query import QueryError
from soc_core.store import STORES, open_store
from workflow.alerts import WorkflowError, apply_change


def _all_soc_errors() -> set[type[SocError]]:
    """Every SocError subclass in the product: import every module, then walk the tree."""
    for package in (soc_core, sensors, detections, playbooks, soc_api):
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            importlib.import_module(module.name)
    found: set[type[SocError]] = set()
    todo = [SocError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    ours = {"soc_core", "sensors", "detections", "playbooks", "soc_api"}
    return {cls for cls in found if cls.__module__.split(".")[0] in ours}


def test_i10_4_every_soc_error_class_has_an_answer() -> None:
    classes = _all_soc_errors()
    assert len(classes) >= 20  # the walk really found the tree
    # an error answers as its nearest class in the table: each must reach an entry of its own
    # area (SensorError, RuleError, …), never fall through to the bare root's generic 500
    unplaced = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in classes - {SocError}
        if next(base for base in cls.__mro__ if base in ANSWERS) is SocError
    )
    assert unplaced == [], f"add these (or their area's class) to soc_api.errors.ANSWERS: {unplaced}"


def test_i10_4_the_error_tree_docstring_names_every_class() -> None:
    drawn = set(re.findall(r"\w+", soc_core.errors.__doc__ or ""))
    missing = sorted(cls.__qualname__ for cls in _all_soc_errors() if cls.__qualname__ not in drawn)
    assert missing == [], f"draw these in soc_core/errors.py's tree: {missing}"


CASES: dict[str, tuple[SocError, int, str | None]] = {
    "parse": (ParseError("line 3: not JSON", where="upload"), 400, "upload: line 3: not JSON"),
    "query": (QueryError("unbalanced parenthesis", where="query:7"), 400, "query:7: unbalanced parenthesis"),
    "construct": (UnsupportedConstruct("modifier |re|i"), 422, "modifier |re|i"),
    "workflow": (WorkflowError("an alert cannot go from new to new"), 422, "an alert cannot go from new to new"),
    "conflict": (Conflict("user 'an' exists already"), 409, "user 'an' exists already"),
    "missing": (NotFound("alerts/x"), 404, "no such object"),
    "throttled": (Throttled(Wait(seconds=7)), 429, None),
    "down": (StoreUnavailable("connection refused", where="http://es:9200"), 503, None),
    "worker": (WorkerError("worker 2 died"), 500, "the request failed; quote the request id to an admin"),
    "spool": (SpoolFull("spool at 1 GiB"), 500, "the request failed; quote the request id to an admin"),
    "bare": (SocError("something"), 500, "the request failed; quote the request id to an admin"),
}


@pytest.fixture(scope="module")
def raising_client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next: RequestResponseEndpoint) -> Response:
        request.state.request_id = "r-test"
        return await call_next(request)

    @app.get("/raise/{case}")
    def raise_case(case: str) -> None:
        raise CASES[case][0]

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_i10_4_errors_answer_through_the_one_table(raising_client: TestClient, case: str) -> None:
    _, status, detail = CASES[case]
    response = raising_client.get(f"/raise/{case}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["request_id"] == "r-test"
    if detail is not None:
        assert body["detail"] == detail
    if case == "throttled":
        assert response.headers["retry-after"] == "7"
    if status >= 500:  # server-side details stay in the log
        assert "died" not in body["detail"] and "GiB" not in body["detail"]


def test_i10_4_alert_statuses_are_one_vocabulary() -> None:
    assert set(OPEN_STATUSES) | set(CLOSED_STATUSES) == set(ALERT_STATUSES)
    assert not set(OPEN_STATUSES) & set(CLOSED_STATUSES)
    assert set(SETTABLE_STATUSES) == set(ALERT_STATUSES) - {"new"}
    assert set(TRANSITIONS) == set(ALERT_STATUSES)
    assert all(targets <= set(SETTABLE_STATUSES) for targets in TRANSITIONS.values())
    # the API schemas, the engine's suppression and the triage service read the same set
    assert set(get_args(get_args(AlertUpdate.model_fields["status"].annotation)[0])) == set(ALERT_STATUSES)
    assert set(get_args(get_args(BulkAlertUpdate.model_fields["status"].annotation)[0])) == set(SETTABLE_STATUSES)
    assert set(detections.alerts.OPEN_STATUSES) == set(OPEN_STATUSES)
    for closed in CLOSED_STATUSES:
        body = apply_change({"status": "in_progress"}, actor="an", status=closed, now="2026-01-01T00:00:00Z")
        assert body["resolved_by"] == "an"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def test_i10_4_every_store_backend_opens_from_the_registry(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert set(get_args(StoreSettings.model_fields["backend"].annotation)) == set(STORES)
    url = request.getfixturevalue("elasticsearch_url") if backend == "elasticsearch" else "http://127.0.0.1:9"
    settings = Settings(
        data_dir=tmp_path, store=StoreSettings(backend=backend, elasticsearch=ElasticsearchSettings(url=url))
    )
    store = STORES[backend].from_settings(settings)
    try:
        assert type(store) is STORES[backend] and type(open_store(settings)) is STORES[backend]
        store.ping()  # reaches the real store (SQLite file, the test Elasticsearch node)
    finally:
        store.close()
