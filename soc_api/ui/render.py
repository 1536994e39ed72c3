"""Rendering: the Jinja2 environment (autoescape everywhere) and safe display of event content.

Event fields come from the monitored systems, so an attacker writes them: they are shown as
text only. Control characters (ANSI escapes, ``\\r``, bidi overrides) are shown as visible
escapes, and long values are cut with an indicator so a 1 MB field cannot swamp the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from soc_api.ui.attack import attack_ref
from soc_api.ui.i18n import Translate, pick_language, translator
from soc_api.ui.session import LANG_COOKIE
from soc_core.auth import PROVINCE
from soc_core.errors import NotFound, ParseError
from soc_core.events import parse_timestamp
from soc_core.store import Store
from workflow.principals import Principal

TEMPLATE_DIR = Path(__file__).parent / "templates"
SHORT = 160  # characters of a value in a table cell
LONG = 4000  # characters of a value in a detail view
# fields not worth a pivot link (unique per event, or free text)
NO_PIVOT = frozenset({"@timestamp", "event.ingested", "event.id", "event.original", "message", "log.offset"})

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def as_text(value: Any) -> str:
    """A field value as one string: lists joined, mappings as JSON."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(as_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def shown(value: Any, limit: int = SHORT, *, multiline: bool = False) -> Markup:
    """Escaped, control characters made visible, cut at ``limit`` characters with an indicator."""
    text = as_text(value)
    cut = len(text) - limit if len(text) > limit else 0
    if cut:
        text = text[:limit]
    pattern = _CONTROL if multiline else _CONTROL_OR_NEWLINE
    parts = [escape(pattern.sub(_escape_control, text))]
    if cut:
        parts.append(Markup('<span class="cut">… [+{:,} chars]</span>').format(cut))
    return Markup("").join(parts)


def quote_query_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pivot_query(field: str, value: Any) -> str:
    return f"{field}:{quote_query_value(as_text(value))}"


def with_params(path: str, **params: Any) -> str:
    """``path?…`` with the non-empty parameters (lists repeat the name)."""
    pairs = [
        (name, str(item))
        for name, value in params.items()
        for item in (value if isinstance(value, list | tuple) else [value])
        if item not in (None, "")
    ]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def local_time(moment: Any, zone: ZoneInfo) -> Markup:
    """A stored UTC instant as ``<time>`` in ``zone`` (the user's), with UTC on hover; anything
    that is not an instant is shown as it is."""
    text = as_text(moment)
    try:
        instant = parse_timestamp(text)
    except (ParseError, ValueError):
        return shown(text, SHORT)
    local = instant.astimezone(zone)
    offset = local.strftime("%z")
    utc = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Markup('<time datetime="{}" title="{} UTC">{}<span class="tz"> {}</span></time>').format(
        utc, utc.replace("T", " ").removesuffix("Z"), local.strftime("%Y-%m-%d %H:%M:%S"), f"{offset[:3]}:{offset[3:]}"
    )


@pass_context
def when(context: Context, moment: Any) -> Markup:
    """``{{ value | when }}``: :func:`local_time` in the page's time zone."""
    return local_time(moment, context["tz"])


def zone_of(request: Request, principal: Principal | None) -> ZoneInfo:
    """The user's own time zone, else the deployment's (``reports.timezone``)."""
    name = getattr(principal, "timezone", None) or request.app.state.settings.reports.timezone
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


ENV = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# ``short_time`` is the old name of ``when``, kept for templates written before it
ENV.filters.update(shown=shown, short_time=when, as_text=as_text, when=when)
ENV.globals.update(
    pivot_query=pivot_query,
    with_params=with_params,
    attack_ref=attack_ref,
    SHORT=SHORT,
    LONG=LONG,
    NO_PIVOT=NO_PIVOT,
)


def language_of(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE))


def agencies_of(store: Store, principal: Principal | None, t: Translate) -> list[str]:
    """The names of the agencies the user belongs to, for the header."""
    names = []
    for tenant in dict.fromkeys(m.tenant for m in principal.memberships) if principal else ():
        if tenant == PROVINCE:
            names.append(t("agency.province"))
            continue
        try:
            names.append(str(store.get_doc("tenants", tenant).body.get("name") or tenant))
        except NotFound:
            names.append(tenant)
    return names


def render(
    request: Request, template: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """Render a page or fragment with the user, language, translator and CSRF token."""
    lang = language_of(request)
    t = translator(lang)
    principal = getattr(request.state, "principal", None)
    html = ENV.get_template(template).render(
        request=request,
        path=request.url.path,
        lang=lang,
        t=t,
        principal=principal,
        csrf_token=getattr(request.state, "csrf_token", ""),
        tz=zone_of(request, principal),
        agencies=agencies_of(request.app.state.store, principal, t) if not template.startswith("_") else [],
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=headers)


__all__ = [
    "ENV",
    "LONG",
    "NO_PIVOT",
    "SHORT",
    "as_text",
    "language_of",
    "pivot_query",
    "render",
    "shown",
    "with_params",
]
