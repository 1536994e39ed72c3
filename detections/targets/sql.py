"""The SQLite target: a processed Sigma rule as a ``WHERE`` fragment over table ``events``.

Every field value is read with ``json_each(events.doc, '$."field"')`` so list-valued fields
match on any element. Value tests call the store's value functions
(:mod:`soc_core.store.sqlite_functions`, registered on every connection: case folding of all of
Unicode, number parsing, CIDR, the hunts use them too; ``REGEXP`` on RE2, timestamp parts and
field references for rules), following the matcher's semantics (:mod:`detections.matcher`).
Field paths and values are bound parameters; the SQL text is built from fixed fragments only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sigma.rule import SigmaRule
from sigma.types import CompareOperators, SigmaCasedString, SigmaFieldReference, SigmaString

from soc_core.casefolding import fold
from soc_core.regex import compile_regex
from soc_core.store.base import SqlQuery
from soc_core.store.sqlite_functions import glob_literal

from .walk import QMARK, STAR, ConditionWalk, Network, fieldref_mode, query_field, string_parts

_SCALAR = "v.type NOT IN ('object', 'array', 'null')"
_SQL_COMPARE = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
    CompareOperators.NEQ: "!=",
}


def _glob(parts: Sequence[Any], fold: bool) -> str:
    """Sigma string parts as a SQLite GLOB pattern (``*``/``?`` wildcards, the rest literal)."""
    out = []
    for part in parts:
        if part == STAR:
            out.append("*")
        elif part == QMARK:
            out.append("?")
        else:
            out.append(glob_literal(part, cased=not fold))
    return "".join(out)


def _sql_join(operator: str, clauses: list[str]) -> str:
    """Clauses joined as a balanced tree: SQLite limits expression depth to 1,000, and SigmaHQ
    rules list hundreds of values for one field. Order is kept, so parameters stay in place."""
    if len(clauses) == 1:
        return clauses[0]
    middle = len(clauses) // 2
    return f"({_sql_join(operator, clauses[:middle])} {operator} {_sql_join(operator, clauses[middle:])})"


class _SqlCompiler(ConditionWalk[str]):
    target: ClassVar[str] = "SQLite"
    home: ClassVar[str] = "detections/targets/sql.py"

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.params: list[Any] = []

    def all_of(self, clauses: list[str]) -> str:
        return _sql_join("AND", clauses)

    def any_of(self, clauses: list[str]) -> str:
        return _sql_join("OR", clauses)

    def negate(self, clause: str) -> str:
        return f"(NOT {clause})"

    def _path(self, name: str) -> str:
        return '$."' + query_field(name, self.unsupported) + '"'

    def _any(self, name: str, predicate: str, *args: Any) -> str:
        self.params.append(self._path(name))
        self.params.extend(args)
        # fixed fragments only; field paths and values are bound parameters
        return f"EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS v WHERE {_SCALAR} AND {predicate})"  # noqa: S608

    def null(self, name: str) -> str:
        path = self._path(name)
        self.params.extend([path] * 5)
        return (
            "(COALESCE(json_type(events.doc, ?), 'null') = 'null'"
            " OR (json_type(events.doc, ?) = 'text' AND json_extract(events.doc, ?) = '')"
            " OR (json_type(events.doc, ?) = 'array' AND json_array_length(events.doc, ?) = 0))"
        )

    def exists(self, name: str, exists: bool) -> str:
        self.params.append(self._path(name))
        return f"(COALESCE(json_type(events.doc, ?), 'null') {'!=' if exists else '='} 'null')"

    def timestamp_part(self, name: str, part: str, number: float) -> str:
        return self._any(name, "sigma_ts_part(v.type, v.value, ?) = ?", part, number)

    def number(self, name: str, number: float) -> str:
        return self._any(name, "value_number(v.type, v.value) = ?", number)

    def boolean(self, name: str, expected: bool) -> str:
        return self._any(name, "value_bool(v.type, v.value, ?)", int(expected))

    def regex(self, name: str, pattern: str) -> str:
        compile_regex(pattern, where=self.where)  # refused here, not inside SQLite at query time
        return self._any(name, "value_text(v.type, v.value) REGEXP ?", pattern)

    def compare(self, name: str, op: CompareOperators, number: float) -> str:
        return self._any(name, f"value_number(v.type, v.value) {_SQL_COMPARE[op]} ?", number)

    def cidr(self, name: str, network: Network) -> str:
        return self._any(name, "value_in_cidr(v.type, v.value, ?)", str(network))

    def string(self, name: str, value: SigmaString) -> str:
        parts = string_parts(value, self.unsupported)
        cased = isinstance(value, SigmaCasedString)
        text = "value_text(v.type, v.value)" if cased else "value_fold(v.type, v.value)"
        if all(isinstance(part, str) for part in parts):
            plain = "".join(parts)
            return self._any(name, f"{text} = ?", plain if cased else fold(plain))
        return self._any(name, f"{text} GLOB ?", _glob(parts, fold=not cased))

    def fieldref(self, name: str, ref: SigmaFieldReference) -> str:
        self.params.extend([self._path(name), self._path(ref.field), fieldref_mode(ref)])
        return (
            "EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS a, json_each(events.doc, ?) AS b"
            " WHERE sigma_fieldref(value_fold(a.type, a.value), value_fold(b.type, b.value), ?))"
        )


def compile_sql(rule: SigmaRule, *, where: str) -> SqlQuery:
    """The processed ``rule`` as a WHERE fragment over ``events`` (several conditions ORed)."""
    compiler = _SqlCompiler(where)
    sql = compiler.rule(rule)
    return SqlQuery(sql, tuple(compiler.params))


__all__ = ["compile_sql"]
