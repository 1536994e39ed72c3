"""Issue 17 item 1: the compiled-rule cache (detections/rulecache.py), on SigmaHQ rules and
events the real Windows parser builds from EVTX-ATTACK-SAMPLES files."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import multiprocessing
import shutil
from pathlib import Path

import pytest

from detections.evaluation import CompiledRuleSet, Evaluator, compile_ruleset
from detections.loader import RuleSet, load_rules
from detections.rulecache import KEY_FILE, RuleCache
from sensors.pipeline import evtx_events
from sensors.sources.evtx import EvtxFailure
from soc_api.runtime import build_engine
from soc_core.config import Settings
from soc_core.events import Event
from soc_core.store.sqlite import SqliteStore
from tests.shared_data import shared_data

SIGMAHQ = "sigmahq/rules/windows"
# rules that fire on the EVTX files below, and a slice of process_creation for breadth
FIRING = (
    "file/file_event/file_event_win_lsass_default_dump_file_names.yml",
    "process_access/proc_access_win_lsass_memdump.yml",
    "builtin/application/mssqlserver/win_mssql_failed_logon.yml",
    "process_creation/proc_creation_win_susp_lsass_dmp_cli_keywords.yml",
    "process_creation/proc_creation_win_susp_proc_wrong_parent.yml",
)
EVTX = (
    "evtx-attack-samples/Credential Access/ppl_bypass_ppldump_knowdll_hijack_sysmon_security.evtx",
    "evtx-attack-samples/Credential Access/sysmon_10_11_lsass_memdump.evtx",
    "evtx-attack-samples/Credential Access/MSSQL_multiple_failed_logon_EventID_18456.evtx",
)


class _Identity:
    tenant = "t1"
    sensor_id = "c17"


def _events() -> list[Event]:
    events: list[Event] = []
    for name in EVTX:
        events.extend(e for e in evtx_events(_Identity(), shared_data(name)) if not isinstance(e, EvtxFailure))
    return events


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The firing rules plus 60 process_creation rules (with regexes, lists, nulls …)."""
    source = shared_data(SIGMAHQ)
    target = tmp_path_factory.mktemp("rules")
    breadth = sorted((source / "process_creation").glob("*.yml"))[:60]
    for path in [source / name for name in FIRING] + breadth:
        shutil.copy(path, target / path.name)
    return target


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return _events()


def _matches(compiled: CompiledRuleSet, events: list[Event]) -> list[tuple[str, str]]:
    evaluator = Evaluator(compiled)
    return sorted(
        (str(event["event.id"]), rule.meta.id) for event in events for rule in evaluator.matching_rules(event)
    )


def _entries(cache: RuleCache) -> list[Path]:
    return sorted(p for p in cache.directory.rglob("*.json"))


@pytest.fixture(scope="module")
def reference(rules_dir: Path, events: list[Event]) -> tuple[RuleSet, list[tuple[str, str]]]:
    """Loaded and compiled without the cache: what the cache must give back."""
    ruleset = load_rules([rules_dir])
    found = _matches(compile_ruleset(ruleset, only_enabled=False), events)
    assert {rule for _, rule in found} >= {
        "a5a2d357-1ab8-4675-a967-ef9990a59391",
        "218d2855-2bba-4f61-9c85-81d0ea63ac71",
    }
    return ruleset, found


def test_c17_1_cold_then_warm_gives_the_same_rules_and_matches(
    tmp_path: Path, rules_dir: Path, events: list[Event], reference: tuple[RuleSet, list[tuple[str, str]]]
) -> None:
    ruleset, expected = reference
    files = len(list(rules_dir.glob("*.yml")))
    cold = RuleCache(tmp_path / "cache", workers=1)
    loaded = cold.load([rules_dir])
    assert (cold.stats.compiled, cold.stats.hits) == (files, 0)
    assert len(_entries(cold)) == files
    assert _matches(compile_ruleset(loaded, only_enabled=False), events) == expected

    warm = RuleCache(tmp_path / "cache", workers=1)
    again = warm.load([rules_dir])
    assert (warm.stats.compiled, warm.stats.hits, warm.stats.rebuilt) == (0, files, 0)
    assert sorted(again.rules) == sorted(ruleset.rules)
    for rule_id, loaded_rule in again.rules.items():
        original = ruleset.rules[rule_id]
        assert (loaded_rule.title, loaded_rule.level, loaded_rule.tags, loaded_rule.version) == (
            original.title,
            original.level,
            original.tags,
            original.version,
        )
        assert loaded_rule._rule is None, "a warm start parses no rule"
    assert _matches(compile_ruleset(again, only_enabled=False), events) == expected


def test_c17_1_pool_compile_equals_in_process(
    tmp_path: Path,
    rules_dir: Path,
    events: list[Event],
    reference: tuple[RuleSet, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cold compile over several processes (here 2, the pool threshold lowered) gives the same."""
    monkeypatch.setattr("detections.rulecache.POOL_MIN_FILES", 2)
    started: list[str] = []
    real = multiprocessing.get_context

    def spy(method: str | None = None) -> multiprocessing.context.BaseContext:
        started.append(str(method))
        return real(method)

    monkeypatch.setattr("detections.rulecache.multiprocessing.get_context", spy)
    cache = RuleCache(tmp_path / "cache", workers=2)
    loaded = cache.load([rules_dir])
    assert started, "the cold compile did not use a process pool"
    assert _matches(compile_ruleset(loaded, only_enabled=False), events) == reference[1]


def test_c17_1_changing_one_rule_recompiles_only_it(tmp_path: Path, rules_dir: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(rules_dir, rules)
    cache = RuleCache(tmp_path / "cache", workers=1)
    cache.load([rules])
    target = rules / "win_mssql_failed_logon.yml"
    target.write_text(
        target.read_text().replace("title: MSSQL Server Failed Logon", "title: MSSQL failed logon (edited)")
    )
    again = RuleCache(tmp_path / "cache", workers=1)
    loaded = again.load([rules])
    files = len(list(rules.glob("*.yml")))
    assert (again.stats.compiled, again.stats.hits) == (1, files - 1), "only the edited rule is compiled"
    assert loaded.get("218d2855-2bba-4f61-9c85-81d0ea63ac71").title == "MSSQL failed logon (edited)"


def _entry_of(cache: RuleCache, rules: Path, name: str) -> Path:
    path = rules / name
    return cache.entry_path(cache.key(path, path.read_text()))


@pytest.mark.parametrize("damage", ["truncated", "garbled", "forged_version", "other_key", "not_json_signed"])
def test_c17_1_a_corrupt_entry_is_rebuilt_never_trusted(
    tmp_path: Path, rules_dir: Path, events: list[Event], reference: tuple[RuleSet, list[tuple[str, str]]], damage: str
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in FIRING:
        shutil.copy(rules_dir / Path(name).name, rules)
    cache = RuleCache(tmp_path / "cache", workers=1)
    cache.load([rules])
    entry = _entry_of(cache, rules, "proc_access_win_lsass_memdump.yml")
    raw = entry.read_bytes()
    _, _, payload = raw.partition(b"\n")
    secret = (cache.directory / KEY_FILE).read_bytes()

    def signed(body: bytes, key: bytes = secret) -> bytes:
        return hmac.new(key, body, hashlib.sha256).hexdigest().encode() + b"\n" + body

    if damage == "truncated":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbled":
        entry.write_bytes(raw.replace(b"lsass", b"LSASX"))
    elif damage == "forged_version":
        # signed with the right key, but written for another code version (another key):
        # e.g. an entry copied over from an older install with a hand-edited rule
        forged = json.loads(payload)
        forged["key"] = "0" * 64
        forged["rules"][0]["trees"] = json.dumps([["f", "event.code", {"s": ["never"]}]])
        entry.write_bytes(signed(json.dumps(forged).encode()))
    elif damage == "other_key":
        forged = json.loads(payload)
        forged["rules"][0]["trees"] = json.dumps([["f", "event.code", {"s": ["never"]}]])
        entry.write_bytes(signed(json.dumps(forged).encode(), key=b"k" * 32))
    else:
        entry.write_bytes(
            signed(b'{"format": 1, "key": "' + entry.stem.encode() + b'", "rules": [{"id": 5}], "errors": []}')
        )
    again = RuleCache(tmp_path / "cache", workers=1)
    loaded = again.load([rules])
    assert (again.stats.rebuilt, again.stats.compiled) == (1, 1), f"{damage}: the entry was trusted"
    found = _matches(compile_ruleset(loaded, only_enabled=False), events)
    assert "a5a2d357-1ab8-4675-a967-ef9990a59391" in {rule for _, rule in found}
    assert found == [m for m in reference[1] if m[1] in loaded.rules]
    third = RuleCache(tmp_path / "cache", workers=1)
    third.load([rules])
    assert (third.stats.rebuilt, third.stats.compiled) == (0, 0), "the rebuilt entry was not written back"
    assert entry.read_bytes() == raw, "the rebuilt entry differs from the one first written"


def test_c17_1_an_unwritable_cache_dir_still_loads_with_a_warning(
    tmp_path: Path, rules_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory's parent should be")
    cache = RuleCache(blocker / "rule-cache", workers=1)
    with caplog.at_level(logging.WARNING, logger="detections.rulecache"):
        loaded = cache.load([rules_dir])
    assert len(loaded) == len(load_rules([rules_dir]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "compiled-rule cache" in warnings[0] and "rule-cache" in warnings[0], warnings


def _load_into(directory: str, rules: str, queue: multiprocessing.Queue[tuple[int, int]]) -> None:
    cache = RuleCache(Path(directory), workers=1)
    loaded = cache.load([Path(rules)])
    queue.put((len(loaded), len(loaded.errors)))


def test_c17_1_concurrent_writers_share_one_cache(tmp_path: Path, rules_dir: Path) -> None:
    """Two processes compiling into an empty cache at once: both get every rule, and every entry
    they leave is whole (a third load compiles nothing)."""
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[tuple[int, int]] = context.Queue()
    processes = [
        context.Process(target=_load_into, args=(str(tmp_path / "c"), str(rules_dir), queue)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=300) for _ in processes]  # bound generous: a loaded CI machine
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    expected = len(load_rules([rules_dir]))
    assert results == [(expected, 0), (expected, 0)]
    third = RuleCache(tmp_path / "c", workers=1)
    third.load([rules_dir])
    assert (third.stats.compiled, third.stats.rebuilt) == (0, 0), "an entry was left broken by the race"
    assert not list((tmp_path / "c").rglob(".tmp-*")), "temporary files left behind"


def test_c17_1_engine_start_uses_the_cache(tmp_path: Path, rules_dir: Path) -> None:
    """`soc up`'s engine (runtime.build_engine) loads through <data_dir>/rule-cache."""
    settings = Settings(data_dir=tmp_path / "data", detection={"rules_dirs": [rules_dir]})
    store = SqliteStore(tmp_path / "db.sqlite")
    store.setup()
    try:
        first = build_engine(settings, store)
        entries = list((tmp_path / "data" / "rule-cache").rglob("*.json"))
        assert len(entries) == len(list(rules_dir.glob("*.yml")))
        second = build_engine(settings, store)
        assert len(second.compiled.rules) == len(first.compiled.rules) > 0
        assert all(rule.loaded.summary is not None for rule in second.compiled.rules)
    finally:
        store.close()
