"""Templates in playbooks: ``with:`` values and ``if:`` conditions, in a sandbox.

Only the playbook's own text is ever compiled as a template. What a template reads from the
context (the alert, the case, earlier steps' outputs — much of it written by an attacker into an
event) is data: ``{{ alert.message }}`` puts the field's text in place and never evaluates it,
so a field holding ``{{ ''.__class__.__mro__ }}`` comes out as those characters.

The environment is jinja2's :class:`ImmutableSandboxedEnvironment`: no attribute starting with
``_``, no function internals, no mutating a list or dict of the context. With
:class:`StrictUndefined` a name or key that is not there is an error rather than an empty
string. Every failure is a :class:`TemplateProblem` naming what was being rendered.

A value that is one ``{{ expression }}`` and nothing else keeps the expression's type (a list
of IPs stays a list, a number a number); anything else renders to text. An ``if:`` is an
expression (``alert.status == 'new'``; ``{{ … }}`` around it is accepted too) whose truth decides
whether the step runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from soc_core.errors import PlaybookError

MAX_TEXT = 64 * 1024  # a rendered value longer than this is refused (a template can loop)
_MARKERS = ("{{", "{%", "{#")
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


class TemplateProblem(PlaybookError):
    """A template that does not compile, reads what is not there, or reaches for internals."""


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.clear()  # no range/lipsum/dict/cycler/joiner/namespace: data in, data out
    return env


ENV = _environment()


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(marker in value for marker in _MARKERS)


def _single_expression(text: str) -> str | None:
    """The expression of a value that is exactly one ``{{ … }}`` (no text or other blocks)."""
    match = _SINGLE.match(text)
    if match is None:
        return None
    expr = match.group("expr")
    return None if any(marker in expr for marker in (*_MARKERS, "}}")) else expr


@lru_cache(maxsize=4096)
def _compiled_text(text: str) -> Any:
    return ENV.from_string(text)


@lru_cache(maxsize=4096)
def _compiled_expression(expr: str) -> Any:
    return ENV.compile_expression(expr, undefined_to_none=False)


def check_syntax(value: str, *, condition: bool = False) -> str | None:
    """Why ``value`` would not compile (None if it does): loaders report it with file:line."""
    try:
        if condition:
            _compiled_expression(condition_expression(value))
        elif (expr := _single_expression(value)) is not None:
            _compiled_expression(expr)
        else:
            _compiled_text(value)
    except TemplateError as exc:
        return exc.message or type(exc).__name__
    return None


def condition_expression(text: str) -> str:
    """An ``if:`` with or without ``{{ }}`` around it, as an expression."""
    expr = _single_expression(text)
    return expr if expr is not None else text


def referenced_steps(text: str) -> set[str]:
    """Step ids a template or expression reads as ``steps.X`` or ``steps['X']`` (from its parsed
    form, so a string that merely contains the word is not counted)."""
    try:
        expr = _single_expression(text)
        parsed = ENV.parse(text if expr is None else "{{ " + expr + " }}")
    except TemplateError:
        return set()
    found: set[str] = set()
    for node in parsed.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "steps":
            found.add(node.attr)
    for item in parsed.find_all(nodes.Getitem):
        named = isinstance(item.node, nodes.Name) and item.node.name == "steps"
        if named and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            found.add(item.arg.value)
    return found


def referenced_steps_in_condition(text: str) -> set[str]:
    return referenced_steps("{{ " + condition_expression(text) + " }}")


def _failure(what: str, exc: Exception) -> TemplateProblem:
    if isinstance(exc, SecurityError):
        return TemplateProblem(f"{what}: refused by the template sandbox: {exc}", hint="templates read data only")
    message = exc.message if isinstance(exc, TemplateError) and exc.message else f"{type(exc).__name__}: {exc}"
    return TemplateProblem(f"{what}: {message}")


def render(value: Any, context: Mapping[str, Any], *, what: str) -> Any:
    """``value`` (a ``with:`` value: text, number, list, mapping) with every template in it
    rendered against ``context``; raises :class:`TemplateProblem` naming ``what``."""
    if isinstance(value, Mapping):
        return {key: render(item, context, what=f"{what}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context, what=f"{what}[{index}]") for index, item in enumerate(value)]
    if not is_template(value):
        return value
    text = str(value)
    try:
        expr = _single_expression(text)
        if expr is not None:
            result = _compiled_expression(expr)(**context)
            if isinstance(result, Undefined):
                str(result)  # StrictUndefined raises here, naming what is missing
        else:
            result = _compiled_text(text).render(**context)
    except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # TypeError & co: a sandboxed expression applied to the wrong data (len of a number)
        raise _failure(what, exc) from exc
    if isinstance(result, str) and len(result) > MAX_TEXT:
        raise TemplateProblem(f"{what}: the rendered text is over {MAX_TEXT:,} characters")
    return _plain(result, what)


def _plain(value: Any, what: str) -> Any:
    """Only JSON data leaves the sandbox: it goes to an action, a store document and the audit
    trail (a template could otherwise hand out a bound method or a jinja object)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain(item, what) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, what) for item in value]
    raise TemplateProblem(
        f"{what}: the template gave a {type(value).__name__}, not data", hint="render text or a value"
    )


def evaluate(condition: str, context: Mapping[str, Any], *, what: str) -> bool:
    """The truth of an ``if:`` expression."""
    try:
        return bool(_compiled_expression(condition_expression(condition))(**context))
    except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise _failure(what, exc) from exc


__all__ = [
    "ENV",
    "MAX_TEXT",
    "TemplateProblem",
    "check_syntax",
    "condition_expression",
    "evaluate",
    "is_template",
    "referenced_steps",
    "referenced_steps_in_condition",
    "render",
]
