"""Every shipped rule has samples, and they behave: match.jsonl all match, nomatch.jsonl none."""

from __future__ import annotations

import pytest

from detections.loader import LoadedRule, load_rules, shipped_rules_dir
from detections.samples import check_rule_samples, sample_dir

SHIPPED = load_rules([shipped_rules_dir()])


def test_shipped_rules_load_without_errors() -> None:
    assert not SHIPPED.errors, [error.render() for error in SHIPPED.errors]
    assert len(SHIPPED) >= 2


@pytest.mark.parametrize("loaded", list(SHIPPED), ids=lambda loaded: loaded.path.stem)
def test_shipped_rule_samples(loaded: LoadedRule) -> None:
    folder = sample_dir(loaded)
    assert (folder / "match.jsonl").is_file(), f"missing {folder}/match.jsonl"
    assert (folder / "nomatch.jsonl").is_file(), f"missing {folder}/nomatch.jsonl"
    result = check_rule_samples(SHIPPED, loaded)
    assert result.passed, result.failures


def test_a_wrong_sample_is_reported(tmp_path: pytest.TempPathFactory) -> None:
    loaded = SHIPPED.get("a2522b5f-691a-4580-ae28-661602dfc509")
    copy = LoadedRule(loaded.rule, tmp_path / "rule.yml", 1, loaded.text)  # type: ignore[operator]
    folder = sample_dir(copy)
    folder.mkdir(parents=True)
    (folder / "match.jsonl").write_text('{"event.dataset": "system.auth", "organization.id": "x"}\n')
    result = check_rule_samples(SHIPPED, copy)
    assert not result.passed
    assert "match.jsonl event 1" in result.failures[0]
