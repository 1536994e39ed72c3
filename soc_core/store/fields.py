"""Field types, from the ECS reference (``ecs_fields.json``, made by scripts/gen_ecs_fields.py).

Both stores need the same answer to "what kind of field is this?" so that a query means the
same thing on each: strings compare case-insensitively, ``ip`` fields take CIDR blocks,
numeric fields compare as numbers, ``text`` fields are searched by words. Fields outside ECS
(``winlog.event_data.*``, parser extras) are keywords.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from functools import cache
from importlib import resources

from soc_core.errors import InvalidInput

NUMERIC_TYPES = frozenset({"long", "integer", "short", "byte", "double", "float", "half_float", "unsigned_long"})
FieldTypes = Callable[[str], str]  # a field's mapped type by name (as field_type answers)
FIELD_NAME = re.compile(r"^@?[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


@cache
def ecs_types() -> dict[str, str]:
    text = resources.files("soc_core.store").joinpath("ecs_fields.json").read_text()
    types: dict[str, str] = json.loads(text)
    return types


def field_type(name: str) -> str:
    return ecs_types().get(name, "keyword")


# the values each numeric ECS type holds, as Elasticsearch checks them
_LIMITS: dict[str, tuple[float, float]] = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "unsigned_long": (0, 2**64 - 1),
    "half_float": (-65504.0, 65504.0),
    "float": (-3.4028234663852886e38, 3.4028234663852886e38),
    "double": (-sys.float_info.max, sys.float_info.max),
}


def numeric_bound(name: str, text: str) -> int | float:
    """A range bound on numeric field ``name``, checked the same way for every store.

    Refuses (:class:`InvalidInput`) text that is not a finite number, or a number the field's
    type cannot hold: SQLite would fail on the conversion and Elasticsearch on the range.
    """
    kind = field_type(name)
    number: int | float
    try:
        number = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise InvalidInput(
                f"range bound {text[:40]!r} on {kind} field {name} is not a number",
                hint="e.g. source.port:[1 TO 1024]",
            ) from None
    low, high = _LIMITS.get(kind, _LIMITS["double"])
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInput(
            f"range bound {text[:40]!r} on {kind} field {name} is outside what the field holds",
            hint=f"use a number from {low:g} to {high:g}",
        )
    return number


def check_field_name(name: str) -> str:
    """Refuse names that could not be a field (they would end up inside SQL or JSON paths)."""
    if not FIELD_NAME.match(name) or ".." in name:
        raise InvalidInput(f"bad field name {name!r}", hint="use dotted ECS names such as source.ip")
    return name


__all__ = ["NUMERIC_TYPES", "FieldTypes", "check_field_name", "ecs_types", "field_type", "numeric_bound"]
