"""The weekly report job (reports-API brief item 3), on SQLite and on the real Elasticsearch node:
the week before the fire time, stored per tenant a recipient follows, e-mailed to a real local
relay (aiosmtpd) with the report attached in each recipient's language and format."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from reports import stored
from scheduling import runs
from scheduling.jobs.weekly_report import report_week
from soc_api.services import accounts
from soc_api.services.jobs import job_registry
from soc_core.config import Settings
from soc_core.store import Store
from tests.reports.seeded_week import ALERTS, _alert
from tests.scheduling.support import relay

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY_7AM = datetime(2026, 11, 30, 7, 0, tzinfo=ZONE)  # the default fire time after W48


def pdf_text(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "attached.pdf"
    path.write_bytes(data)
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext is missing: run scripts/install-system-deps (Debian poppler-utils)"
    out = subprocess.run([tool, str(path), "-"], capture_output=True, text=True, check=True)
    return re.sub(r"\s+", " ", out.stdout)


def attachment(message: EmailMessage) -> tuple[str, str, bytes]:
    parts = list(message.iter_attachments())
    assert len(parts) == 1, f"expected one attachment, got {[part.get_filename() for part in parts]}"
    part = parts[0]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return str(part.get_filename()), part.get_content_type(), payload


def seed(store: Store) -> None:
    accounts.add_tenant(store, tenant_id="police", name="Công an tỉnh")
    accounts.add_tenant(store, tenant_id="health", name="Sở Y tế")
    for alert in ALERTS:
        _alert(store, alert)
    store.refresh()


def settings_for(tmp_path: Path, port: int, recipients: list[dict[str, str]]) -> Settings:
    return Settings(
        data_dir=tmp_path,
        playbooks={"smtp": {"host": "127.0.0.1", "port": port, "starttls": False, "sender": "soc@tinh.gov.vn"}},
        scheduler={"weekly_report": {"recipients": recipients}},
    )


def test_s13a_3_the_week_reported_is_the_one_before_the_fire_time() -> None:
    assert report_week(MONDAY_7AM, ZONE) == "2026-W48"
    assert report_week(datetime(2026, 11, 29, 17, 30, tzinfo=UTC), ZONE) == "2026-W48"  # Monday 00:30 local
    assert report_week(datetime(2026, 11, 29, 16, 30, tzinfo=UTC), ZONE) == "2026-W47"  # still Sunday local
    assert report_week(datetime(2027, 1, 4, 7, tzinfo=ZONE), ZONE) == "2026-W53"  # across the year
    default = Settings().scheduler.weekly_report
    assert default.cron == "0 7 * * 1" and default.recipients == []
    assert job_registry(Settings()).get("weekly-report").schedule_text() == "cron 0 7 * * 1"


def test_s13a_3_weekly_report_stored_and_mailed_in_each_language(store: Store, tmp_path: Path) -> None:
    seed(store)
    recipients = [
        {"address": "giamdoc.ca@tinh.gov.vn", "tenant": "police", "language": "vi", "format": "pdf"},
        {"address": "lanhdao@tinh.gov.vn", "tenant": "*", "language": "en", "format": "pdf"},
        {"address": "giamdoc.syt@tinh.gov.vn", "tenant": "health", "language": "vi", "format": "html"},
    ]
    with relay() as (inbox, port):
        settings = settings_for(tmp_path, port, recipients)
        spec = job_registry(settings).get("weekly-report")
        done = runs.execute(store, settings, spec, scheduled_for=MONDAY_7AM.astimezone(UTC), kind="schedule")
        assert done is not None and done["status"] == "succeeded", done
        assert done["output"]["week"] == "2026-W48"
        assert done["output"]["reports"] == ["weekly-2026-W48-police", "weekly-2026-W48", "weekly-2026-W48-health"]
        assert done["output"]["sent"] == [r["address"] for r in recipients]
        assert inbox.count() == 3, f"{inbox.count()} messages reached the relay for 3 recipients"
        by_address = {str(message["To"]): message for message in inbox.messages}

    store.refresh()
    kept = {doc.id: doc.body for doc in store.list_docs(stored.KIND, size=100).items}
    assert set(kept) == {"weekly-2026-W48-police", "weekly-2026-W48", "weekly-2026-W48-health"}
    assert all(
        body["generated_by"] == "scheduler" and body["job"] == f"weekly-report:{done['id']}" for body in kept.values()
    )

    police = by_address["giamdoc.ca@tinh.gov.vn"]
    assert str(police["Subject"]) == "[Canh Gác] Báo cáo an ninh mạng tuần 2026-W48: Công an tỉnh"
    text_part = police.get_body(("plain",))
    assert text_part is not None and "tuần 2026-W48" in str(text_part.get_content())
    assert police["Content-Language"] == "vi"
    name, kind, data = attachment(police)
    assert (name, kind) == ("canhgac-weekly-2026-W48-police-vi.pdf", "application/pdf") and data.startswith(b"%PDF-")
    text = pdf_text(tmp_path, data)
    for words in ("Cảnh báo", "Công an tỉnh", "Báo cáo an ninh mạng hằng tuần"):
        assert words in text, f"{words!r} not in the police PDF as pdftotext reads it:\n{text[:2000]}"
    assert "Sở Y tế" not in text and "192.0.2.66" not in text  # nothing of health's

    lead = by_address["lanhdao@tinh.gov.vn"]
    assert str(lead["Subject"]) == "[Canh Gác] Weekly security report 2026-W48: Toàn tỉnh"
    name, kind, data = attachment(lead)
    assert name == "canhgac-weekly-2026-W48-province-en.pdf" and kind == "application/pdf"
    text = pdf_text(tmp_path, data)
    for words in ("Weekly security report", "Sở Y tế", "Công an tỉnh"):
        assert words in text, f"{words!r} not in the province PDF as pdftotext reads it:\n{text[:2000]}"

    name, kind, data = attachment(by_address["giamdoc.syt@tinh.gov.vn"])
    assert (name, kind) == ("canhgac-weekly-2026-W48-health-vi.html", "text/html")
    assert "Sở Y tế" in data.decode() and "Công an tỉnh" not in data.decode()


def test_s13a_3_a_report_or_message_that_fails_fails_the_run_and_spares_the_others(
    store: Store, tmp_path: Path
) -> None:
    seed(store)
    recipients = [
        {"address": "nobody@tinh.gov.vn", "tenant": "gone", "language": "vi", "format": "pdf"},
        {"address": "giamdoc.syt@tinh.gov.vn", "tenant": "health", "language": "en", "format": "html"},
    ]
    with relay() as (inbox, port):
        settings = settings_for(tmp_path, port, recipients)
        spec = job_registry(settings).get("weekly-report")
        done = runs.execute(store, settings, spec, scheduled_for=MONDAY_7AM.astimezone(UTC), kind="manual")
        assert done is not None and done["status"] == "failed", done
        assert "gone" in done["error"] and "nobody@tinh.gov.vn" in done["error"]
        assert done["output"] == {
            "week": "2026-W48",
            "reports": ["weekly-2026-W48-health"],
            "sent": [recipients[1]["address"]],
        }
        assert [str(message["To"]) for message in inbox.messages] == ["giamdoc.syt@tinh.gov.vn"]
        # run again an hour later (the same fire time would be the same run, refused): the week's
        # report is replaced, not doubled
        later = (MONDAY_7AM + timedelta(hours=1)).astimezone(UTC)
        again = runs.execute(store, settings, spec, scheduled_for=later, kind="manual")
        assert again is not None and again["status"] == "failed"
    store.refresh()
    assert [doc.id for doc in store.list_docs(stored.KIND, size=100).items] == ["weekly-2026-W48-health"]
