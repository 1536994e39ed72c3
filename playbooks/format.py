"""The playbook file format: YAML read through :mod:`soc_core.safe_yaml`, validated into
pydantic models, every problem of a file reported at once with its ``file:line``.

::

    name: ssh-bruteforce            # [a-z][a-z0-9_-], unique among the loaded playbooks
    description: …
    version: 1
    trigger:                        # type: manual (the default) — run by a person only
      type: alert                   # or on every new alert matching ALL the lists given
      rule_ids: [...]               #   (each list: any of its values)
      levels: [high, critical]
      tags: [...]                   #   the alert's tags or its rule's tags
      techniques: [T1110]           #   ATT&CK; T1110 also matches T1110.001
      agencies: [police]
    inputs:
      block_minutes: {type: integer, default: 60}
    dry_run: false                  # the whole run changes nothing and says what it would do
    steps:
      - id: ack                     # [a-z][a-z0-9_]; unique
        action: alert.set_status    # a registered action
        with: {status: acknowledged}  # its Params; text with {{ }} is a template
        if: "alert['rule.level'] in ['high', 'critical']"
        timeout: 30s                # s, m, h, d or seconds; default 60 s
        retries: 2                  # default 0; backoff doubles from playbooks.retry_backoff_seconds
        on_error: stop              # or continue
        approval: {roles: [analyst], agency: own, expires: 4h}   # wait for a person first

Templates see ``alert``, ``case``, ``inputs``, ``steps.<id>.output`` and ``run``
(:mod:`playbooks.templating`); a ``steps.X`` a template reads must be an earlier step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from playbooks.actions import load_all
from playbooks.actions.base import ACTIONS
from playbooks.templating import (
    check_syntax,
    is_template,
    referenced_steps,
    referenced_steps_in_condition,
)
from soc_core.auth import ROLES, Role
from soc_core.errors import ParseError, PlaybookError
from soc_core.safe_yaml import load_yaml, read_yaml_text

LEVELS = ("informational", "low", "medium", "high", "critical")
Level = Literal["informational", "low", "medium", "high", "critical"]
NAME = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_STEPS = 50
# Names of values that are secrets: blanked out of run records (playbooks.records.redact), and
# refused as input names, since a run's inputs are kept in its record to resume it.
SECRET_NAME = re.compile(
    r"pass(word|phrase)?|secret|token|api[_-]?key|authori[sz]ation|credential|private[_-]?key", re.I
)
MAX_TIMEOUT = 24 * 3600.0


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``30s``, ``5m``, ``4h`` or ``1d``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 4h, 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration: write 30s, 5m, 4h or 1d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be more than 0")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class InputSpec(_Strict):
    type: Literal["string", "integer", "number", "boolean", "list"] = "string"
    default: Any = None
    required: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _default_has_the_type(self) -> InputSpec:
        if self.default is not None:
            check_input_value(self.type, self.default)
        return self


def check_input_value(kind: str, value: Any) -> Any:
    """``value`` if it is of input type ``kind`` (ValueError saying what is expected otherwise)."""
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        raise ValueError(f"expected a value of type {kind}, got {value!r}")
    return value


class Trigger(_Strict):
    type: Literal["manual", "alert"] = "manual"
    rule_ids: list[str] = Field(default_factory=list, max_length=500)
    levels: list[Level] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list, max_length=100)
    techniques: list[str] = Field(default_factory=list, max_length=100)
    agencies: list[str] = Field(default_factory=list, max_length=500)

    @field_validator("techniques")
    @classmethod
    def _techniques(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not TECHNIQUE.match(item)]
        if bad:
            raise ValueError(f"not ATT&CK technique ids: {bad}; write T1110 or T1110.001")
        return value

    @model_validator(mode="after")
    def _criteria(self) -> Trigger:
        given = any((self.rule_ids, self.levels, self.tags, self.techniques, self.agencies))
        if self.type == "manual" and given:
            raise ValueError("rule_ids/levels/tags/techniques/agencies belong to `type: alert`")
        if self.type == "alert" and not given:
            raise ValueError("`type: alert` needs at least one of rule_ids, levels, tags, techniques, agencies")
        return self

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """Whether a new alert starts this playbook: every list given has a value the alert has."""
        if self.type != "alert":
            return False
        tags = {str(tag).lower() for tag in [*(alert.get("tags") or []), *(alert.get("rule.tags") or [])]}
        rule_techniques = {tag.removeprefix("attack.") for tag in tags if tag.startswith("attack.t")}
        checks: tuple[tuple[list[str], Callable[[], bool]], ...] = (
            (self.rule_ids, lambda: alert.get("rule.id") in self.rule_ids),
            (list(self.levels), lambda: alert.get("rule.level") in self.levels),
            (self.tags, lambda: bool(tags & {tag.lower() for tag in self.tags})),
            (
                self.techniques,
                lambda: any(
                    seen == wanted.lower() or seen.startswith(wanted.lower() + ".")
                    for wanted in self.techniques
                    for seen in rule_techniques
                ),
            ),
            (self.agencies, lambda: alert.get("tenant") in self.agencies),
        )
        return all(check() for given, check in checks if given)


class Approval(_Strict):
    roles: list[Role] = Field(min_length=1)
    agency: Literal["own", "province"] = "own"
    expires: float | None = None  # seconds; None: playbooks.approval_expiry_minutes

    @field_validator("roles")
    @classmethod
    def _people(cls, value: list[Role]) -> list[Role]:
        if any(role not in ROLES for role in value):
            raise ValueError(f"approvers are people: roles among {list(ROLES)}")
        return value

    @field_validator("expires", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class Step(_Strict):
    id: str
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    if_: str | None = Field(None, alias="if")
    timeout: float = 60.0
    retries: int = Field(0, ge=0, le=10)
    on_error: Literal["stop", "continue"] = "stop"
    approval: Approval | None = None
    description: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not STEP_ID.match(value):
            raise ValueError("a step id is 1-40 of [a-z0-9_], starting with a letter")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds > MAX_TIMEOUT:
            raise ValueError("a step times out after at most 1d")
        return seconds


class Playbook(_Strict):
    name: str
    description: str = ""
    version: int = Field(1, ge=1)
    trigger: Trigger = Trigger()
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    dry_run: bool = False
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("a playbook name is 2-64 of [a-z0-9_-], starting with a letter")
        return value

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise PlaybookError(f"playbook {self.name!r} has no step {step_id!r}")

    def resolve_inputs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The run's inputs: ``given`` checked against the declared ones, defaults filled in."""
        unknown = sorted(set(given) - set(self.inputs))
        if unknown:
            raise PlaybookError(
                f"playbook {self.name!r} has no input {unknown[0]!r}", hint=f"its inputs: {sorted(self.inputs)}"
            )
        resolved: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name in given:
                try:
                    resolved[name] = check_input_value(spec.type, given[name])
                except ValueError as exc:
                    raise PlaybookError(f"input {name!r}: {exc}") from exc
            elif spec.default is not None:
                resolved[name] = spec.default
            elif spec.required:
                raise PlaybookError(f"playbook {self.name!r} needs input {name!r}")
        return resolved


# --- loading with every problem and its line ---------------------------------------------------

Path_ = tuple[str | int, ...]


def _lines(text: str) -> dict[Path_, int]:
    """The 1-based line of every key and list item, by its path from the root. The text was
    checked by safe_yaml first (no aliases, bounded), so composing it builds a small tree."""
    lines: dict[Path_, int] = {}

    def walk(node: yaml.Node, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines


def _show(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


@dataclass
class _Report:
    source: str
    lines: dict[Path_, int]
    errors: list[PlaybookError] = field(default_factory=list)

    def add(self, path: Sequence[str | int], message: str, hint: str | None = None) -> None:
        key = tuple(path)
        while key and key not in self.lines:
            key = key[:-1]
        line = self.lines.get(key, 1)
        self.errors.append(PlaybookError(f"{_show(path)}: {message}", where=f"{self.source}:{line}", hint=hint))


def _pydantic_problems(exc: ValidationError, report: _Report) -> None:
    for error in exc.errors():
        path = [part for part in error["loc"] if isinstance(part, str | int)]
        if error["type"] == "extra_forbidden":
            report.add(path, "unknown key", hint="check the spelling; see playbooks/format.py for the format")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            report.add(path, message)


def _template_values(value: Any, path: Path_) -> Iterable[tuple[Path_, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _template_values(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _template_values(item, (*path, index))
    elif is_template(value):
        yield path, str(value)


def _has_template(value: Any) -> bool:
    return any(True for _ in _template_values(value, ()))


def _check_params(action: str, params: Mapping[str, Any], path: Path_, report: _Report) -> None:
    """``with:`` keys against the action's Params; literal values against their types (a
    templated value is checked when the step runs)."""
    model = ACTIONS[action].Params
    accepted = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    for key in params:
        if key not in accepted:
            report.add((*path, key), f"unknown parameter of action {action!r}", hint=f"it takes {sorted(accepted)}")
    literal = {key: value for key, value in params.items() if key in accepted and not _has_template(value)}
    try:
        model.model_validate(literal)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [part for part in error["loc"] if isinstance(part, str | int)]
            name = str(loc[0]) if loc else None
            if name is None:
                if len(literal) == len(params):  # a check over several values, all of them literal
                    report.add(path, str(error["msg"]).removeprefix("Value error, "))
            elif error["type"] == "missing":
                if name not in params:
                    report.add(path, f"action {action!r} needs parameter {name!r}")
            elif name in literal:
                report.add((*path, *loc), str(error["msg"]).removeprefix("Value error, "))


def _check_steps(data: Mapping[str, Any], report: _Report) -> None:
    """What the models cannot see alone: actions in the registry, their parameters, unique
    step ids, templates that compile and read only earlier steps, gates on gated actions."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return
    seen: set[str] = set()
    all_ids = {step.get("id") for step in steps if isinstance(step, Mapping)}
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        here: Path_ = ("steps", index)
        step_id = step.get("id")
        if isinstance(step_id, str) and step_id in seen:
            report.add((*here, "id"), f"step id {step_id!r} is used twice", hint="give each step its own id")
        action = step.get("action")
        raw_params = step.get("with")
        params: Mapping[str, Any] = raw_params if isinstance(raw_params, Mapping) else {}
        if isinstance(action, str):
            if action not in ACTIONS:
                report.add((*here, "action"), f"no action {action!r}", hint=f"actions: {', '.join(sorted(ACTIONS))}")
            else:
                _check_params(action, params, (*here, "with"), report)
                if ACTIONS[action].gated and not step.get("approval"):
                    report.add(
                        (*here, "action"),
                        f"action {action!r} needs an approval gate",
                        hint="add approval: {roles: [...], agency: own}",
                    )
        texts = list(_template_values(params, (*here, "with")))
        condition = step.get("if")
        for path, text in texts:
            problem = check_syntax(text)
            if problem:
                report.add(path, f"template does not compile: {problem}")
        if isinstance(condition, str):
            problem = check_syntax(condition, condition=True)
            if problem:
                report.add((*here, "if"), f"condition does not compile: {problem}")
        references = [(path, referenced_steps(text)) for path, text in texts]
        if isinstance(condition, str):
            references.append(((*here, "if"), referenced_steps_in_condition(condition)))
        for path, names in references:
            for name in sorted(names):
                if name not in seen:
                    later = "a later step" if name in all_ids else "no step"
                    report.add(path, f"reads steps.{name}, which is {later}", hint="read only earlier steps")
        if isinstance(step_id, str):
            seen.add(step_id)


def _check_inputs(data: Mapping[str, Any], report: _Report) -> None:
    trigger, inputs = data.get("trigger"), data.get("inputs")
    if not isinstance(inputs, Mapping):
        return
    for name in inputs:
        if SECRET_NAME.search(str(name)):
            report.add(
                ("inputs", str(name)),
                "an input may not be a secret: the run record keeps inputs",
                hint="actions take secrets from the configuration",
            )
    if not (isinstance(trigger, Mapping) and trigger.get("type") == "alert"):
        return
    for name, spec in inputs.items():
        if isinstance(spec, Mapping) and spec.get("required") and spec.get("default") is None:
            report.add(("inputs", str(name)), "an alert-triggered run has no one to give this input: add a default")


@dataclass(frozen=True)
class Checked:
    """A playbook file read: the playbook if it is valid, and every problem found."""

    source: str
    playbook: Playbook | None
    errors: list[PlaybookError]


def check_text(text: str, *, source: str) -> Checked:
    """Parse and validate one playbook; every problem is reported with ``source:line``."""
    try:
        data = load_yaml(text, source=source)
    except ParseError as exc:
        return Checked(source, None, [PlaybookError(exc.message, where=exc.where, hint=exc.hint)])
    if not isinstance(data, dict):
        return Checked(
            source, None, [PlaybookError("a playbook is a YAML mapping (name, steps, …)", where=f"{source}:1")]
        )
    load_all()  # the registry is complete before a playbook is checked against it
    report = _Report(source, _lines(text))
    playbook: Playbook | None = None
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        _pydantic_problems(exc, report)
    _check_steps(data, report)
    _check_inputs(data, report)
    report.errors.sort(key=lambda error: int((error.where or ":0").rsplit(":", 1)[1]))
    return Checked(source, None if report.errors else playbook, report.errors)


def check_file(path: Path) -> Checked:
    try:
        text = read_yaml_text(path)
    except OSError as exc:
        return Checked(
            str(path), None, [PlaybookError(f"cannot read playbook: {exc.strerror or exc}", where=str(path))]
        )
    except ParseError as exc:
        return Checked(str(path), None, [PlaybookError(exc.message, where=exc.where, hint=exc.hint)])
    return check_text(text, source=str(path))


def load_playbook(text: str, *, source: str) -> Playbook:
    """One valid playbook, or a :class:`PlaybookError` listing every problem."""
    checked = check_text(text, source=source)
    if checked.playbook is None:
        raise PlaybookError(
            f"{len(checked.errors)} problem(s): " + "; ".join(error.render() for error in checked.errors), where=source
        )
    return checked.playbook


@dataclass
class Library:
    """The playbooks of the configured folders, by name, and the problems of the others."""

    playbooks: dict[str, Playbook] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[PlaybookError] = field(default_factory=list)

    def get(self, name: str) -> Playbook:
        try:
            return self.playbooks[name]
        except KeyError:
            raise PlaybookError(
                f"no playbook {name!r}", hint=f"loaded: {', '.join(sorted(self.playbooks)) or 'none'}"
            ) from None


def load_library(paths: Iterable[Path]) -> Library:
    """Every ``*.yml``/``*.yaml`` under ``paths`` (folders or files); a name used twice keeps
    the first and reports the second."""
    library = Library()
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        else:
            files.append(path)
    for file in files:
        checked = check_file(file)
        library.errors += checked.errors
        if checked.playbook is None:
            continue
        name = checked.playbook.name
        if name in library.playbooks:
            library.errors.append(
                PlaybookError(f"playbook name {name!r} is used by {library.sources[name]} too", where=f"{file}:1")
            )
            continue
        library.playbooks[name] = checked.playbook
        library.sources[name] = str(file)
    return library


__all__ = [
    "LEVELS",
    "Approval",
    "Checked",
    "InputSpec",
    "Library",
    "Playbook",
    "Step",
    "Trigger",
    "check_file",
    "check_input_value",
    "check_text",
    "load_library",
    "load_playbook",
    "parse_duration",
]
