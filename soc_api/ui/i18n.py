"""UI strings in Vietnamese (the default) and English, from JSON catalogues beside this module.

A catalogue maps a message id to its text; ``{name}`` placeholders are filled from keyword
arguments. A missing id falls back to English, then to the id itself, so a gap is visible but
never breaks a page. A test asserts both catalogues hold the same ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
CATALOGUE_DIR = Path(__file__).parent / "i18n"

Translate = Callable[..., str]


@cache
def catalogue(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((CATALOGUE_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def pick_language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def translator(lang: str) -> Translate:
    messages = catalogue(pick_language(lang))
    fallback = catalogue("en")

    def translate(message_id: str, **values: Any) -> str:
        text = messages.get(message_id) or fallback.get(message_id) or message_id
        return text.format(**values) if values else text

    return translate


__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Translate", "catalogue", "pick_language", "translator"]
