"""The managers' weekly report (``scheduler.weekly_report``, Monday 07:00 by default): the ISO
week before the run's fire time, for each tenant a recipient follows (an agency, or ``*`` for
the province), counted and stored (:mod:`reports.stored`, replacing an earlier copy of that
week), then e-mailed to each recipient with the report attached — PDF or HTML, in their
language — through the playbooks' relay (``playbooks.smtp``). Each list of
``scheduler.weekly_report.lists`` is a job of its own (``weekly-report-<name>``, its own cron)
running the same function for its recipients.

The week comes from the fire time, not the clock: a Monday run caught up on Tuesday after a
restart still reports the week before that Monday. A tenant that cannot be counted (an agency
that no longer exists) or a relay that refuses one recipient does not stop the others; the run
fails, naming them, if any report was not made or any message not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from zoneinfo import ZoneInfo

from playbooks.actions.notify import set_subject
from reports import stored
from reports.i18n import Language
from reports.model import WeeklyReport
from reports.render import CONTENT_TYPES, render
from reports.summary import executive_summary
from scheduling.jobs.digest import deliver
from scheduling.registry import JobFailed, RunContext
from soc_core.config import Settings, WeeklyReportRecipient
from soc_core.errors import NotFound, SocError
from soc_core.store import Store

TEXTS: dict[str, dict[str, str]] = {
    "vi": {
        "subject": "[Canh Gác] Báo cáo an ninh mạng tuần {week}: {name}",
        "intro": "Kính gửi anh/chị, đính kèm là báo cáo an ninh mạng tuần {week} ({start} – {end}) của {name}.",
        "closing": "Đây là thư tự động từ hệ thống Canh Gác; vui lòng không trả lời thư này.",
    },
    "en": {
        "subject": "[Canh Gác] Weekly security report {week}: {name}",
        "intro": "Attached is the weekly security report of {name} for week {week} ({start} – {end}).",
        "closing": "This message was sent automatically by Canh Gác; please do not reply to it.",
    },
}


JOB = "weekly-report"


def job_id(name: str) -> str:
    """The job of the recipient list ``name`` (``scheduler.weekly_report.lists``)."""
    return f"{JOB}-{name}"


def recipients_of(settings: Settings, job: str) -> list[WeeklyReportRecipient]:
    """Who a run of ``job`` writes to: the main list, or the named list the job is for."""
    config = settings.scheduler.weekly_report
    if job == JOB:
        return config.recipients
    for entry in config.lists:
        if job_id(entry.name) == job:
            return entry.recipients
    raise NotFound(f"no recipient list for job {job!r}", where="scheduler.weekly_report.lists")


def report_week(fired: datetime, zone: ZoneInfo) -> str:
    """The ISO week before the one ``fired`` falls in, in ``zone``."""
    year, number, _ = (fired.astimezone(zone).date() - timedelta(days=7)).isocalendar()
    return f"{year}-W{number:02d}"


def compose(report: WeeklyReport, attachment: bytes, *, recipient: WeeklyReportRecipient, sender: str) -> EmailMessage:
    """The message to one recipient: a short summary in their language, the report attached.
    Pure: no I/O."""
    text = TEXTS[recipient.language]
    language = Language(recipient.language)
    start = datetime.fromisoformat(report.start).date()
    last_day = (datetime.fromisoformat(report.end) - timedelta(days=1)).date()
    values = {
        "week": report.week,
        "name": report.scope.name,
        "start": language.day(start),
        "end": language.day(last_day),
    }
    lines = [text["intro"].format(**values), "", *executive_summary(report, language), "", text["closing"]]
    message = EmailMessage()
    set_subject(message, text["subject"].format(**values))
    message["From"] = sender
    message["To"] = recipient.address
    message["Message-ID"] = make_msgid(domain="canhgac")
    message.set_content("\n\n".join(line for line in lines if line) + "\n")
    maintype, _, subtype = CONTENT_TYPES[recipient.format].partition(";")[0].partition("/")
    scope = "province" if report.scope.tenant == stored.PROVINCE else report.scope.tenant
    message.add_attachment(
        attachment,
        maintype=maintype,
        subtype=subtype,
        filename=f"canhgac-weekly-{report.week}-{scope}-{recipient.language}.{recipient.format}",
    )
    # last: set_content and add_attachment move the Content-* headers into the parts
    message["Content-Language"] = recipient.language
    return message


def run(store: Store, settings: Settings, context: RunContext) -> Mapping[str, Any]:
    recipients = recipients_of(settings, context.job_id)
    week = report_week(context.scheduled_for, ZoneInfo(settings.reports.timezone))
    reports: dict[str, WeeklyReport] = {}
    failed: dict[str, str] = {}
    for tenant in dict.fromkeys(recipient.tenant for recipient in recipients):
        try:
            doc = stored.generate(
                store,
                settings,
                week=week,
                tenant=tenant,
                generated_by="scheduler",
                job=f"{context.job_id}:{context.run_id}",
            )
        except SocError as exc:
            failed[f"report {tenant}"] = exc.render()
            continue
        reports[tenant] = stored.load(doc)
    documents: dict[tuple[str, str, str], bytes] = {}  # (tenant, language, format): rendered once
    sent: list[str] = []
    for recipient in recipients:
        report = reports.get(recipient.tenant)
        if report is None:
            failed[recipient.address] = f"no report of {recipient.tenant!r} to send"
            continue
        key = (recipient.tenant, recipient.language, recipient.format)
        if key not in documents:
            documents[key] = render(report, fmt=recipient.format, lang=recipient.language)
        message = compose(report, documents[key], recipient=recipient, sender=settings.playbooks.smtp.sender)
        deliver(settings, message, recipient.address, sent=sent, failed=failed)
    summary = {"week": week, "reports": [stored.report_id(tenant, week) for tenant in reports], "sent": sent}
    if failed:
        raise JobFailed(f"weekly report {week} not done for {sorted(failed)}: {failed}", output=summary)
    return summary


__all__ = ["JOB", "compose", "job_id", "recipients_of", "report_week", "run"]
