"""Item 1 — the playbook format: YAML through safe_yaml, pydantic models, every problem of a
file reported at once with its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.playbooks.fake_actions  # noqa: F401 - registers test.contain (a gated action)
from playbooks.format import check_file, check_text, load_library, load_playbook
from soc_core.errors import PlaybookError

BROKEN = """\
name: Bad Name
version: 1
colour: red
trigger: {type: alert, levels: [high], techniques: [T1110, 1110]}
inputs:
  minutes: {type: integer, default: ten, required: true}
  api_token: {}
steps:
  - id: ack
    action: alert.set_status
    with: {status: nope, extra: 1}
  - id: ack
    action: alert.launch
  - id: note
    action: alert.comment
    with: {text: "{{ steps.later.output }}"}
    if: "{{ steps.ack.output == "
    timeout: 3x
    on_error: ignore
    approval: {roles: [sensor], agency: nowhere, expires: soon}
  - id: later
    action: alert.set_level
  - id: cut
    action: test.contain
    with: {key: k, colour: red}
"""


def test_pb1_every_problem_of_a_file_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    checked = check_file(path)
    assert checked.playbook is None
    found = {(int(str(e.where).rsplit(":", 1)[1]), e.message.split(":", 1)[0]) for e in checked.errors}
    expected = {
        (1, "name"),
        (3, "colour"),
        (4, "trigger.techniques[1]"),
        (6, "inputs.minutes"),
        (7, "inputs.api_token"),
        (11, "steps[0].with.extra"),
        (11, "steps[0].with.status"),
        (12, "steps[1].id"),
        (13, "steps[1].action"),
        (16, "steps[2].with.text"),
        (17, "steps[2].if"),
        (18, "steps[2].timeout"),
        (19, "steps[2].on_error"),
        (20, "steps[2].approval.roles"),
        (20, "steps[2].approval.agency"),
        (20, "steps[2].approval.expires"),
        (21, "steps[3].with"),  # alert.set_level needs `level`
        (24, "steps[4].action"),  # a gated action without a gate
        (25, "steps[4].with.colour"),
    }
    assert expected <= found, sorted(found)
    assert all(str(e.where).startswith(f"{path}:") for e in checked.errors)
    rendered = {e.render() for e in checked.errors}
    assert any("steps.later, which is a later step" in text for text in rendered)
    assert any("no action 'alert.launch'" in text and "alert.set_status" in text for text in rendered)


def test_pb1_a_valid_playbook_loads_with_its_trigger_and_gates() -> None:
    loaded = load_playbook(
        """\
name: ssh-brute
description: contain SSH brute force
version: 3
trigger: {type: alert, techniques: [T1110], agencies: [police]}
inputs:
  minutes: {type: integer, default: 60}
dry_run: true
steps:
  - id: ack
    action: alert.set_status
    with: {status: acknowledged}
    timeout: 30s
    retries: 2
  - id: note
    action: alert.comment
    with: {text: "blocking for {{ inputs.minutes }} min after {{ steps.ack.output.result }}"}
    if: "alert['rule.level'] in ['high', 'critical']"
    on_error: continue
  - id: cut
    action: test.contain
    with: {key: x}
    approval: {roles: [analyst, manager], agency: province, expires: 4h}
""",
        source="ok.yml",
    )
    assert loaded.version == 3 and loaded.dry_run
    assert loaded.steps[0].timeout == 30 and loaded.steps[0].retries == 2
    gate = loaded.steps[2].approval
    assert gate is not None and gate.expires == 4 * 3600 and gate.agency == "province"
    assert loaded.resolve_inputs({}) == {"minutes": 60}
    with pytest.raises(PlaybookError, match="expected a value of type integer"):
        loaded.resolve_inputs({"minutes": "ten"})
    with pytest.raises(PlaybookError, match="no input 'hours'"):
        loaded.resolve_inputs({"hours": 1})
    police = {"tenant": "police", "rule.tags": ["attack.credential_access", "attack.t1110.001"]}
    assert loaded.trigger.matches(police)
    assert not loaded.trigger.matches({**police, "tenant": "health"})
    assert not loaded.trigger.matches({**police, "rule.tags": ["attack.t1078"]})


def test_pb1_manual_and_alert_triggers_are_told_apart() -> None:
    errors = check_text(
        "name: x1\ntrigger: {type: alert}\nsteps: [{id: a, action: alert.comment, with: {text: hi}}]\n", source="t.yml"
    ).errors
    assert [e.where for e in errors] == ["t.yml:2"] and "needs at least one of" in errors[0].message
    errors = check_text(
        "name: x1\ntrigger: {levels: [high]}\nsteps: [{id: a, action: alert.comment, with: {text: hi}}]\n",
        source="t.yml",
    ).errors
    assert "belong to `type: alert`" in errors[0].message
    errors = check_text(
        "name: x1\ntrigger: {type: alert, levels: [high]}\ninputs:\n  who: {required: true}\n"
        "steps: [{id: a, action: alert.comment, with: {text: hi}}]\n",
        source="t.yml",
    ).errors
    assert [e.where for e in errors] == ["t.yml:4"] and "add a default" in errors[0].message


def test_pb1_yaml_refusals_keep_their_line_and_files_are_checked_together(tmp_path: Path) -> None:
    bomb = check_text("name: x1\nsteps: &a [1]\nmore: *a\n", source="bomb.yml").errors
    assert len(bomb) == 1 and bomb[0].where == "bomb.yml:2" and "anchors and aliases" in bomb[0].message
    assert check_text("- just\n- a list\n", source="l.yml").errors[0].where == "l.yml:1"
    good = "name: {name}\nsteps: [{{id: a, action: alert.comment, with: {{text: hi}}}}]\n"
    (tmp_path / "a.yml").write_text(good.format(name="one"))
    (tmp_path / "b.yaml").write_text(good.format(name="one"))
    (tmp_path / "c.yml").write_text("name: two\nsteps: []\n")
    library = load_library([tmp_path])
    assert list(library.playbooks) == ["one"]
    assert sorted(str(e.where) for e in library.errors) == [f"{tmp_path}/b.yaml:1", f"{tmp_path}/c.yml:2"]
