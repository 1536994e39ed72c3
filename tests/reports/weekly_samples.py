"""Weekly reports built by hand for the renderer's tests: a province's, an agency's and a week
with no data at all. The numbers are chosen to be told apart in the rendered text (1.234 alerts,
a 7 h 30 min MTTR), and the names carry Vietnamese diacritics."""

from __future__ import annotations

from typing import get_args

from reports.model import (
    Agency,
    Alerts,
    Attack,
    Cases,
    Change,
    DayCount,
    Headline,
    Level,
    LevelResponse,
    Playbooks,
    Response,
    RuleCount,
    RuleFalsePositives,
    Scope,
    SensorHealth,
    Technique,
    ValueCount,
    WeeklyReport,
)

LEVELS: tuple[Level, ...] = get_args(Level)
WEEK = "2026-W48"
DAYS = ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29"]
# alerts per day and level (informational, low, medium, high, critical): 1,234 in all
PER_DAY: list[tuple[int, int, int, int, int]] = [
    (60, 50, 40, 20, 4),
    (70, 60, 50, 30, 10),
    (55, 50, 45, 25, 6),
    (60, 55, 45, 20, 5),
    (65, 55, 50, 25, 4),
    (45, 40, 35, 15, 3),
    (45, 40, 35, 15, 2),
]
SLA: dict[Level, tuple[int, int]] = {  # level: (acknowledge, resolve) in seconds
    "informational": (86400, 604800),
    "low": (14400, 259200),
    "medium": (3600, 86400),
    "high": (1800, 28800),
    "critical": (900, 14400),
}
HOSTILE_TITLE = "<script>alert('xss')</script> $\\frac{1}{0}$ SSH"


def change(value: float | None, previous: float | None) -> Change:
    ratio = None if value is None or previous is None or previous == 0 else (value - previous) / previous
    return Change(value=value, previous=previous, change=ratio)


def _days() -> list[DayCount]:
    days = []
    for day, counts in zip(DAYS, PER_DAY, strict=True):
        by_level: dict[Level, int] = dict(zip(LEVELS, counts, strict=True))
        days.append(DayCount(date=day, by_level=by_level, total=sum(counts)))
    return days


def _by_level() -> dict[Level, int]:
    return {level: sum(day[index] for day in PER_DAY) for index, level in enumerate(LEVELS)}


def _response() -> Response:
    by_level = []
    mtta: dict[Level, float | None] = {
        "informational": None,
        "low": 5400.0,
        "medium": 1500.0,
        "high": 1260.0,
        "critical": 420.0,
    }
    mttr: dict[Level, float | None] = {
        "informational": None,
        "low": 86400.0,
        "medium": 30600.0,
        "high": 27000.0,
        "critical": 9000.0,
    }
    breaches: dict[Level, tuple[int, int]] = {
        "informational": (0, 0),
        "low": (1, 0),
        "medium": (2, 1),
        "high": (4, 2),
        "critical": (1, 2),
    }
    counts = _by_level()
    for level in LEVELS:
        ack_sla, resolve_sla = SLA[level]
        by_level.append(
            LevelResponse(
                level=level,
                alerts=counts[level],
                acknowledged=counts[level] // 2,
                resolved=counts[level] // 3,
                mtta_seconds=mtta[level],
                mttr_seconds=mttr[level],
                ack_sla_seconds=ack_sla,
                resolve_sla_seconds=resolve_sla,
                ack_breaches=breaches[level][0],
                resolve_breaches=breaches[level][1],
            )
        )
    return Response(mtta_seconds=1332.0, mttr_seconds=27000.0, sla_breaches=13, by_level=by_level)


def province(*, hostile: bool = False) -> WeeklyReport:
    """The province's report: three agencies, every section filled."""
    first_title = HOSTILE_TITLE if hostile else "Đăng nhập SSH thất bại liên tiếp"
    return WeeklyReport(
        week=WEEK,
        start="2026-11-23T00:00:00+07:00",
        end="2026-11-30T00:00:00+07:00",
        timezone="Asia/Ho_Chi_Minh",
        generated_at="2026-11-30T00:05:00+00:00",
        scope=Scope(tenant="*", tenants=["police", "health", "education"], name="Tỉnh Bình Định"),
        headline=Headline(
            alerts=change(1234, 1100),
            critical_alerts=change(184, 201),
            cases_opened=change(17, 12),
            cases_closed=change(14, 14),
            open_cases=change(9, 6),
            mtta_seconds=change(1332.0, 1500.0),
            mttr_seconds=change(27000.0, 21600.0),
            sla_breaches=change(13, 9),
            false_positive_rate=change(0.125, 0.1),
            sensor_uptime=change(0.9731, 0.99),
            playbook_runs=change(23, 0),
            containments=change(4, None),
        ),
        alerts=Alerts(
            total=1234,
            by_level=_by_level(),
            by_day=_days(),
            by_status={"new": 311, "acknowledged": 120, "in_progress": 48, "resolved": 655, "false_positive": 100},
        ),
        top_rules=[
            RuleCount(rule_id="ssh-brute-force", title=first_title, level="high", count=321),
            RuleCount(rule_id="port-scan", title="Quét cổng từ mạng ngoài", level="medium", count=287),
            RuleCount(rule_id="sudo-fail", title="Sudo thất bại", level="low", count=150),
            RuleCount(
                rule_id="web-sqli", title="Truy vấn SQL injection vào cổng thông tin", level="critical", count=34
            ),
            RuleCount(rule_id="dns-tunnel", title="Nghi vấn DNS tunneling", level="medium", count=13),
        ],
        attack=Attack(
            tactics=[
                Technique(id="credential-access", count=321),
                Technique(id="discovery", count=287),
                Technique(id="initial-access", count=34),
            ],
            techniques=[
                Technique(id="T1110.001", count=321),
                Technique(id="T1046", count=287),
                Technique(id="T1190", count=34),
            ],
        ),
        top_sources=[ValueCount(value="203.0.113.77", count=402), ValueCount(value="198.51.100.23", count=97)],
        top_targets=[
            ValueCount(value="cong-thong-tin.binhdinh.gov.vn", count=215),
            ValueCount(value="10.20.0.5", count=88),
        ],
        cases=Cases(
            opened=17,
            closed=14,
            open_at_end=9,
            by_classification={"true_positive": 8, "false_positive": 5, "benign": 1},
        ),
        response=_response(),
        false_positives=[
            RuleFalsePositives(
                rule_id="dns-tunnel", title="Nghi vấn DNS tunneling", closed=8, false_positives=6, rate=0.75
            ),
            RuleFalsePositives(
                rule_id="port-scan", title="Quét cổng từ mạng ngoài", closed=200, false_positives=50, rate=0.25
            ),
            RuleFalsePositives(rule_id="ssh-brute-force", title=first_title, closed=300, false_positives=0, rate=0.0),
        ],
        sensors=[
            SensorHealth(
                sensor_id="s-ca-fw1",
                name="Tường lửa Công an",
                tenant="police",
                kind="network",
                uptime=0.998,
                capture_loss=0.0312,
                events=812345,
                last_seen="2026-11-29T16:58:00+00:00",
                silent=False,
            ),
            SensorHealth(
                sensor_id="s-yt-log",
                name="Máy chủ nhật ký Sở Y tế",
                tenant="health",
                kind="log",
                uptime=0.8751,
                capture_loss=None,
                events=120044,
                last_seen="2026-11-28T03:10:00+00:00",
                silent=True,
            ),
            SensorHealth(
                sensor_id="s-gd-log",
                name="Cổng tuyển sinh",
                tenant="education",
                kind="log",
                uptime=None,
                capture_loss=None,
                events=0,
                last_seen=None,
                silent=True,
            ),
        ],
        playbooks=Playbooks(
            runs=23,
            by_status={"succeeded": 19, "failed": 3, "waiting_approval": 1},
            by_playbook=[
                ValueCount(value="block-ssh-brute-force", count=15),
                ValueCount(value="notify-agency", count=8),
            ],
            containments=4,
        ),
        agencies=[
            Agency(
                tenant="police",
                name="Công an tỉnh",
                alerts=700,
                critical_alerts=120,
                open_cases=5,
                mtta_seconds=900.0,
                mttr_seconds=20000.0,
                sla_breaches=9,
                silent_sensors=0,
            ),
            Agency(
                tenant="health",
                name="Sở Y tế",
                alerts=434,
                critical_alerts=60,
                open_cases=3,
                mtta_seconds=2000.0,
                mttr_seconds=36000.0,
                sla_breaches=4,
                silent_sensors=1,
            ),
            Agency(
                tenant="education",
                name="Sở Giáo dục và Đào tạo",
                alerts=100,
                critical_alerts=8,
                open_cases=1,
                mtta_seconds=None,
                mttr_seconds=None,
                sla_breaches=0,
                silent_sensors=1,
            ),
        ],
    )


def agency() -> WeeklyReport:
    """Sở Y tế's own report: one agency, no agency table."""
    full = province()
    return full.model_copy(
        update={
            "scope": Scope(tenant="health", tenants=["health"], name="Sở Y tế"),
            "sensors": [sensor for sensor in full.sensors if sensor.tenant == "health"],
            "agencies": [],
        }
    )


def empty() -> WeeklyReport:
    """A week with nothing in it, and no week before it either."""
    nothing = Change(value=None, previous=None, change=None)
    zero = Change(value=0, previous=None, change=None)
    zeros: dict[Level, int] = dict.fromkeys(LEVELS, 0)
    return WeeklyReport(
        week=WEEK,
        start="2026-11-23T00:00:00+07:00",
        end="2026-11-30T00:00:00+07:00",
        timezone="Asia/Ho_Chi_Minh",
        generated_at="2026-11-30T00:05:00+07:00",
        scope=Scope(tenant="education", tenants=["education"], name="Sở Giáo dục và Đào tạo"),
        headline=Headline(
            alerts=zero,
            critical_alerts=zero,
            cases_opened=zero,
            cases_closed=zero,
            open_cases=zero,
            mtta_seconds=nothing,
            mttr_seconds=nothing,
            sla_breaches=zero,
            false_positive_rate=nothing,
            sensor_uptime=nothing,
            playbook_runs=zero,
            containments=zero,
        ),
        alerts=Alerts(
            total=0, by_level=zeros, by_day=[DayCount(date=day, by_level=zeros, total=0) for day in DAYS], by_status={}
        ),
        top_rules=[],
        attack=Attack(tactics=[], techniques=[]),
        top_sources=[],
        top_targets=[],
        cases=Cases(opened=0, closed=0, open_at_end=0, by_classification={}),
        response=Response(
            mtta_seconds=None,
            mttr_seconds=None,
            sla_breaches=0,
            by_level=[
                LevelResponse(
                    level=level,
                    alerts=0,
                    acknowledged=0,
                    resolved=0,
                    mtta_seconds=None,
                    mttr_seconds=None,
                    ack_sla_seconds=SLA[level][0],
                    resolve_sla_seconds=SLA[level][1],
                    ack_breaches=0,
                    resolve_breaches=0,
                )
                for level in LEVELS
            ],
        ),
        false_positives=[],
        sensors=[],
        playbooks=Playbooks(runs=0, by_status={}, by_playbook=[], containments=0),
        agencies=[],
    )
