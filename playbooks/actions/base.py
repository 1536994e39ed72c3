"""The contract between the playbook runner and its actions.

An action is a class with a unique ``name``, a pydantic model of its parameters (``Params``,
``extra="forbid"``) and a ``run`` method. The runner validates a step's rendered ``with:``
parameters against ``Params`` before calling ``run``, so an action only ever sees typed values.

``idempotent`` tells the runner whether a step that was running when the process died may run
again on restart (reading, enriching, setting a status) or must be marked ``interrupted`` and left
to a person (sending a message, blocking an address). ``gated`` actions (containment) always need
an approval and default to dry-run, whatever the playbook says.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from soc_core.config import Settings
from soc_core.errors import PlaybookError
from soc_core.store.base import Store


class ActionError(PlaybookError):
    """A step's action failed; the message says what and the runner records it on the step."""


@dataclass(frozen=True)
class ActionContext:
    """What a step runs with. ``tenant`` is the agency the run acts for (the alert's or case's);
    actions never touch another agency's data. ``secrets`` come from configuration and are
    redacted from every run record."""

    run_id: str
    step_id: str
    tenant: str
    dry_run: bool
    settings: Settings
    store: Store
    language: str = "vi"
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionResult:
    """A step's output (JSON-serialisable, shown in the run record and to later steps as
    ``steps.<id>.output``) and whether it changed anything outside the run (never in dry-run)."""

    output: Mapping[str, Any]
    changed: bool = False


P = TypeVar("P", bound=BaseModel)


class Action(abc.ABC, Generic[P]):
    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    idempotent: ClassVar[bool] = False
    gated: ClassVar[bool] = False

    @abc.abstractmethod
    def run(self, ctx: ActionContext, params: P) -> ActionResult: ...


ACTIONS: dict[str, type[Action[Any]]] = {}

A = TypeVar("A", bound=type[Action[Any]])


def register(action: A) -> A:
    """Class decorator: add an action to the registry under its ``name`` (once)."""
    name = action.name
    if name in ACTIONS and ACTIONS[name] is not action:
        raise ValueError(f"playbook action {name!r} is registered twice")
    ACTIONS[name] = action
    return action
