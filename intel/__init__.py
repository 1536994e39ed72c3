"""Threat intelligence: indicator lists (MISP, STIX 2.1, CSV) stored per agency or province-wide,
and the lookup that turns listed values seen in events into alerts and enrichment.

Imports only ``soc_core``, so ``detections`` (the engine's hook), ``playbooks`` (enrich and share
actions) and ``soc_api`` can all use it. ::

    intel.indicators   the indicator model and value normalisation (IP/CIDR, domain, URL, hash)
    intel.parsers      MISP feed/event, STIX 2.1 bundle and CSV files → indicators + skipped lines
    intel.lookup       the pure, fast lookup (dicts per scope, CIDR as sorted ranges)
    intel.lists        lists in the store: import (create/update), list, delete, load the lookup
    intel.cli          ``soc intel import|lists|delete``
"""
