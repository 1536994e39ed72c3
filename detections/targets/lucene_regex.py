"""RE2 syntax → Lucene ``regexp`` syntax, for the Elasticsearch target's ``|re`` values.

The matcher searches (unanchored) with RE2; Lucene regexes are anchored, have no inline flags
and no ``\\d``-style classes, and ``case_insensitive`` folds literals but not classes. So the
pattern is parsed (by the standard library's regex parser: RE2's syntax is a subset of it for
everything we translate) and written out again: ``.*`` around it unless a ``^``/``$`` anchors
that side, classes spelled out, both cases of letters where ``(?i)`` asks. What Lucene cannot
say (anchors inside, look-arounds, back-references, ``\\b``, scoped flags) is an
:class:`~detections.targets.walk.UnsupportedConstruct` naming the construct.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from .walk import Unsupported

# Loaded by name: it is an internal module of the standard library.
_sre: Any = importlib.import_module("re._parser")
_sre_c: Any = importlib.import_module("re._constants")


def _lucene_char(char: str) -> str:
    """One literal character in Lucene regex syntax (every ASCII non-alphanumeric escaped)."""
    if char.isascii() and not char.isalnum():
        return "\\" + char
    return char


_SPACE = " \t\n\r\f"  # RE2's \s
_CATEGORIES = {
    "CATEGORY_DIGIT": ("0-9", False),
    "CATEGORY_NOT_DIGIT": ("0-9", True),
    "CATEGORY_WORD": ("a-zA-Z0-9_", False),
    "CATEGORY_NOT_WORD": ("a-zA-Z0-9_", True),
    "CATEGORY_SPACE": ("".join(_lucene_char(c) for c in _SPACE), False),
    "CATEGORY_NOT_SPACE": ("".join(_lucene_char(c) for c in _SPACE), True),
}


class LuceneRegex:
    """RE2/Python regex syntax → Lucene ``regexp`` syntax, as a search (unanchored) over a value."""

    def __init__(self, unsupported: Unsupported) -> None:
        self.unsupported = unsupported
        self.flags = 0

    def translate(self, pattern: str) -> tuple[str, bool]:
        """The Lucene regex and whether it must run case-insensitively."""
        try:
            parsed = _sre.parse(pattern)
        except Exception as exc:
            raise self.unsupported(f"regular expression {pattern!r} ({exc})") from exc
        self.flags = parsed.state.flags
        items = list(parsed)
        if len(items) == 1 and items[0][0] == _sre_c.BRANCH:
            alternatives = [list(alt) for alt in items[0][1][1]]
            body = "|".join(f"({self.search(alt)})" for alt in alternatives)
        else:
            body = self.search(items)
        return body, bool(self.flags & _sre_c.SRE_FLAG_IGNORECASE)

    def search(self, items: list[Any]) -> str:
        c = _sre_c
        multiline = bool(self.flags & c.SRE_FLAG_MULTILINE)
        start = ".*"
        if items and items[0][0] == c.AT and items[0][1] in (c.AT_BEGINNING, c.AT_BEGINNING_STRING):
            start = "(.*\n)?" if multiline and items[0][1] == c.AT_BEGINNING else ""
            items = items[1:]
        if items and items[-1][0] == c.BRANCH:
            # the parser factors common prefixes out of alternatives (``^a$|^b`` → ``^(a$|b)``):
            # each alternative then decides its own end
            alternatives = "|".join(self.tail(list(alt)) for alt in items[-1][1][1])
            return start + self.sequence(items[:-1]) + f"({alternatives})"
        return start + self.tail(items)

    def tail(self, items: list[Any]) -> str:
        c = _sre_c
        end = ".*"
        if items and items[-1][0] == c.AT and items[-1][1] in (c.AT_END, c.AT_END_STRING):
            end = "(\n.*)?" if self.flags & c.SRE_FLAG_MULTILINE and items[-1][1] == c.AT_END else ""
            items = items[:-1]
        return self.sequence(items) + end

    def sequence(self, items: Sequence[Any]) -> str:
        return "".join(self.item(op, arg) for op, arg in items)

    def item(self, op: Any, arg: Any) -> str:
        c = _sre_c
        if op == c.LITERAL:
            return _lucene_char(chr(arg))
        if op == c.NOT_LITERAL:
            return f"[^{''.join(_lucene_char(v) for v in self.variants(chr(arg)))}]"
        if op == c.ANY:
            return "." if self.flags & c.SRE_FLAG_DOTALL else "[^\n]"
        if op == c.IN:
            return self.char_class(arg)
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            low, high, sub = arg
            inner = self.sequence(list(sub))
            if len(sub) != 1 or next(iter(sub))[0] in (c.MAX_REPEAT, c.MIN_REPEAT):
                inner = f"({inner})"
            if (low, high) == (0, c.MAXREPEAT):
                return inner + "*"
            if (low, high) == (1, c.MAXREPEAT):
                return inner + "+"
            if (low, high) == (0, 1):
                return inner + "?"
            if high == c.MAXREPEAT:
                return f"{inner}{{{low},}}"
            return f"{inner}{{{low}}}" if low == high else f"{inner}{{{low},{high}}}"
        if op == c.SUBPATTERN:
            _group, add_flags, del_flags, sub = arg
            if add_flags or del_flags:
                raise self.unsupported("regex with scoped inline flags (?i:…)")
            return f"({self.sequence(list(sub))})"
        if op == c.BRANCH:
            # the parser factors prefixes out (``e|ec`` → ``e(|c)``) and Lucene never matches an
            # empty alternative, so an empty branch becomes an optional group
            rendered = [self.sequence(list(alt)) for alt in arg[1]]
            present = [text for text in rendered if text]
            if len(present) == len(rendered):
                return "(" + "|".join(rendered) + ")"
            return "(" + "|".join(present) + ")?" if present else ""
        raise self.unsupported(f"regex construct {op} (anchors inside, look-arounds, back-references, \\b …)")

    @property
    def ignore_case(self) -> bool:
        return bool(self.flags & _sre_c.SRE_FLAG_IGNORECASE)

    def variants(self, char: str) -> list[str]:
        """Lucene's ``case_insensitive`` folds literals only, not classes: add the other case."""
        if not self.ignore_case:
            return [char]
        return list(dict.fromkeys([char, char.lower(), char.upper()]))

    def range_variants(self, low: int, high: int) -> list[tuple[int, int]]:
        ranges = [(low, high)]
        if self.ignore_case:
            for start, end, shift in ((ord("A"), ord("Z"), 32), (ord("a"), ord("z"), -32)):
                lo, hi = max(low, start), min(high, end)
                if lo <= hi:
                    ranges.append((lo + shift, hi + shift))
        return ranges

    def char_class(self, members: Sequence[Any]) -> str:
        c = _sre_c
        negate = False
        out: list[str] = []
        negated_categories: list[str] = []
        for op, arg in members:
            if op == c.NEGATE:
                negate = True
            elif op == c.LITERAL:
                out.extend(_lucene_char(v) for v in self.variants(chr(arg)))
            elif op == c.RANGE:
                for low, high in self.range_variants(arg[0], arg[1]):
                    out.append(f"{_lucene_char(chr(low))}-{_lucene_char(chr(high))}")
            elif op == c.CATEGORY and str(arg) in _CATEGORIES:
                chars, inverted = _CATEGORIES[str(arg)]
                (negated_categories if inverted else out).append(chars)
            else:
                raise self.unsupported(f"regex character class member {op} {arg}")
        if negated_categories:
            if out or negate or len(negated_categories) > 1:
                raise self.unsupported("regex character class mixing \\D/\\W/\\S with other members")
            return f"[^{negated_categories[0]}]"
        return f"[{'^' if negate else ''}{''.join(out)}]"


__all__ = ["LuceneRegex"]
