"""The one regular-expression engine for rule patterns: RE2, with no fallback.

Rule patterns come from people (custom rules, imports, backtests of a changed rule) and run in
the API and engine processes. Python's ``re`` backtracks while holding the GIL:
``^(?=a)(a+)+#`` froze ``/api/health`` for seconds on a 26-character event, and would for
hours on 40. RE2 matches in time linear in the input, so a pattern RE2 cannot compile
(look-arounds, back-references, …) is refused as a :class:`~soc_core.errors.RuleError` naming
the rule and RE2's reason — when the rule is loaded, so it never reaches a matcher. The
in-process matcher, the SQLite ``REGEXP`` function, the Elasticsearch translation of boolean
fields and the loader's check all compile through :func:`compile_regex`.

Nesting is bounded too (:data:`MAX_NESTING`): deeper patterns make the translators (pySigma's
check, the Lucene translation) recurse past Python's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import re2

from soc_core.errors import RuleError

MAX_NESTING = 100  # groups inside groups; SigmaHQ's deepest pattern nests 4

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each refusal to stderr; the RuleError says it


def compile_regex(pattern: str, *, where: str | None = None) -> Callable[[str], bool]:
    """An unanchored RE2 search for ``pattern``; raises :class:`RuleError` if RE2 refuses it."""
    compiled = _compiled(pattern, where)

    def search(text: str) -> bool:
        try:
            return compiled.search(text) is not None
        except UnicodeEncodeError:  # lone surrogates: RE2 takes only valid UTF-8
            return compiled.search(text.encode("utf-8", "replace").decode("utf-8")) is not None

    return search


def _compiled(pattern: str, where: str | None) -> re2._Regexp:
    try:
        return _re2(pattern)
    except _Refused as exc:
        raise RuleError(
            f"regular expression cannot run on RE2: {exc.reason}: {_shown(pattern)}",
            where=where,
            hint="RE2 has no look-arounds or back-references; rewrite the pattern without them "
            "(e.g. a separate `|re` selection combined with `and not`)",
        ) from None


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@lru_cache(maxsize=4096)
def _re2(pattern: str) -> re2._Regexp:
    depth = _nesting(pattern)
    if depth > MAX_NESTING:
        raise _Refused(f"groups nested {depth} deep (at most {MAX_NESTING})")
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise _Refused(reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)) from None


def _nesting(pattern: str) -> int:
    """How deep ``(`` groups nest, skipping escapes and character classes."""
    depth = deepest = 0
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
    return deepest


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 200 else pattern[:200] + "…")


__all__ = ["MAX_NESTING", "compile_regex"]
