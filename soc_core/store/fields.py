"""Field types, from the ECS reference (``ecs_fields.json``, made by scripts/gen_ecs_fields.py).

Both stores need the same answer to "what kind of field is this?" so that a query means the
same thing on each: strings compare case-insensitively, ``ip`` fields take CIDR blocks,
numeric fields compare as numbers, ``text`` fields are searched by words. Fields outside ECS
(``winlog.event_data.*``, parser extras) are keywords.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from soc_core.errors import InvalidInput

NUMERIC_TYPES = frozenset({"long", "integer", "short", "byte", "double", "float", "half_float", "unsigned_long"})
FIELD_NAME = re.compile(r"^@?[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


@cache
def ecs_types() -> dict[str, str]:
    text = resources.files("soc_core.store").joinpath("ecs_fields.json").read_text()
    types: dict[str, str] = json.loads(text)
    return types


def field_type(name: str) -> str:
    return ecs_types().get(name, "keyword")


def check_field_name(name: str) -> str:
    """Refuse names that could not be a field (they would end up inside SQL or JSON paths)."""
    if not FIELD_NAME.match(name) or ".." in name:
        raise InvalidInput(f"bad field name {name!r}", hint="use dotted ECS names such as source.ip")
    return name


__all__ = ["NUMERIC_TYPES", "check_field_name", "ecs_types", "field_type"]
