"""The report's words and number formats in Vietnamese and English.

The catalogues (``reports/i18n/{vi,en}.json``) map a message id to its text with ``{name}``
placeholders; ids ending ``.one``/``.other`` are the singular and plural of one message
(``Language.plural``), because English counts and Vietnamese does not. A missing id falls back to
English, then to the id itself: a gap shows, it never breaks a report. A test asserts both
catalogues hold the same ids.

Numbers, dates and durations follow the reader's language: Vietnamese groups thousands with a
dot and writes decimals with a comma (``1.234``, ``12,5%``) and dates day first
(``23/11/2026``); English writes ``1,234``, ``12.5%`` and ``23 Nov 2026``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from soc_core.errors import InvalidInput

Lang = Literal["vi", "en"]
LANGUAGES: tuple[Lang, ...] = get_args(Lang)
CATALOGUE_DIR = Path(__file__).parent / "i18n"
NO_DATA = "—"


@cache
def catalogue(lang: Lang) -> dict[str, str]:
    data: dict[str, str] = json.loads((CATALOGUE_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def check_language(lang: str) -> Lang:
    for known in LANGUAGES:
        if lang == known:
            return known
    raise InvalidInput(f"unknown report language {lang!r}", where="lang", hint=f"use one of {', '.join(LANGUAGES)}")


class Language:
    """One reader's language: words (``t``, ``plural``) and formats (``number``, ``day``...)."""

    def __init__(self, lang: Lang) -> None:
        self.code: Lang = lang
        self._messages = catalogue(lang)
        self._fallback = catalogue("en")
        self._group, self._decimal = (".", ",") if lang == "vi" else (",", ".")

    def t(self, message_id: str, **values: Any) -> str:
        text = self._messages.get(message_id) or self._fallback.get(message_id) or message_id
        return text.format(**values) if values else text

    def plural(self, message_id: str, n: float, **values: Any) -> str:
        """``message_id.one`` for exactly one, else ``message_id.other``; ``{n}`` is the number
        formatted for the reader."""
        form = "one" if n == 1 else "other"
        return self.t(f"{message_id}.{form}", n=self.number(n), **values)

    def known(self, message_id: str) -> bool:
        return message_id in self._messages or message_id in self._fallback

    def word(self, prefix: str, value: str) -> str:
        """The translated name of a vocabulary value (a level, a status), or the value itself
        when the catalogue does not know it (a status added later still shows)."""
        message_id = f"{prefix}.{value}"
        return self.t(message_id) if self.known(message_id) else value

    def number(self, value: float | None, decimals: int = 0) -> str:
        if value is None:
            return NO_DATA
        text = f"{value:,.{decimals}f}"
        # swap through a placeholder so "1,234.5" becomes "1.234,5" in Vietnamese
        return text.replace(",", "\0").replace(".", self._decimal).replace("\0", self._group)

    def percent(self, fraction: float | None, decimals: int = 1) -> str:
        if fraction is None:
            return NO_DATA
        value = fraction * 100
        # whole percentages read better without ",0"
        shown = self.number(value, 0 if float(value).is_integer() else decimals)
        return f"{shown}%"

    def change(self, fraction: float) -> str:
        """A signed week-over-week change, e.g. ``+12%`` / ``-3,5%``."""
        sign = "+" if fraction > 0 else "−" if fraction < 0 else "±"
        return sign + self.percent(abs(fraction))

    def day(self, value: date) -> str:
        if self.code == "vi":
            return f"{value.day:02d}/{value.month:02d}/{value.year}"
        return f"{value.day} {self.t(f'month.{value.month}')} {value.year}"

    def short_day(self, value: date) -> str:
        """Weekday and day of month, for chart axes: ``T2 23/11`` / ``Mon 23``."""
        weekday = self.t(f"weekday_short.{value.isoweekday()}")
        if self.code == "vi":
            return f"{weekday} {value.day:02d}/{value.month:02d}"
        return f"{weekday} {value.day}"

    def weekday(self, value: date) -> str:
        return self.t(f"weekday.{value.isoweekday()}")

    def moment(self, value: datetime) -> str:
        """A date and time of day, in the time zone ``value`` carries."""
        return f"{self.day(value.date())} {value.hour:02d}:{value.minute:02d}"

    def duration(self, seconds: float | None) -> str:
        """A mean response time, to the two largest units: ``45 giây``, ``3 giờ 5 phút``."""
        if seconds is None:
            return NO_DATA
        total = round(seconds)
        if total < 60:
            return self.t("unit.seconds", n=self.number(total))
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        counts = [("days", days), ("hours", hours), ("minutes", rest // 60)]
        first = next(index for index, (_, count) in enumerate(counts) if count)
        shown = [(unit, count) for unit, count in counts[first : first + 2] if count]
        return " ".join(self.t(f"unit.{unit}", n=self.number(count)) for unit, count in shown)


__all__ = ["LANGUAGES", "NO_DATA", "Lang", "Language", "catalogue", "check_language"]
