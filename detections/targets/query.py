"""A detection rule as a store query: what :meth:`soc_core.store.base.Store.rule_query_pages` runs.

The rule goes through a fresh pipeline for its schema (pipelines mutate rule objects), and
compiles to the language of the store that runs it only when that store asks
(:class:`StoreRuleQuery`): so nothing in ``detections`` needs to know which store it holds.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sigma.rule import SigmaRule

from soc_core.errors import RuleError
from soc_core.store.base import SqlQuery
from soc_core.store.fields import FieldTypes, field_type

from ..evaluation import process_rule
from ..loader import LoadedRule
from .elasticsearch import DslQuery, compile_es, rule_fields
from .sql import compile_sql


def detection_rule(loaded: LoadedRule) -> SigmaRule:
    """The processed rule (a fresh copy through its pipeline); a correlation is refused."""
    if loaded.is_correlation:
        raise RuleError("correlation rules do not compile to one store query", where=loaded.where)
    return process_rule(loaded)


class StoreRuleQuery:
    """A :class:`~soc_core.store.base.RuleQuery` of one loaded detection rule."""

    def __init__(self, loaded: LoadedRule) -> None:
        self.loaded = loaded

    @property
    def where(self) -> str:
        return self.loaded.where

    @cached_property
    def _rule(self) -> SigmaRule:
        return detection_rule(self.loaded)

    def sql(self) -> SqlQuery:
        return compile_sql(self._rule, where=self.where)

    def fields(self) -> list[str]:
        return rule_fields(self._rule, self.where)

    def dsl(self, field_types: FieldTypes) -> dict[str, Any]:
        return compile_es(self._rule, where=self.where, field_types=field_types)


def rule_sql(loaded: LoadedRule) -> SqlQuery:
    """A detection rule, through a fresh pipeline, as SQL for the SQLite store."""
    return StoreRuleQuery(loaded).sql()


def rule_es_query(loaded: LoadedRule, *, field_types: FieldTypes = field_type) -> DslQuery:
    """A detection rule, through a fresh pipeline, as an Elasticsearch query."""
    return StoreRuleQuery(loaded).dsl(field_types)


__all__ = ["StoreRuleQuery", "detection_rule", "rule_es_query", "rule_sql"]
