"""Playbooks: response as code — YAML playbooks, a registry of typed actions, a runner with
approvals, dry-run and a full run record.

::

    format         the YAML format: pydantic models, every problem with file:line, the library
    templating     sandboxed jinja2 for ``with:`` values and ``if:`` conditions
    records        the run document (``playbook_runs``), redaction, audit and timeline entries
    service        what people do: start, cancel, rerun, approve/reject, list runs
    runner         the engine-role loop: new alerts → runs; drives runs step by step
    cli            ``soc playbook validate|list|run|runs``
    actions.base   the action contract: Action, ActionContext, ActionResult, the registry
    actions.*      alert, case, search, notify, contain (one module per family)
"""
