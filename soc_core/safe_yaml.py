"""The one way Canh Gác reads YAML: rules, configuration and sensor configuration.

``yaml.safe_load`` builds no objects, but it still expands aliases: a 536-byte rule with six
levels of ``&a [*b, *b, …]`` held ``/api/rules/validate`` for 42 s and 363 MB while pySigma
walked the expansion. Here:

* anchors and aliases are refused (no Sigma rule or configuration needs them);
* a text over :data:`MAX_BYTES` is refused before it is parsed;
* at most :data:`MAX_NODES` nodes per text and :data:`MAX_DEPTH` levels of nesting (deeper
  nesting would make the composer recurse past Python's limit);
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


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the composer bounded (aliases, node count, depth)."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.nodes = 0
        self.depth = 0

    def refuse(self, message: str, event: yaml.Event, hint: str) -> ParseError:
        mark = event.start_mark
        where = f"{self.source}:{mark.line + 1}" if mark is not None else self.source
        return ParseError(message, where=where, hint=hint)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise self.refuse(
                "YAML anchors and aliases (&name, *name) are not allowed",
                event,
                "write the repeated value out in full",
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse(f"more than {MAX_NODES:,} YAML nodes", event, "split the file")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.refuse(f"YAML nested more than {MAX_DEPTH} levels deep", event, "flatten the data")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def iter_documents(text: str, *, source: str) -> Iterator[YamlDocument]:
    """Every document of ``text`` in order; raises :class:`ParseError` at ``source:line``."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ParseError(
            f"YAML text of {size:,} bytes is over the {MAX_BYTES:,}-byte limit", where=source, hint="split the file"
        )
    try:
        loader = _BoundedLoader(text, source)  # the reader refuses unprintable characters here
    except yaml.YAMLError as exc:
        raise ParseError(f"invalid YAML: {exc}", where=source) from exc
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            try:
                data = loader.construct_document(node)
            except ValueError as exc:  # e.g. an integer of more digits than Python converts
                raise ParseError(f"invalid YAML value: {exc}", where=f"{source}:{node.start_mark.line + 1}") from exc
            yield YamlDocument(node.start_mark.line + 1, node.end_mark.line + 1, data)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ParseError(f"invalid YAML: {exc.problem or exc}", where=where) from exc
    except yaml.YAMLError as exc:
        raise ParseError(f"invalid YAML: {exc}", where=source) from exc
    finally:
        loader.dispose()


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
