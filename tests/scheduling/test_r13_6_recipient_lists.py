"""Item 6 of the r13 brief (a gap in issue 13's "configurable per recipient list"): each list of
``scheduler.weekly_report.lists`` is a job of its own with its own cron; its run stores the week
and e-mails only that list's recipients (a real aiosmtpd relay, the PDF attached)."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from scheduling import runs
from soc_api.services.jobs import job_registry
from soc_core.config import Settings, load_settings
from soc_core.errors import ConfigError
from soc_core.store import SqliteStore
from tests.scheduling.support import relay
from tests.scheduling.test_s13a_weekly_report_job import MONDAY_7AM, attachment, pdf_text, seed


def test_r13_6_a_recipient_list_runs_on_its_own_schedule_to_its_own_people(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    seed(sqlite_store)
    with relay() as (inbox, port):
        settings = Settings(
            data_dir=tmp_path,
            playbooks={"smtp": {"host": "127.0.0.1", "port": port, "starttls": False, "sender": "soc@tinh.gov.vn"}},
            scheduler={
                "weekly_report": {
                    "recipients": [{"address": "lanhdao@tinh.gov.vn", "tenant": "*"}],
                    "lists": [
                        {
                            "name": "directors",
                            "cron": "30 8 * * 1",
                            "recipients": [{"address": "giamdoc.syt@tinh.gov.vn", "tenant": "health"}],
                        }
                    ],
                }
            },
        )
        registry = job_registry(settings)
        assert registry.get("weekly-report").schedule_text() == "cron 0 7 * * 1"
        spec = registry.get("weekly-report-directors")
        assert spec.schedule_text() == "cron 30 8 * * 1"
        done = runs.execute(sqlite_store, settings, spec, scheduled_for=MONDAY_7AM.astimezone(UTC), kind="schedule")
        assert done is not None and done["status"] == "succeeded", done
        assert done["output"] == {
            "week": "2026-W48",
            "reports": ["weekly-2026-W48-health"],
            "sent": ["giamdoc.syt@tinh.gov.vn"],
        }
        assert [str(message["To"]) for message in inbox.messages] == ["giamdoc.syt@tinh.gov.vn"], (
            "the main list was mailed too"
        )
        name, kind, data = attachment(inbox.messages[0])
    assert (name, kind) == ("canhgac-weekly-2026-W48-health-vi.pdf", "application/pdf")
    text = pdf_text(tmp_path, data)
    assert "Sở Y tế" in text and "Công an tỉnh" not in text


def test_r13_6_list_names_are_unique_and_valid(tmp_path: Path) -> None:
    path = tmp_path / "soc.yml"
    one = "{name: directors, recipients: [{address: a@b.vn}]}"
    path.write_text(f"scheduler:\n  weekly_report:\n    lists: [{one}, {one}]\n")
    with pytest.raises(ConfigError, match="share a name"):
        load_settings(path)
    path.write_text("scheduler:\n  weekly_report:\n    lists: [{name: Bad Name, recipients: [{address: a@b.vn}]}]\n")
    with pytest.raises(ConfigError, match=r"scheduler\.weekly_report\.lists\.0\.name"):
        load_settings(path)
