"""Managers' reports: the weekly security report as data (``model``), counted by the store."""
