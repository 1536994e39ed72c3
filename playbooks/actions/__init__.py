"""Playbook actions, registered by name in :data:`playbooks.actions.base.ACTIONS`.

One module per family (``alert``, ``case``, ``search``, ``notify``, ``contain``, …); each
registers its actions when imported. :func:`load_all` imports every module of this package, so
a new family is registered by adding its module, with no list to keep in step.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> list[str]:
    """Import every action module (registering its actions); their names."""
    names = [info.name for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}.") if not info.ispkg]
    for name in names:
        importlib.import_module(name)
    return names


__all__ = ["load_all"]
