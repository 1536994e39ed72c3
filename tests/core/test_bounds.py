"""H11 (RELIABILITY.md): the bounds on the datasets and days a sensor's events make indices for."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sigma.pipelines.common import windows_logsource_mapping

from sensors.config import ElasticsearchOutput
from sensors.netsensor import HEALTH_DATASET
from sensors.packets import analyzer
from sensors.parsers import PARSERS
from sensors.parsers.windows import CHANNEL_DATASETS, dataset_for
from soc_core.bounds import DATASET_TAG, ORIGINAL_DATASET, ORIGINAL_TIMESTAMP, TIMESTAMP_TAG, EventBounds
from soc_core.config import load_settings
from soc_core.datasets import KNOWN_DATASETS, UNKNOWN_DATASET, allowed_datasets
from soc_core.errors import ConfigError, InvalidInput
from soc_core.events import Event, format_timestamp, validate_event

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def event(dataset: object = "system.auth", stamp: object = "2026-12-06T11:00:00.000Z") -> Event:
    return {
        "@timestamp": stamp,
        "event.id": "e1",
        "event.kind": "event",
        "event.dataset": dataset,
        "organization.id": "police",
        "tags": ["ssh"],
    }


def test_h11_known_datasets_cover_every_parser_channel_and_network_record() -> None:
    emitted = {spec.dataset for spec in PARSERS.values()}
    emitted |= {"nginx.error", "apache.error", HEALTH_DATASET}  # web error lines, network sensor health
    emitted |= {dataset_for(channel) for channel in CHANNEL_DATASETS}
    for channels in windows_logsource_mapping.values():
        emitted |= {dataset_for(channel) for channel in ([channels] if isinstance(channels, str) else channels)}
    # the network sensor's records name their dataset where they are made: Record("network.dns", …)
    records = set(re.findall(r'Record\("([a-z0-9_.]+)"', Path(analyzer.__file__).read_text()))
    assert records == {f"network.{kind}" for kind in ("flow", "dns", "http", "tls", "arp", "packet")}
    emitted |= records
    assert emitted - KNOWN_DATASETS == set()
    assert UNKNOWN_DATASET in KNOWN_DATASETS


def test_h11_a_dataset_outside_the_list_is_stored_as_unknown_with_the_original_kept() -> None:
    bounds = EventBounds()
    window = bounds.window(NOW)
    given = event("myapp.day_4711")
    bounded = bounds.apply(given, window)
    assert bounded["event.dataset"] == UNKNOWN_DATASET
    assert bounded[ORIGINAL_DATASET] == "myapp.day_4711"
    assert bounded["tags"] == ["ssh", DATASET_TAG]
    assert given["event.dataset"] == "myapp.day_4711" and given["tags"] == ["ssh"]  # the caller's event untouched
    assert validate_event(bounded) == []
    # a value that could never be an index name is not refused either
    odd = bounds.apply(event("Bad Name/../x"), window)
    assert odd["event.dataset"] == UNKNOWN_DATASET and odd[ORIGINAL_DATASET] == "Bad Name/../x"
    assert validate_event(odd) == []
    for shape in (["system.auth"], {"name": "x"}, 7):  # JSON that is no dataset at all
        bounded = bounds.apply(event(shape), window)
        assert bounded["event.dataset"] == UNKNOWN_DATASET and bounded[ORIGINAL_DATASET] == str(shape)


def test_h11_a_windows_channel_outside_the_list_keeps_its_module() -> None:
    bounded = EventBounds().apply(event("windows.kernel_general"), EventBounds().window(NOW))
    assert bounded["event.dataset"] == "windows.unknown"  # Windows rules still route on it
    assert bounded[ORIGINAL_DATASET] == "windows.kernel_general"


def test_h11_extra_and_per_sensor_datasets() -> None:
    deployment = EventBounds(allowed_datasets(["myapp.audit"]))
    window = deployment.window(NOW)
    assert deployment.apply(event("myapp.audit"), window)["event.dataset"] == "myapp.audit"
    sensor = deployment.for_sensor(["system.auth", "never.configured"])  # narrowed, never widened
    assert sensor.datasets == {"system.auth", UNKNOWN_DATASET}
    assert sensor.apply(event("myapp.audit"), window)["event.dataset"] == UNKNOWN_DATASET
    assert sensor.apply(event("windows.security"), window)["event.dataset"] == UNKNOWN_DATASET
    assert deployment.for_sensor(None) is deployment
    with pytest.raises(InvalidInput, match="bad dataset name"):
        allowed_datasets(["Not-A-Dataset"])


@pytest.mark.parametrize(
    ("stamp", "kept"),
    [
        ("2026-12-06T11:00:00.000Z", True),
        ("2025-12-06T12:00:00.000Z", True),  # exactly 365 days old
        ("2025-12-06T11:59:59.999Z", False),
        ("2026-12-07T12:00:00.000Z", True),  # exactly 24 hours ahead
        ("2026-12-07T12:00:00.001Z", False),
        ("1970-01-01T00:00:00.000Z", False),
        ("9999-12-31T23:59:59.999Z", False),
        ("2026-12-07T18:59:59+07:00", True),  # other forms are parsed: 11:59:59Z the next day
        ("2026-12-07T19:00:01+07:00", False),
        ("2019-02-05T10:00:00", False),
    ],
)
def test_h11_timestamps_outside_the_window_become_the_ingest_time(stamp: str, kept: bool) -> None:
    bounded = EventBounds().apply(event(stamp=stamp), EventBounds().window(NOW))
    if kept:
        assert bounded["@timestamp"] == stamp and ORIGINAL_TIMESTAMP not in bounded
    else:
        assert bounded["@timestamp"] == format_timestamp(NOW)
        assert bounded[ORIGINAL_TIMESTAMP] == stamp
        assert TIMESTAMP_TAG in bounded["tags"]


def test_h11_unreadable_values_are_left_for_validation_and_bounding_twice_changes_nothing() -> None:
    bounds = EventBounds(max_age=timedelta(days=1), max_future_skew=timedelta(0))
    window = bounds.window(NOW)
    for unreadable in (event(stamp="yesterday"), event(stamp=12345), event(dataset=None), event(dataset="")):
        assert bounds.apply(unreadable, window) is unreadable
        assert validate_event(unreadable)  # refused as before: a required field is missing or bad
    once = bounds.apply(event("a.b", "2001-01-01T00:00:00.000Z"), window)
    later = bounds.window(NOW + timedelta(minutes=5))
    assert bounds.apply(once, later) is once


def test_h11_configuration_keys(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.store.extra_datasets == []
    assert (settings.store.max_event_age_days, settings.store.max_future_skew_hours) == (365, 24)
    path = tmp_path / "soc.yml"
    path.write_text("store:\n  extra_datasets: [myapp.audit]\n  max_event_age_days: 30\n  max_future_skew_hours: 2\n")
    bounds = EventBounds.from_settings(load_settings(path).store)
    assert "myapp.audit" in bounds.datasets and bounds.datasets >= KNOWN_DATASETS
    assert (bounds.max_age, bounds.max_future_skew) == (timedelta(days=30), timedelta(hours=2))
    path.write_text("store:\n  extra_datasets: [My-App]\n")
    with pytest.raises(ConfigError, match=r"store\.extra_datasets"):
        load_settings(path)
    output = ElasticsearchOutput(url="http://127.0.0.1:9200", api_key_file=Path("k"), extra_datasets=["myapp.audit"])
    assert "myapp.audit" in output.bounds.datasets and output.bounds.max_age == timedelta(days=365)
