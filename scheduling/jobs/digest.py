"""The analysts' daily digest (``scheduler.digest``): per agency, the alerts raised in the last
24 hours by level and the cases still open, e-mailed to each recipient in their language
(Vietnamese or English) through the playbooks' relay (``playbooks.smtp``).

A recipient names the agencies they follow (``*``: every agency). One message per recipient.
A relay that refuses one recipient does not stop the others; the run fails if any was not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from playbooks.actions.notify import send_message, set_subject
from scheduling.registry import JobFailed, RunContext
from soc_core.config import DigestRecipient, Settings
from soc_core.errors import PlaybookError
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store

LEVELS = ("critical", "high", "medium", "low", "informational")
OPEN_CASE_STATUSES = ["open", "in_progress"]
TEXTS: dict[str, dict[str, str]] = {
    "vi": {
        "subject": "[Canh Gác] Tóm tắt ngày {day}: {alerts} cảnh báo mới",
        "intro": "Tóm tắt của Trung tâm Giám sát an toàn thông tin (SOC) cho 24 giờ đến {until} (UTC).",
        "alerts": "Cảnh báo mới: {count}",
        "cases": "Vụ việc đang mở: {count}",
        "level.critical": "Nghiêm trọng",
        "level.high": "Cao",
        "level.medium": "Trung bình",
        "level.low": "Thấp",
        "level.informational": "Thông tin",
        "level.none": "Không rõ mức",
        "closing": "Đây là thư tự động từ hệ thống Canh Gác; vui lòng không trả lời thư này.",
    },
    "en": {
        "subject": "[Canh Gác] Daily digest {day}: {alerts} new alerts",
        "intro": "The Security Operations Centre (SOC) digest for the 24 hours to {until} (UTC).",
        "alerts": "New alerts: {count}",
        "cases": "Open cases: {count}",
        "level.critical": "Critical",
        "level.high": "High",
        "level.medium": "Medium",
        "level.low": "Low",
        "level.informational": "Informational",
        "level.none": "No level",
        "closing": "This message was sent automatically by Canh Gác; please do not reply to it.",
    },
}


@dataclass
class AgencyDay:
    tenant: str
    name: str
    alerts_by_level: dict[str, int] = field(default_factory=dict)
    open_cases: int = 0

    @property
    def alerts(self) -> int:
        return sum(self.alerts_by_level.values())


def agency_day(store: Store, tenant: str, name: str, since: datetime) -> AgencyDay:
    """The agency's alerts created since ``since`` by level, and its open cases."""
    day = AgencyDay(tenant, name)
    horizon = format_timestamp(since)
    cursor: str | None = None
    while True:  # newest first: stops at the first alert older than the day
        page = store.list_docs("alerts", tenants=(tenant,), sort="created_at", size=1000, cursor=cursor)
        fresh = [doc for doc in page.items if str(doc.body.get("created_at", "")) >= horizon]
        for doc in fresh:
            level = str(doc.body.get("rule.level") or "none")
            day.alerts_by_level[level] = day.alerts_by_level.get(level, 0) + 1
        if len(fresh) < len(page.items) or page.next_cursor is None:
            break
        cursor = page.next_cursor
    cursor = None
    while True:
        page = store.list_docs(
            "cases", tenants=(tenant,), filters={"status": OPEN_CASE_STATUSES}, size=1000, cursor=cursor
        )
        day.open_cases += len(page.items)
        if page.next_cursor is None:
            return day
        cursor = page.next_cursor


def compose(days: list[AgencyDay], *, language: str, sender: str, to: str, until: datetime) -> EmailMessage:
    """The digest for one recipient. Pure: no I/O."""
    text = TEXTS[language]
    lines = [text["intro"].format(until=until.strftime("%Y-%m-%d %H:%M")), ""]
    for day in days:
        lines.append(f"{day.name} ({day.tenant})")
        lines.append("  " + text["alerts"].format(count=day.alerts))
        for level in (*LEVELS, "none"):
            if day.alerts_by_level.get(level):
                lines.append(f"    {text['level.' + level]}: {day.alerts_by_level[level]}")
        lines.append("  " + text["cases"].format(count=day.open_cases))
        lines.append("")
    lines.append(text["closing"])
    message = EmailMessage()
    set_subject(message, text["subject"].format(day=until.strftime("%Y-%m-%d"), alerts=sum(d.alerts for d in days)))
    message["From"] = sender
    message["To"] = to
    message["Message-ID"] = make_msgid(domain="canhgac")
    message.set_content("\n".join(lines) + "\n")
    message["Content-Language"] = language  # after set_content, which clears Content-* headers
    return message


def _agencies(store: Store) -> dict[str, str]:
    found: dict[str, str] = {}
    cursor: str | None = None
    while True:
        page = store.list_docs("tenants", sort="created_at", descending=False, size=1000, cursor=cursor)
        found.update({doc.id: str(doc.body.get("name") or doc.id) for doc in page.items})
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _followed(recipient: DigestRecipient, agencies: Mapping[str, str]) -> list[str]:
    if "*" in recipient.tenants:
        return sorted(agencies)
    return [tenant for tenant in recipient.tenants if tenant in agencies]


def run(store: Store, settings: Settings, context: RunContext) -> Mapping[str, Any]:
    config = settings.scheduler.digest
    until = utcnow()
    since = until - timedelta(days=1)
    agencies = _agencies(store)
    days: dict[str, AgencyDay] = {}
    sent: list[str] = []
    failed: dict[str, str] = {}
    for recipient in config.recipients:
        followed = _followed(recipient, agencies)
        for tenant in followed:
            if tenant not in days:
                days[tenant] = agency_day(store, tenant, agencies[tenant], since)
        message = compose(
            [days[tenant] for tenant in followed],
            language=recipient.language,
            sender=settings.playbooks.smtp.sender,
            to=recipient.address,
            until=until,
        )
        deliver(settings, message, recipient.address, sent=sent, failed=failed)
    summary = {"sent": sent, "agencies": len(days), "alerts": sum(day.alerts for day in days.values())}
    if failed:
        raise JobFailed(f"digest not sent to {sorted(failed)}: {failed}", output=summary, where="playbooks.smtp")
    return summary


def deliver(
    settings: Settings, message: EmailMessage, address: str, *, sent: list[str], failed: dict[str, str]
) -> None:
    """Send one recipient's e-mail: its address goes to ``sent``, or to ``failed`` with why."""
    try:
        refused = send_message(settings.playbooks.smtp, message)
    except PlaybookError as exc:
        failed[address] = exc.render()
        return
    if refused:
        failed[address] = f"refused by the relay: {refused}"
    else:
        sent.append(address)
