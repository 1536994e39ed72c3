"""Playbooks: response as code — YAML playbooks, a registry of typed actions, a runner with
approvals, dry-run and a full run record.

::

    actions.base   the action contract: Action, ActionContext, ActionResult, the registry
"""
