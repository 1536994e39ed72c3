from __future__ import annotations

from pathlib import Path

from detections.loader import load_rule_text, load_rules, shipped_rules_dir

GOOD = """title: Good
id: 6f9bd3c6-1111-4000-8000-000000000001
logsource: {product: linux, service: sshd}
detection: {sel: {event.outcome: failure}, condition: sel}
"""


def test_shipped_rules_dir_holds_the_rules() -> None:
    folder = shipped_rules_dir()
    assert (folder / "linux" / "ssh_failed_login.yml").is_file()


def test_every_broken_rule_is_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "multi.yml").write_text(
        GOOD.replace("0001", "0002")
        + "---\n"
        + "title: Bad modifier\nid: 6f9bd3c6-1111-4000-8000-000000000003\n"
        + "logsource: {product: linux}\n"
        + "detection: {sel: {user.name|nonsense: x}, condition: sel}\n"
    )
    (tmp_path / "syntax.yml").write_text("title: x\ndetection: [unclosed\n")
    (tmp_path / "dup.yml").write_text(GOOD)
    (tmp_path / "noid.yml").write_text(GOOD.replace("id: 6f9bd3c6-1111-4000-8000-000000000001\n", ""))
    ruleset = load_rules([tmp_path])
    assert set(ruleset.rules) == {
        "6f9bd3c6-1111-4000-8000-000000000001",
        "6f9bd3c6-1111-4000-8000-000000000002",
    }
    rendered = [error.render() for error in ruleset.errors]
    assert len(rendered) == 4, rendered
    assert any("multi.yml:6" in text and "nonsense" in text for text in rendered)
    assert any("syntax.yml:" in text and "invalid YAML" in text for text in rendered)
    assert any("dup.yml:1" in text and "duplicate rule id" in text for text in rendered)
    assert any("noid.yml:1" in text and "has no id" in text for text in rendered)


def test_samples_folders_are_not_loaded_as_rules(tmp_path: Path) -> None:
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "x.yml").write_text("not: a rule\n")
    (tmp_path / "good.yml").write_text(GOOD)
    ruleset = load_rules([tmp_path])
    assert len(ruleset) == 1 and not ruleset.errors


def test_missing_path_is_an_error() -> None:
    ruleset = load_rules(["/nonexistent/rules"])
    assert ruleset.errors and "no such rule file" in ruleset.errors[0].render()


def test_correlation_with_unknown_reference_is_dropped_with_an_error() -> None:
    ruleset = load_rule_text(
        GOOD
        + "---\ntitle: C\nid: 6f9bd3c6-1111-4000-8000-000000000009\n"
        + "correlation: {type: event_count, rules: [missing_rule], group-by: [source.ip],"
        + " timespan: 5m, condition: {gte: 3}}\n",
        path="c.yml",
    )
    assert len(ruleset) == 1
    assert "missing_rule" in ruleset.errors[0].render() and "c.yml:6" in ruleset.errors[0].render()


def test_referenced_base_rule_does_not_alert_unless_generate() -> None:
    text = (
        GOOD.replace("title: Good\n", "title: Good\nname: good\n")
        + "---\ntitle: C\nid: 6f9bd3c6-1111-4000-8000-000000000009\n"
        + "correlation: {type: event_count, rules: [good], group-by: [source.ip],"
        + " timespan: 5m, condition: {gte: 3}}\n"
    )
    ruleset = load_rule_text(text)
    assert not ruleset.errors
    base = ruleset.get("6f9bd3c6-1111-4000-8000-000000000001")
    assert not base.generates_alerts
    generating = load_rule_text(text.replace("timespan: 5m", "timespan: 5m, generate: true"))
    assert generating.get("6f9bd3c6-1111-4000-8000-000000000001").generates_alerts


def test_loaded_rule_metadata() -> None:
    loaded = next(
        iter(load_rule_text(GOOD.replace("logsource", "tags: [attack.t1110, cve.2021-1]\nlevel: high\nlogsource")))
    )
    assert loaded.level == "high"
    assert loaded.attack_tags == ["attack.t1110"]
    assert len(loaded.version) == 16
    assert loaded.fresh() is not loaded.rule
