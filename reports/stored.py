"""Stored weekly reports: the ``reports`` documents the API lists and downloads and the weekly
job writes.

One document per (tenant, ISO week) — an agency's tenant id, or ``*`` for the province — with a
deterministic id (``weekly-2026-W48-police``; the province's ``weekly-2026-W48``), so generating
a week again replaces it rather than adding a second copy. The document keeps the report's
numbers (the language-free :class:`~reports.model.WeeklyReport` as JSON, under ``report``, which
Elasticsearch stores without indexing) and who made it: a person (``generated_by``) or a job run
(``job``). Each reader renders it in their own language and format (:func:`reports.render.render`).

Visibility follows the agencies: an agency's report is seen by those who hold ``reports:read``
in that agency; the province's (``*``) only by province-wide members. Another agency's report
is answered as a missing one (:class:`~soc_core.errors.NotVisible`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reports.metrics import weekly
from reports.model import WeeklyReport
from soc_core.config import Settings
from soc_core.errors import NotFound, NotVisible
from soc_core.store import Store
from soc_core.store.base import Doc, Page

KIND = "reports"
PROVINCE = "*"


def report_id(tenant: str, week: str) -> str:
    """The one id of (tenant, week): tenant ids never hold ``-``, so no agency's id can be
    mistaken for another's or for the province's."""
    return f"weekly-{week}" if tenant == PROVINCE else f"weekly-{week}-{tenant}"


def check_scope(tenant: str, scope: tuple[str, ...] | None, *, target: str) -> None:
    """Raise :class:`NotVisible` unless a caller acting on ``scope`` (None: province-wide) may
    see ``tenant``'s reports."""
    if scope is None:
        return
    if tenant == PROVINCE or tenant not in scope:
        raise NotVisible(
            f"no report {target!r}", target=f"{KIND}/{target}", owner=None if tenant == PROVINCE else tenant
        )


def generate(
    store: Store,
    settings: Settings,
    *,
    week: str,
    tenant: str,
    generated_by: str,
    job: str | None = None,
    now: datetime | None = None,
) -> Doc:
    """Count ``week`` for ``tenant`` (:func:`reports.metrics.weekly`) and store it, replacing
    an earlier report of the same week and tenant."""
    report = weekly(store, settings, week=week, tenant=tenant, now=now)
    body: dict[str, Any] = {
        "tenant": tenant,
        "kind": report.kind,
        "week": report.week,
        "name": report.scope.name,
        "generated_at": report.generated_at,
        "created_at": report.generated_at,
        "generated_by": generated_by,
        "job": job,
        "schema_version": report.schema_version,
        "report": report.model_dump(mode="json"),
    }
    return store.put_doc(KIND, report_id(tenant, week), body)


def get(store: Store, doc_id: str, scope: tuple[str, ...] | None) -> Doc:
    """The stored report ``doc_id`` if the caller's ``scope`` may see it; else :class:`NotFound`."""
    doc = store.get_doc(KIND, doc_id)
    check_scope(str(doc.body.get("tenant")), scope, target=doc_id)
    return doc


def load(doc: Doc) -> WeeklyReport:
    """The report a stored document holds."""
    try:
        return WeeklyReport.model_validate(doc.body["report"])
    except (KeyError, ValueError) as exc:
        raise NotFound(
            f"stored report {doc.id!r} cannot be read: {exc}",
            hint="generate the week again (POST /api/reports/weekly or soc report weekly --store)",
        ) from exc


def listing(
    store: Store,
    scope: tuple[str, ...] | None,
    *,
    week: str | None = None,
    tenant: str | None = None,
    size: int = 50,
    cursor: str | None = None,
) -> Page[Doc]:
    """The reports ``scope`` may see, newest first; of one week and/or one tenant if given."""
    filters: dict[str, Any] = {}
    if week is not None:
        filters["week"] = week
    if tenant is not None:
        if scope is not None and (tenant == PROVINCE or tenant not in scope):
            return Page(items=[], next_cursor=None)
        filters["tenant"] = tenant
    return store.list_docs(KIND, tenants=scope, filters=filters or None, sort="generated_at", size=size, cursor=cursor)


__all__ = ["KIND", "PROVINCE", "check_scope", "generate", "get", "listing", "load", "report_id"]
