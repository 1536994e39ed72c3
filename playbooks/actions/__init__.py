"""Playbook actions, registered by name in :data:`playbooks.actions.base.ACTIONS`."""
