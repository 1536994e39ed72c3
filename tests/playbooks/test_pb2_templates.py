"""Item 2 — templates: a jinja2 ImmutableSandboxedEnvironment with StrictUndefined. Values
from events are data, never evaluated; a playbook template reaching for internals fails the
step safely with a clear error; ``if:`` is evaluated in the same sandbox."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from playbooks.records import get_run
from playbooks.runner import Runner
from playbooks.service import start_run
from playbooks.templating import TemplateProblem, evaluate, render
from soc_core.store import Store
from tests.playbooks.conftest import key, make_alert, playbook

HOSTILE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


def test_pb2_event_values_are_rendered_as_text_never_evaluated() -> None:
    context = {"alert": {"entities": {"user.name": [HOSTILE, "{% for x in range(10**9) %}x{% endfor %}"]}}}
    assert render("who: {{ alert.entities['user.name'][0] }}", context, what="w") == f"who: {HOSTILE}"
    assert render("{{ alert.entities['user.name'] }}", context, what="w") == context["alert"]["entities"]["user.name"]
    assert render({"a": ["{{ alert.entities['user.name'][1] | length }}"]}, context, what="w") == {"a": [40]}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "refused by the template sandbox"),
        ("{{ alert.entities.__class__ }}", "refused by the template sandbox"),
        ("{{ alert.entities.update({'x': 1}) }}", "refused by the template sandbox"),
        ("{{ alert.missing }}", "has no attribute 'missing'"),
        ("{{ range(3) }}", "'range' is undefined"),
        ("{{ alert.entities.keys }}", "not data"),
    ],
)
def test_pb2_templates_reaching_for_internals_fail_safely(template: str, message: str) -> None:
    with pytest.raises(TemplateProblem, match=message):
        render(template, {"alert": {"entities": {}}}, what="step x with.text")


def test_pb2_conditions_run_in_the_same_sandbox() -> None:
    assert evaluate("alert['rule.level'] == 'high'", {"alert": {"rule.level": "high"}}, what="if")
    assert not evaluate("{{ alert.count > 5 }}", {"alert": {"count": 2}}, what="if")
    with pytest.raises(TemplateProblem, match="sandbox"):
        evaluate("alert.__class__", {"alert": {}}, what="if")


def test_pb2_hostile_event_fields_through_a_real_run(pstore: Store, make_runner: Callable[..., Runner]) -> None:
    """End to end on each store: the alert's user name holds template syntax; the step gets it
    as text; a playbook that reaches for internals fails its step with the sandbox's reason."""
    k = key()
    book = playbook(
        f"""\
name: hostile
steps:
  - id: echo
    action: test.echo
    with: {{key: {k}, value: "user {{{{ alert.entities['user.name'][0] }}}}"}}
  - id: probe
    action: test.echo
    with: {{key: {k}, value: "{{{{ alert.__class__.__mro__ }}}}"}}
    on_error: continue
  - id: guarded
    action: test.echo
    with: {{key: {k}}}
    if: "alert.get.__globals__"
"""
    )
    alert_id = make_alert(pstore, entities={"user.name": [HOSTILE]})
    run = start_run(pstore, playbook=book, alert_id=alert_id, scope=None, actor="tester")
    assert make_runner(book).execute(run.id) == "failed"
    steps = {s["id"]: s for s in get_run(pstore, run.id).body["steps"]}
    assert steps["echo"]["status"] == "succeeded"
    assert steps["echo"]["output"]["value"] == f"user {HOSTILE}"
    assert steps["probe"]["status"] == "failed" and "refused by the template sandbox" in steps["probe"]["error"]
    assert steps["guarded"]["status"] == "failed" and "__globals__" in steps["guarded"]["error"]
