"""Backtests over stored history, on both stores: hits per day, and what a rule change adds/removes."""

from __future__ import annotations

from datetime import UTC, datetime

from detections.backtest import backtest, backtest_change
from soc_core.store import Store

from .helpers import event, load_one, rule_yaml

SSH = "product: linux\n    service: sshd"


def history() -> list[dict[str, object]]:
    def ssh(day: int, hour: int, user: str, action: str = "ssh_login", tenant: str = "police") -> dict[str, object]:
        return event(
            process__name="sshd",
            event__action=action,
            event__outcome="failure",
            user__name=user,
            organization__id=tenant,
            **{"@timestamp": f"2026-11-{day:02d}T{hour:02d}:00:00.000Z"},
        )

    return [
        ssh(23, 1, "root"),
        ssh(23, 5, "admin"),
        ssh(24, 2, "root"),
        ssh(24, 3, "oracle", action="ssh_invalid_user"),
        ssh(25, 4, "Root"),
        ssh(25, 6, "root", tenant="health"),
        event(user__name="root", event__action="ssh_login", **{"@timestamp": "2026-11-25T07:00:00.000Z"}),  # no sshd
    ]


def test_hits_per_day_and_change_diff(store: Store) -> None:
    events = history()
    store.add_events(events)
    store.refresh()
    ids = [str(e["event.id"]) for e in events]
    current = load_one(rule_yaml("sel:\n    event.action: ssh_login\n    user.name: root\ncondition: sel", SSH))
    result = backtest(store, current, tenants=("police",))
    assert result.event_ids == [ids[0], ids[2], ids[4]]  # routing leaves out the non-sshd event
    assert result.per_day == {"2026-11-23": 1, "2026-11-24": 1, "2026-11-25": 1}
    assert result.total == 3 and not result.truncated and result.version == current.version

    candidate = load_one(
        rule_yaml(
            "sel:\n    event.action: [ssh_login, ssh_invalid_user]\n"
            "    user.name|re: '^(admin|oracle)$'\ncondition: sel",
            SSH,
        )
    )
    diff = backtest_change(store, current, candidate, tenants=("police",))
    assert diff.added == [ids[1], ids[3]]
    assert diff.removed == [ids[0], ids[2], ids[4]]
    assert diff.candidate.per_day == {"2026-11-23": 1, "2026-11-24": 1}

    start, end = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    assert backtest(store, current, tenants=("police",), start=start, end=end).event_ids == [ids[2]]
    everyone = backtest(store, current, tenants=None, limit=3)
    assert everyone.total == 3 and everyone.truncated
