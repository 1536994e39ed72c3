"""Notify actions: ``webhook`` (a JSON POST to an allowlisted public target) and ``email``
(SMTP with STARTTLS, in the recipient's language — Vietnamese by default).

Neither is idempotent: a step that was sending when the process died is left to a person, since
sending again could notify twice. In dry-run both check their parameters and configuration and
say what they would send, without connecting anywhere.

The e-mail texts are catalogues beside this module (``mail/{vi,en}.json``) in the shape of the
UI's (``soc_api/ui/i18n``: message id → text with ``{name}`` placeholders, English as the
fallback); they are not the UI's files because ``playbooks`` may not import ``soc_api``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.charset import Charset
from email.message import EmailMessage
from email.utils import make_msgid
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from playbooks.actions.base import Action, ActionContext, ActionError, ActionResult, register
from playbooks.actions.outbound import check_allowed, parse_target, post_json, resolve_public, tls_context
from soc_core.config import SmtpSettings

LANGUAGES = ("vi", "en")
MAIL_TEXTS = Path(__file__).parent / "mail"
MAX_PAYLOAD_BYTES = 256 * 1024
EMAIL_ADDRESS = re.compile(r"^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_UTF8 = Charset("utf-8")


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    payload: dict[str, Any] = Field(default_factory=dict)


@register
class Webhook(Action[WebhookParams]):
    """POST ``payload`` as JSON to ``url``; 2xx is success, anything else (3xx included) fails."""

    name: ClassVar[str] = "webhook"
    Params: ClassVar[type[BaseModel]] = WebhookParams
    idempotent: ClassVar[bool] = False

    def run(self, ctx: ActionContext, params: WebhookParams) -> ActionResult:
        settings = ctx.settings.playbooks.webhook
        target = parse_target(params.url)
        check_allowed(target, settings)
        body = json.dumps(params.payload, ensure_ascii=False, separators=(",", ":")).encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise ActionError(f"webhook payload is {len(body)} bytes, over {MAX_PAYLOAD_BYTES}", where=target.url)
        if ctx.dry_run:
            return ActionResult(output={"dry_run": True, "url": target.url, "bytes": len(body)})
        address = resolve_public(target)
        try:
            answer = post_json(target, address, body, settings)
        except ssl.SSLError as exc:
            raise ActionError(
                f"TLS with {target.host} ({address}) failed: {exc.reason or exc}",
                where=target.url,
                hint="the certificate must be valid for the host; set playbooks.webhook.ca_file for a private CA",
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ActionError(
                f"POST to {target.host} ({address}) failed: {exc!r}",
                where=target.url,
                hint=f"check that the receiver is up and answers within {settings.timeout_seconds:g} s "
                "(playbooks.webhook.timeout_seconds, for the whole request)",
            ) from exc
        if 300 <= answer.status < 400:
            raise ActionError(
                f"webhook answered {answer.status} (a redirect); redirects are not followed",
                where=target.url,
                hint="configure the final URL",
            )
        if not 200 <= answer.status < 300:
            raise ActionError(f"webhook answered {answer.status}", where=target.url)
        return ActionResult(
            output={"url": target.url, "address": answer.address, "status": answer.status}, changed=True
        )


@cache
def _catalogue(language: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((MAIL_TEXTS / f"{language}.json").read_text(encoding="utf-8"))
    return data


def _text(language: str, message_id: str, **values: object) -> str:
    text = _catalogue(language).get(message_id) or _catalogue("en").get(message_id) or message_id
    return text.format(**values) if values else text


def _one_line(value: object, limit: int = 200) -> str:
    """Header-safe text: control characters (CR/LF included) become spaces."""
    return CONTROL.sub(" ", str(value)).strip()[:limit]


class EmailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(min_length=1, max_length=20)
    language: Literal["vi", "en"] | None = None  # the recipients' language; default: the run's (vi)
    alert: dict[str, Any] | None = None  # the alert document (with its ``id``)
    case: dict[str, Any] | None = None  # the case document (with its ``id``)
    note: str | None = Field(None, max_length=4000)
    link: str | None = Field(None, max_length=2048)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [address for address in value if not EMAIL_ADDRESS.match(address)]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value


def compose(params: EmailParams, *, language: str, sender: str) -> EmailMessage:
    """The message for a case (if given) or an alert, in ``language``. Pure: no I/O."""
    kind: Literal["alert", "case", "other"] = "case" if params.case else "alert" if params.alert else "other"
    doc: Mapping[str, Any] = params.case or params.alert or {}
    tenant = _one_line(doc.get("tenant") or "—", 60)
    level_key = str(doc.get("severity") or doc.get("rule.level") or "").lower()
    level = _text(language, f"level.{level_key}") if level_key else "—"
    title = _one_line(doc.get("title") or doc.get("rule.name") or params.note or "—")
    lines = [_text(language, "greeting", tenant=tenant), "", _text(language, f"intro.{kind}"), ""]
    fields: list[tuple[str, object]] = [
        ("field.title", title),
        ("field.level", level),
        ("field.id", doc.get("id")),
        ("field.status", doc.get("status")),
        ("field.rule", doc.get("rule.id")),
        ("field.time", doc.get("first_seen") or doc.get("created_at")),
    ]
    lines += [f"{_text(language, label)}: {value}" for label, value in fields if value]
    entities = doc.get("entities") or {}
    if isinstance(entities, Mapping) and entities:
        lines.append(f"{_text(language, 'field.entities')}:")
        lines += [f"  {name}: {', '.join(map(str, values))}" for name, values in sorted(entities.items())]
    if params.note:
        lines += ["", f"{_text(language, 'field.note')}: {params.note}"]
    if params.link:
        lines += ["", f"{_text(language, 'field.link')}: {params.link}"]
    lines += ["", _text(language, "closing")]
    message = EmailMessage()
    set_subject(message, _text(language, f"subject.{kind}", level=level, title=title, tenant=tenant))
    message["From"] = sender
    message["To"] = ", ".join(params.to)
    message["Message-ID"] = make_msgid(domain="canhgac")
    message.set_content("\n".join(lines) + "\n")
    message["Content-Language"] = language  # after set_content, which clears Content-* headers
    return message


def set_subject(message: EmailMessage, subject: str) -> None:
    """The subject as RFC 2047 encoded words cut at character boundaries only. The email
    package's own folding (Python 3.11) drops the space between two words when it folds a line
    between them ("3 cảnh báo mới" arrived as "3 cảnh báomới"); readers join adjacent encoded
    words, so the spaces inside them survive."""
    subject = CONTROL.sub(" ", subject)  # never a line break into the header block
    if subject.isascii():
        message["Subject"] = subject
        return
    lines = _UTF8.header_encode_lines(subject, itertools.repeat(75 - len("Subject: ")))
    message.set_raw("Subject", "\n ".join(line for line in lines if line))


def _sign_in(client: smtplib.SMTP, username: str, password: str, *, where: str) -> None:
    """One attempt with one mechanism (PLAIN, else LOGIN): ``SMTP.login`` would try the same
    wrong password once per mechanism the relay offers, counting twice against its lockout."""
    offered = (client.esmtp_features.get("auth") or "").upper().split()
    mechanism = next((name for name in ("PLAIN", "LOGIN") if name in offered), None)
    if mechanism is None:
        raise ActionError(
            f"the mail relay offers no PLAIN or LOGIN sign-in (it offers {offered or 'none'})",
            where=where,
            hint="unset playbooks.smtp.username if the relay takes mail without signing in",
        )
    client.user, client.password = username, password
    client.auth(mechanism, client.auth_plain if mechanism == "PLAIN" else client.auth_login)


def send_message(smtp: SmtpSettings, message: EmailMessage) -> dict[str, Any]:
    """Send ``message`` through the configured relay (STARTTLS unless switched off, signing in
    if a user is set); returns the recipients the relay refused. Also used by the scheduler's
    digest (``scheduling.jobs.digest``)."""
    if smtp.host is None:
        raise ActionError("no mail relay is configured", where="playbooks.smtp.host", hint="set the relay's host name")
    where = f"smtp://{smtp.host}:{smtp.port}"
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
            client.ehlo()
            if smtp.starttls:
                if not client.has_extn("starttls"):
                    raise ActionError(
                        "the mail relay does not offer STARTTLS",
                        where=where,
                        hint="enable TLS on the relay (or set playbooks.smtp.starttls: false)",
                    )
                client.starttls(context=tls_context(smtp.ca_file))
                client.ehlo()
            if smtp.username and smtp.password is not None:
                _sign_in(client, smtp.username, smtp.password.get_secret_value(), where=where)
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        # the relay's answer only: the password is never part of the message
        raise ActionError(
            f"the mail relay refused the sign-in of {smtp.username!r} ({exc.smtp_code})",
            where=where,
            hint="check playbooks.smtp.username and password",
        ) from exc
    except ssl.SSLError as exc:
        raise ActionError(
            f"TLS with the mail relay failed: {exc.reason or exc}",
            where=where,
            hint="the relay's certificate must be valid; set playbooks.smtp.ca_file for a private CA",
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise ActionError(f"sending the e-mail failed: {exc!r}", where=where) from exc
    return dict(refused)


@register
class Email(Action[EmailParams]):
    """Send the alert or case by e-mail through the configured relay (``playbooks.smtp``)."""

    name: ClassVar[str] = "email"
    Params: ClassVar[type[BaseModel]] = EmailParams
    idempotent: ClassVar[bool] = False

    def run(self, ctx: ActionContext, params: EmailParams) -> ActionResult:
        smtp = ctx.settings.playbooks.smtp
        language = params.language or (ctx.language if ctx.language in LANGUAGES else "vi")
        message = compose(params, language=language, sender=smtp.sender)
        output: dict[str, Any] = {
            "to": params.to,
            "subject": message["Subject"],
            "language": language,
            "message_id": message["Message-ID"],
        }
        if smtp.host is None:
            raise ActionError(
                "no mail relay is configured", where="playbooks.smtp.host", hint="set the relay's host name"
            )
        if ctx.dry_run:
            return ActionResult(output={**output, "dry_run": True})
        refused = send_message(smtp, message)
        if refused:
            output["refused"] = sorted(refused)
        return ActionResult(output=output, changed=True)


__all__ = ["Email", "EmailParams", "Webhook", "WebhookParams", "compose", "send_message"]
