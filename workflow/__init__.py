"""The workflow layer: the records people and playbooks change, and the trail of every change.

Below every package that acts on alerts and cases (``playbooks``, ``reports``, ``scheduling``,
``soc_api``; DESIGN §2), so a playbook step, a scheduled job and a person's request go through the
same functions: the status workflow, the scoping and the audit record hold for all of them.
Imports only ``soc_core``. ::

    workflow.principals   who acts: Principal, Actor, the roles' grants, the CLI's actor name
    workflow.audit        the append-only audit trail (HMAC chain, anchors, verify)
    workflow.alerts       alert triage: status workflow, assignment, tags, level, comments
    workflow.cases        cases: alerts, observables, tasks, hunts, timeline, closure
"""
