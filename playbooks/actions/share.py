"""``share_stix``: a case's indicators and sightings as a STIX 2.1 bundle for the national centre.

The bundle holds the SOC (``identity``, the producer, named by ``playbooks.share.identity``), the
agency the case belongs to (``identity``, where it was sighted), one ``indicator`` per IP, domain,
URL or hash observable of the case (a ``[type:value = '…']`` pattern), and one ``sighting`` per
(alert, indicator) whose value the alert saw, with the alert's first/last seen and count. Ids are
UUIDv5 of the case and the value, and times come from the case, so exporting the same case twice
gives the same bundle.

The bundle is the step's output (kept in the run record, downloadable from it). With
``post: true`` it is also POSTed to ``playbooks.share.url`` through the webhook guard
(:mod:`playbooks.actions.outbound`: a public address only, checked after resolution and before
connecting, no redirects) — not in dry-run — with ``Authorization: Bearer <token>`` when
``playbooks.share.token_file`` names a token file (mode 0600, read at each post). The token is
never in the step's output or error, and the run record blanks it out wherever it might appear.
A step that may post is not idempotent: one that was posting when the process died is left to a
person.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from playbooks.actions.base import Action, ActionContext, ActionError, ActionResult, register
from playbooks.actions.outbound import check_allowed, parse_target, post_json, resolve_public
from soc_core.config import WebhookSettings
from soc_core.errors import ConfigError, NotFound
from soc_core.events import format_timestamp, utcnow
from soc_core.secret_files import read_secret

NAMESPACE = uuid.UUID("6f1d3c52-8f3e-4c8a-9d2b-2a4e6c1b7f90")  # ours: the UUIDv5 namespace of exported objects
HASH_NAMES = {32: "MD5", 40: "SHA-1", 64: "SHA-256"}
MAX_BUNDLE_BYTES = 8 * 1024 * 1024
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{1,4096}=*")  # RFC 6750 b64token


class ShareStixParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(min_length=1, max_length=128)
    post: bool = False  # also POST it to playbooks.share.url


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, chr(0).join(parts))}"


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stix_pattern(kind: str, value: str) -> str | None:
    """The STIX pattern of one observable, or None for kinds STIX indicators do not carry here
    (users, host names)."""
    if kind == "ip":
        return f"[{'ipv6-addr' if ':' in value else 'ipv4-addr'}:value = {_quoted(value)}]"
    if kind == "domain":
        return f"[domain-name:value = {_quoted(value.lower())}]"
    if kind == "url":
        return f"[url:value = {_quoted(value)}]"
    if kind == "hash" and len(value) in HASH_NAMES:
        return f"[file:hashes.'{HASH_NAMES[len(value)]}' = {_quoted(value.lower())}]"
    return None


def _alert_values(alert: Mapping[str, Any]) -> set[str]:
    values = {str(item).lower() for items in (alert.get("entities") or {}).values() for item in (items or [])}
    hit = (alert.get("details") or {}).get("intel") or {}
    values.update(str(hit[key]).lower() for key in ("value", "indicator") if hit.get(key))
    return values


def build_bundle(
    case_id: str, case: Mapping[str, Any], alerts: Sequence[tuple[str, Mapping[str, Any]]], producer: str
) -> dict[str, Any]:
    """Pure: the STIX 2.1 bundle of a case and its alerts (see the module docstring)."""
    created = str(case.get("created_at") or format_timestamp(utcnow()))
    modified = str(case.get("updated_at") or created)
    common = {"spec_version": "2.1", "created": created, "modified": modified}
    soc = {
        **common,
        "type": "identity",
        "id": _id("identity", producer),
        "name": producer,
        "identity_class": "organization",
    }
    tenant = str(case.get("tenant", ""))
    agency = {
        **common,
        "type": "identity",
        "id": _id("identity", "agency", tenant),
        "name": tenant,
        "identity_class": "organization",
    }
    objects: list[dict[str, Any]] = [soc, agency]
    indicators: dict[str, str] = {}  # value (lower) → indicator id
    for observable in case.get("observables") or []:
        kind, value = str(observable.get("type")), str(observable.get("value"))
        pattern = stix_pattern(kind, value)
        if pattern is None or value.lower() in indicators:
            continue
        indicator_id = _id("indicator", case_id, kind, value.lower())
        indicators[value.lower()] = indicator_id
        objects.append(
            {
                **common,
                "type": "indicator",
                "id": indicator_id,
                "created_by_ref": soc["id"],
                "name": f"{kind} {value}",
                "indicator_types": ["malicious-activity"],
                "pattern": pattern,
                "pattern_type": "stix",
                "valid_from": created,
            }
        )
    for alert_id, alert in alerts:
        seen = _alert_values(alert)
        for value, indicator_id in indicators.items():
            if value not in seen:
                continue
            objects.append(
                {
                    **common,
                    "type": "sighting",
                    "id": _id("sighting", case_id, alert_id, value),
                    "created_by_ref": soc["id"],
                    "sighting_of_ref": indicator_id,
                    "where_sighted_refs": [agency["id"]],
                    "first_seen": str(alert.get("first_seen") or created),
                    "last_seen": str(alert.get("last_seen") or modified),
                    "count": max(1, min(int(alert.get("count") or 1), 999_999_999)),
                    "description": f"{alert.get('rule.name') or alert.get('rule.id')} (alert {alert_id})",
                }
            )
    return {"type": "bundle", "id": _id("bundle", case_id, modified), "objects": objects}


@register
class ShareStix(Action[ShareStixParams]):
    name: ClassVar[str] = "share_stix"
    Params: ClassVar[type[BaseModel]] = ShareStixParams
    idempotent: ClassVar[bool] = False

    def run(self, ctx: ActionContext, params: ShareStixParams) -> ActionResult:
        settings = ctx.settings.playbooks.share
        try:
            case = ctx.store.get_doc("cases", params.case_id)
        except NotFound:
            case = None
        if case is None or case.body.get("tenant") != ctx.tenant:  # another agency's case: as if missing
            raise ActionError(f"no case {params.case_id!r} for agency {ctx.tenant}", where="share_stix.case_id")
        alerts = []
        for alert_id in case.body.get("alert_ids") or []:
            try:
                doc = ctx.store.get_doc("alerts", str(alert_id))
            except NotFound:
                continue
            if doc.body.get("tenant") == ctx.tenant:
                alerts.append((doc.id, doc.body))
        bundle = build_bundle(case.id, case.body, alerts, settings.identity)
        counts: dict[str, int] = {}
        for obj in bundle["objects"]:
            counts[obj["type"]] = counts.get(obj["type"], 0) + 1
        output: dict[str, Any] = {"bundle": bundle, "counts": counts}
        if not params.post:
            return ActionResult(output=output)
        if settings.url is None:
            raise ActionError(
                "share_stix was asked to post, but no endpoint is configured",
                where="playbooks.share.url",
                hint="set it, or leave post: false to keep the bundle in the run only",
            )
        guard = WebhookSettings(
            allow=[settings.url],
            timeout_seconds=settings.timeout_seconds,
            allow_plain_http=settings.allow_plain_http,
            ca_file=settings.ca_file,
        )
        target = parse_target(settings.url)
        check_allowed(target, guard)
        body = json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode()
        if len(body) > MAX_BUNDLE_BYTES:
            raise ActionError(f"the bundle is {len(body)} bytes, over {MAX_BUNDLE_BYTES}", where=settings.url)
        # read in a dry run too, so a missing or world-readable token file shows before it matters
        token = _token(settings.token_file) if settings.token_file else None
        # says that a token went, never which
        auth = {"auth": "bearer (playbooks.share.token_file)"} if token else {}
        if ctx.dry_run:
            post = {"dry_run": True, "url": settings.url, "bytes": len(body), **auth}
            return ActionResult(output={**output, "post": post})
        address = resolve_public(target)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            answer = post_json(target, address, body, guard, headers=headers)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise ActionError(
                _without_token(f"POST of the bundle to {target.host} ({address}) failed: {exc!r}", token),
                where=settings.url,
            ) from exc
        if answer.status in (401, 403):
            raise ActionError(
                f"the sharing endpoint answered {answer.status}: it refused "
                + ("the token" if token else "a post without a token"),
                where=settings.url,
                hint="put the endpoint's token in the file playbooks.share.token_file names (mode 0600)",
            )
        if not 200 <= answer.status < 300:
            raise ActionError(
                f"the sharing endpoint answered {answer.status} (redirects are not followed)", where=settings.url
            )
        post = {"url": settings.url, "status": answer.status, **auth}
        return ActionResult(output={**output, "post": post}, changed=True)


def _token(path: Path) -> str:
    token = read_secret(path, what="share token")
    if not BEARER_TOKEN.fullmatch(token):  # it goes into a header: never quote it, even in the error
        raise ConfigError(
            "the share token is not a bearer token (letters, digits and -._~+/ then any =)",
            where=str(path),
            hint="put the token alone on the file's first line",
        )
    return token


def _without_token(text: str, token: str | None) -> str:
    """``text`` without the token (an exception's text could quote what was sent)."""
    return text.replace(token, "[redacted]") if token else text


__all__ = ["ShareStix", "ShareStixParams", "build_bundle", "stix_pattern"]
