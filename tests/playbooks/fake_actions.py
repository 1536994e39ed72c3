"""Actions the runner tests drive: they count their calls, fail on demand, block until
released, so a test can see exactly how often and when a step's action ran."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from playbooks.actions.base import Action, ActionContext, ActionError, ActionResult, register

CALLS: Counter[str] = Counter()
GATES: dict[str, threading.Event] = {}
_LOCK = threading.Lock()


def gate(key: str) -> threading.Event:
    with _LOCK:
        return GATES.setdefault(key, threading.Event())


def _count(key: str) -> int:
    with _LOCK:
        CALLS[key] += 1
        return CALLS[key]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str


@register
class Echo(Action["Echo.Params"]):
    """Idempotent: returns what it was given."""

    name: ClassVar[str] = "test.echo"
    idempotent: ClassVar[bool] = True

    class Params(_Params):
        value: Any = None

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        _count(params.key)
        return ActionResult({"value": params.value, "dry_run": ctx.dry_run})


@register
class Send(Action["Send.Params"]):
    """Not idempotent (a message sent): must never run twice for one step."""

    name: ClassVar[str] = "test.send"

    class Params(_Params):
        text: str = ""

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        _count(params.key)
        return ActionResult({"sent": params.text}, changed=not ctx.dry_run)


@register
class Flaky(Action["Flaky.Params"]):
    """Fails its first ``fail_times`` calls (per key)."""

    name: ClassVar[str] = "test.flaky"
    idempotent: ClassVar[bool] = True

    class Params(_Params):
        fail_times: int = 0

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        calls = _count(params.key)
        if calls <= params.fail_times:
            raise ActionError(f"planned failure {calls}")
        return ActionResult({"calls": calls})


@register
class Block(Action["Block.Params"]):
    """Waits until the test releases ``gate(key)`` (or ``seconds`` pass)."""

    name: ClassVar[str] = "test.block"

    class Params(_Params):
        seconds: float = 120.0

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        _count(params.key)
        released = gate(params.key).wait(params.seconds)
        return ActionResult({"released": released})


@register
class Contain(Action["Contain.Params"]):
    """Gated like containment: always behind an approval, dry-run unless started live."""

    name: ClassVar[str] = "test.contain"
    gated: ClassVar[bool] = True

    class Params(_Params):
        pass

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        _count(params.key)
        return ActionResult({"dry_run": ctx.dry_run}, changed=not ctx.dry_run)


class _MarkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str  # a line is appended per call: counts calls across processes
    hold: str  # while this file exists, the action waits (a process can be killed meanwhile)


def _mark(params: _MarkParams) -> ActionResult:
    with open(params.path, "a", encoding="utf-8") as handle:
        handle.write("called\n")
    deadline = time.monotonic() + 120
    while os.path.exists(params.hold) and time.monotonic() < deadline:
        time.sleep(0.02)
    return ActionResult({"marked": params.path}, changed=True)


@register
class Mark(Action[_MarkParams]):
    """Not idempotent; marks a file per call."""

    name: ClassVar[str] = "test.mark"
    Params: ClassVar[type[BaseModel]] = _MarkParams

    def run(self, ctx: ActionContext, params: _MarkParams) -> ActionResult:
        return _mark(params)


@register
class MarkIdempotent(Action[_MarkParams]):
    name: ClassVar[str] = "test.mark_idempotent"
    idempotent: ClassVar[bool] = True
    Params: ClassVar[type[BaseModel]] = _MarkParams

    def run(self, ctx: ActionContext, params: _MarkParams) -> ActionResult:
        return _mark(params)
