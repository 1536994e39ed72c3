"""Case-insensitive text comparison, the same in the matcher, SQLite and Elasticsearch.

Two texts are equal case-insensitively when their :func:`fold` is equal: canonical composition
(NFC, so ``nguyễn`` typed precomposed equals the same word typed with combining marks) then
*simple* case folding, one character to one character (``NGUYỄN`` → ``nguyễn``, ``Σ``/``ς`` → ``σ``,
``Ǆ`` → ``ǆ``). Simple rather than full folding because Elasticsearch can only match
what is spelled one character for one: ``ß`` stays ``ß`` (it does not equal ``SS``) and Turkish
``İ`` stays ``İ`` (it equals neither ``i`` nor ``I``).

The matcher and SQLite fold both sides and compare. Elasticsearch stores keywords as written and
its ``case_insensitive`` flag folds ASCII letters only (verified on 9.5.4: ``nguyễn`` does not
match ``NGUYỄN``), so a needle whose folding is not plain ASCII becomes a Lucene ``regexp`` that
spells out every stored form (:func:`lucene_pattern`). A stored value partly composed in some other
way than NFC or NFD-with-leading-composition is beyond it; so is ``?`` against a decomposed value
(one ``?`` is one precomposed character after folding, one code point in Elasticsearch), and
so are the signs NFC turns into letters (Kelvin sign U+212A → ``K``, Ångström, Ohm) when the needle
is ASCII: the matcher and SQLite find U+212A ``elvin`` for ``kelvin``, Elasticsearch does not.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from enum import Enum
from functools import cache

__all__ = ["Wildcard", "fold", "lucene_pattern", "needs_pattern"]


class Wildcard(Enum):
    """A wildcard in a pattern, valued as its Lucene regexp."""

    ANY_ONE = "."
    ANY_RUN = ".*"


# every code point with a case mapping is below this (the last, Adlam, ends at U+1E943)
_CASED_LIMIT = 0x20000
# long s folds to ASCII s in Unicode; kept apart here so that an ASCII needle keeps
# Elasticsearch's own (ASCII) case_insensitive matching instead of a regexp for every "s"
_NOT_ASCII_LETTERS = frozenset("\u017f")


@cache
def _fold_char(char: str) -> str:
    if char in _NOT_ASCII_LETTERS:
        return char
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    lowered = char.lower()  # full folding would change the length (ß → ss): keep one character
    return lowered if len(lowered) == 1 else char


def fold(text: str) -> str:
    """``text`` composed (NFC) and simply case-folded: the key case-insensitive matching compares."""
    if text.isascii():
        return text.lower()
    return "".join(map(_fold_char, unicodedata.normalize("NFC", text)))


@cache
def _same_fold() -> dict[str, tuple[str, ...]]:
    """Folded character → every character that folds to it (itself included)."""
    groups: dict[str, list[str]] = {}
    for point in range(_CASED_LIMIT):
        char = chr(point)
        if 0xD800 <= point <= 0xDFFF:
            continue
        folded = _fold_char(char)
        if folded != char:
            groups.setdefault(folded, [folded]).append(char)
    return {key: tuple(chars) for key, chars in groups.items()}


def _spellings(char: str) -> list[str]:
    """The ways a stored value may spell ``char``: precomposed, decomposed, composed in part."""
    decomposed = unicodedata.normalize("NFD", char)
    spellings = [char]
    for cut in range(1, len(decomposed)):
        spellings.append(unicodedata.normalize("NFC", decomposed[:cut]) + decomposed[cut:])
    return list(dict.fromkeys(spellings))


@cache
def _variants(folded: str) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(spelling for char in _same_fold().get(folded, (folded,)) for spelling in _spellings(char))
    )


def needs_pattern(text: str) -> bool:
    """Whether Elasticsearch's ASCII-only ``case_insensitive`` would miss a spelling of ``text``."""
    return any(_variants(char) != tuple(dict.fromkeys((char, char.upper()))) for char in fold(text))


def _lucene_literal(text: str) -> str:
    # every ASCII non-alphanumeric is escaped; everything else stands for itself
    return "".join("\\" + char if char.isascii() and not char.isalnum() else char for char in text)


def lucene_pattern(parts: Iterable[str | Wildcard]) -> str:
    """A Lucene regexp (flags ``NONE``, anchored like every Lucene regexp) matching every stored
    spelling of a value whose fold matches ``parts``: literal texts and wildcards."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, Wildcard):
            out.append(part.value)
            continue
        for char in fold(part):
            variants = _variants(char)
            if len(variants) == 1:
                out.append(_lucene_literal(char))
            elif all(len(v) == 1 for v in variants):
                out.append("[" + "".join(_lucene_literal(v) for v in variants) + "]")
            else:
                out.append("(" + "|".join(_lucene_literal(v) for v in variants) + ")")
    return "".join(out)
