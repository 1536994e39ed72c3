"""The one way Canh Gác reads YAML: rules, configuration and sensor configuration.

``yaml.safe_load`` builds no objects, but it still expands aliases: a 536-byte rule with six
levels of ``&a [*b, *b, …]`` held ``/api/rules/validate`` for 42 s and 363 MB while pySigma
walked the expansion. Here:

* a text over :data:`MAX_BYTES` is refused before it is parsed;
* libyaml's event stream is checked first, building nothing: anchors and aliases are refused
  (no Sigma rule or configuration needs them), and so are more than :data:`MAX_NODES` nodes
  per text or :data:`MAX_DEPTH` levels of nesting (deeper nesting would make the composer
  and pySigma recurse past Python's limit);
* only then does libyaml's safe loader build the data;
* a scalar the constructor cannot hold (an integer over Python's 4,300-digit limit) is an
  error, not a ``ValueError`` from deep inside PyYAML.

Every refusal is a :class:`~soc_core.errors.ParseError` naming ``source:line``; callers turn it
into their own error (``RuleError``, ``ConfigError``) with the same location.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soc_core.errors import ParseError

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64


@dataclass(frozen=True)
class YamlDocument:
    """One document of a YAML stream: its first and last line (1-based) and its data."""

    line: int
    end_line: int
    data: Any


def _line(mark: Any) -> int:
    """0-based line of a mark (libyaml always sets marks on the events it parses)."""
    return int(mark.line) if mark is not None else 0


def _refusal(message: str, source: str, event: yaml.Event, hint: str) -> ParseError:
    return ParseError(message, where=f"{source}:{_line(event.start_mark) + 1}", hint=hint)


def _check_events(text: str, source: str) -> list[tuple[int, int]]:
    """Walk libyaml's event stream (cheap, nothing built) enforcing the limits; the first and
    last line (0-based) of each document's root node."""
    spans: list[tuple[int, int]] = []
    depth = nodes = start = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _refusal(
                "YAML anchors and aliases (&name, *name) are not allowed", source, event, "write the value out in full"
            )
        if isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            depth -= 1
            if depth == 0:
                spans.append((start, _line(event.end_mark)))
            continue
        if not isinstance(event, yaml.ScalarEvent | yaml.SequenceStartEvent | yaml.MappingStartEvent):
            continue  # stream and document boundaries
        nodes += 1
        if nodes > MAX_NODES:
            raise _refusal(f"more than {MAX_NODES:,} YAML nodes", source, event, "split the file")
        if depth == 0:
            start = _line(event.start_mark)
        if isinstance(event, yaml.ScalarEvent):
            if depth == 0:
                spans.append((start, _line(event.end_mark)))
            continue
        depth += 1
        if depth > MAX_DEPTH:
            raise _refusal(f"YAML nested more than {MAX_DEPTH} levels deep", source, event, "flatten the data")
    return spans


def iter_documents(text: str, *, source: str) -> Iterator[YamlDocument]:
    """Every document of ``text`` in order; raises :class:`ParseError` at ``source:line``."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ParseError(
            f"YAML text of {size:,} bytes is over the {MAX_BYTES:,}-byte limit", where=source, hint="split the file"
        )
    where = source
    try:
        spans = _check_events(text, source)
        # only now, with no alias left to expand and the size known, are objects built
        loader = yaml.CSafeLoader(text)
        try:
            for first, last in spans:
                where = f"{source}:{first + 1}"
                yield YamlDocument(first + 1, last + 1, loader.get_data())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ParseError(f"invalid YAML: {exc.problem or exc}", where=where) from exc
    except yaml.YAMLError as exc:
        raise ParseError(f"invalid YAML: {exc}", where=source) from exc
    except UnicodeEncodeError as exc:  # a lone surrogate cannot be handed to libyaml
        raise ParseError(f"invalid YAML: not valid Unicode text ({exc.reason})", where=source) from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ParseError(f"invalid YAML value: {exc}", where=where) from exc


def load_yaml(text: str, *, source: str) -> Any:
    """The data of a single-document YAML text (None when empty)."""
    documents = list(iter_documents(text, source=source))
    if len(documents) > 1:
        raise ParseError("expected one YAML document, found several", where=f"{source}:{documents[1].line}")
    return documents[0].data if documents else None


def read_yaml_text(path: Path) -> str:
    """A YAML file's text, refusing files over :data:`MAX_BYTES` before reading them."""
    with Path(path).open("rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise ParseError(f"YAML file is over the {MAX_BYTES:,}-byte limit", where=str(path), hint="split the file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text: {exc}", where=str(path)) from exc


def load_yaml_file(path: Path) -> Any:
    """:func:`load_yaml` of a file (``OSError`` when it cannot be read)."""
    return load_yaml(read_yaml_text(path), source=str(path))


__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "YamlDocument",
    "iter_documents",
    "load_yaml",
    "load_yaml_file",
    "read_yaml_text",
]
