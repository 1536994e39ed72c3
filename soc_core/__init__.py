"""Canh Gác core: configuration, the ECS event model, errors, stores and auth primitives.

Nothing in this package imports ``sensors``, ``detections``, ``playbooks`` or ``soc_api``.
"""

__version__ = "0.1.0"
