"""The executive summary: a few short paragraphs of prose, written from the report's numbers in the
reader's language.

Each sentence is chosen by what the numbers say — a rise, a fall, nothing the week before, no
data at all — so a quiet week reads as quiet and a week without an acknowledged alert never
claims an MTTA of zero. Pure: a ``WeeklyReport`` and a ``Language`` in, plain text out (the
template escapes it like any other value, rule titles included).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from reports.i18n import Language
from reports.model import Agency, Change, WeeklyReport

# A capture loss under this is normal sensor noise and not worth a manager's sentence.
NOTABLE_CAPTURE_LOSS = 0.01
# Silent sensors named in a sentence; the rest are counted.
NAMED_SENSORS = 3


def executive_summary(report: WeeklyReport, language: Language) -> list[str]:
    """Paragraphs: what happened, how the SOC answered, (the province) which agency needs
    attention, and the state of the sensors and the automation."""
    paragraphs = [
        _activity(report, language),
        _response(report, language),
        _agencies(report.agencies, language),
        _operations(report, language),
    ]
    return [" ".join(sentences) for sentences in paragraphs if sentences]


def trend(change: Change, language: Language, *, kind: str = "count") -> str:
    """The clause after a number that says how it moved since the week before ("" if unknown).
    ``kind`` is ``count`` (rose/fell), ``duration`` (slower/faster) or ``percent``."""
    value, previous = change.value, change.previous
    if value is None or previous is None:
        return ""
    shown = _formatter(kind, language)(previous)
    if value == previous:
        return language.t("trend.same")
    if kind == "duration":
        return language.t("trend.slower" if value > previous else "trend.faster", previous=shown)
    if previous == 0:
        return language.t("trend.from_zero")
    if value == 0:
        return language.t("trend.to_zero", previous=shown)
    if kind == "percent":
        points = language.number(abs(value - previous) * 100, 1)
        return language.t("trend.up_points" if value > previous else "trend.down_points", n=points, previous=shown)
    pct = language.percent(abs(change.change)) if change.change is not None else ""
    return language.t("trend.up" if value > previous else "trend.down", pct=pct, previous=shown)


def _formatter(kind: str, language: Language) -> Callable[[float], str]:
    if kind == "duration":
        return language.duration
    if kind == "percent":
        return language.percent
    return language.number


def _activity(report: WeeklyReport, language: Language) -> list[str]:
    start = date.fromisoformat(report.start[:10])
    last = date.fromisoformat(report.alerts.by_day[-1].date) if report.alerts.by_day else start
    period = language.t("summary.period", week=report.week, start=language.day(start), end=language.day(last))
    total = report.alerts.total
    volume = trend(report.headline.alerts, language)
    if total == 0:
        return [language.t("summary.no_alerts", period=period, scope=report.scope.name, trend=volume)]
    sentences = [language.plural("summary.alerts", total, period=period, scope=report.scope.name, trend=volume)]
    critical = report.alerts.by_level.get("critical", 0) + report.alerts.by_level.get("high", 0)
    if critical:
        sentences.append(
            language.plural("summary.critical", critical, trend=trend(report.headline.critical_alerts, language))
        )
    else:
        sentences.append(language.t("summary.critical.none"))
    busiest = max(report.alerts.by_day, key=lambda day: day.total, default=None)
    if busiest is not None and busiest.total:
        day = date.fromisoformat(busiest.date)
        sentences.append(
            language.t(
                "summary.busiest_day",
                weekday=language.weekday(day),
                date=language.day(day),
                n=language.number(busiest.total),
            )
        )
    if report.top_rules:
        rule = report.top_rules[0]
        sentences.append(language.t("summary.top_rule", title=rule.title, n=language.number(rule.count)))
    if report.attack.techniques:
        technique = report.attack.techniques[0]
        sentences.append(
            language.t("summary.top_technique", technique=technique.id, n=language.number(technique.count))
        )
    return sentences


def _response(report: WeeklyReport, language: Language) -> list[str]:
    response, headline = report.response, report.headline
    sentences: list[str] = []
    if response.mtta_seconds is not None:
        mtta = language.t(
            "summary.mtta",
            mtta=language.duration(response.mtta_seconds),
            trend=trend(headline.mtta_seconds, language, kind="duration"),
        )
        if response.mttr_seconds is not None:
            mttr = language.t(
                "summary.mttr",
                mttr=language.duration(response.mttr_seconds),
                trend=trend(headline.mttr_seconds, language, kind="duration"),
            )
        else:
            mttr = language.t("summary.mttr.none")
        sentences.append(language.t("summary.response", mtta=mtta, mttr=mttr))
    elif report.alerts.total:
        sentences.append(language.t("summary.response.none"))
    breaches = response.sla_breaches
    if breaches:
        ack = sum(level.ack_breaches for level in response.by_level)
        resolve = sum(level.resolve_breaches for level in response.by_level)
        worst = max(response.by_level, key=lambda level: level.ack_breaches + level.resolve_breaches)
        sentences.append(
            language.plural(
                "summary.sla",
                breaches,
                ack=language.number(ack),
                resolve=language.number(resolve),
                level=language.word("level", worst.level).lower(),
                trend=trend(headline.sla_breaches, language),
            )
        )
    elif report.alerts.total or headline.sla_breaches.previous:
        sentences.append(language.t("summary.sla.none", trend=trend(headline.sla_breaches, language)))
    cases = report.cases
    if cases.opened or cases.closed or cases.open_at_end:
        sentences.append(
            language.t(
                "summary.cases",
                opened=language.number(cases.opened),
                closed=language.number(cases.closed),
                open=language.number(cases.open_at_end),
            )
        )
    else:
        sentences.append(language.t("summary.cases.none"))
    return sentences


def attention_rank(agency: Agency) -> tuple[int, int, int, int]:
    """Which agency needs a manager's attention first: SLA breaches, then high and critical
    alerts, then silent sensors, then volume."""
    return (agency.sla_breaches, agency.critical_alerts, agency.silent_sensors, agency.alerts)


def _agencies(agencies: list[Agency], language: Language) -> list[str]:
    if not agencies:
        return []
    worst = max(agencies, key=attention_rank)
    if not any(attention_rank(worst)[:3]):
        return [language.t("summary.agencies.clean")]
    return [
        language.t(
            "summary.agencies.worst",
            name=worst.name,
            critical=language.number(worst.critical_alerts),
            breaches=language.number(worst.sla_breaches),
            silent=language.number(worst.silent_sensors),
        )
    ]


def _operations(report: WeeklyReport, language: Language) -> list[str]:
    sentences: list[str] = []
    sensors = report.sensors
    silent = [sensor for sensor in sensors if sensor.silent]
    if not sensors:
        sentences.append(language.t("summary.sensors.none"))
    elif silent:
        names = ", ".join(sensor.name for sensor in silent[:NAMED_SENSORS])
        if len(silent) > NAMED_SENSORS:
            names = language.t("summary.names_more", names=names, n=language.number(len(silent) - NAMED_SENSORS))
        sentences.append(language.plural("summary.silent", len(silent), names=names))
    else:
        sentences.append(language.t("summary.sensors.ok"))
    uptime = report.headline.sensor_uptime
    if uptime.value is not None:
        sentences.append(
            language.t(
                "summary.uptime", uptime=language.percent(uptime.value), trend=trend(uptime, language, kind="percent")
            )
        )
    lossy = max(
        (sensor for sensor in sensors if sensor.capture_loss is not None),
        key=lambda s: s.capture_loss or 0.0,
        default=None,
    )
    if lossy is not None and lossy.capture_loss is not None and lossy.capture_loss >= NOTABLE_CAPTURE_LOSS:
        sentences.append(language.t("summary.capture_loss", loss=language.percent(lossy.capture_loss), name=lossy.name))
    playbooks = report.playbooks
    if playbooks.runs:
        sentences.append(
            language.t(
                "summary.playbooks",
                runs=language.number(playbooks.runs),
                containments=language.number(playbooks.containments),
            )
        )
    else:
        sentences.append(language.t("summary.playbooks.none"))
    noisy = next((rule for rule in report.false_positives if rule.false_positives), None)
    if noisy is not None:
        sentences.append(
            language.t(
                "summary.false_positive",
                title=noisy.title,
                fp=language.number(noisy.false_positives),
                closed=language.number(noisy.closed),
                rate=language.percent(noisy.rate),
            )
        )
    return sentences


__all__ = ["attention_rank", "executive_summary", "trend"]
