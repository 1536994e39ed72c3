"""Load Sigma rules (single rules, multi-document collections, correlation rules) from YAML.

Every broken rule is reported, not just the first: :func:`load_rules` returns a
:class:`RuleSet` whose ``errors`` list holds one :class:`~soc_core.errors.RuleError` per problem,
each naming ``file:line`` (the line where the YAML document of the rule starts, or the line of
a YAML syntax error). The rules that did load sit next to them, keyed by id.

Rules are kept exactly as pySigma parsed them. Processing pipelines mutate rule objects, so
whoever needs a pipeline-processed rule takes :meth:`LoadedRule.fresh` (a private copy).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaRegularExpression

from soc_core.errors import ParseError, RuleError
from soc_core.regex import compile_regex
from soc_core.safe_yaml import iter_documents, read_yaml_text

AnyRule = SigmaRule | SigmaCorrelationRule

# An id without a UUID (a rule known by its ``name``) must be usable in a URL path and as a
# store document id: no '/', no leading '.', bounded.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NESTING_HINT = "flatten the value: deeply nested regex groups or lists cannot be checked"

# pySigma's collection actions (global/repeat/reset) merge documents, so a file using them is
# parsed as one unit and its rules carry the line of the file's first document.
_COLLECTION_ACTION = "action"


def shipped_rules_dir() -> Path:
    """Where the rules shipped with Canh Gác live: the ``rules`` package beside this one.

    Found by path rather than ``import rules``, so a user's own ``rules/`` folder in the
    current directory can never stand in for the shipped set.
    """
    return Path(__file__).resolve().parent.parent / "rules"


@dataclass(frozen=True)
class RuleSummary:
    """What the engine reads of a rule, kept by the compiled-rule cache (:mod:`detections.rulecache`)
    so that a warm start parses no YAML and runs no pipeline.

    ``trees`` builds the rule's condition trees after :func:`detections.pipelines.canhgac_pipeline`
    (built when the rule is first matched; None for a correlation rule, or when ``error`` says
    why the rule does not compile);
    ``literals`` and ``needs`` are what :mod:`detections.prefilter` and the matcher derive from them.
    """

    id: str
    name: str | None
    title: str
    level: str | None
    tags: tuple[str, ...]
    logsource: tuple[str | None, str | None, str | None]
    correlation: bool
    trees: Callable[[], list[object]] | None = None
    literals: frozenset[str] | None = None
    needs: frozenset[str] = frozenset()
    error: RuleError | None = None


class LoadedRule:
    """One parsed rule, where it came from, and a content hash used as its version.

    A rule from the compiled-rule cache comes with its :class:`RuleSummary` and no parsed rule:
    ``rule`` parses ``text`` the first time it is read (the engine never needs it).
    """

    def __init__(
        self,
        rule: AnyRule | None,
        path: Path,
        line: int | None,
        text: str,
        enabled: bool = True,
        *,
        summary: RuleSummary | None = None,
    ) -> None:
        if rule is None and summary is None:
            raise ValueError("a LoadedRule needs its parsed rule or a summary")
        self._rule = rule
        self.path = path
        self.line = line
        self.text = text
        self.enabled = enabled
        self.summary = summary

    @property
    def rule(self) -> AnyRule:
        if self._rule is None:
            self._rule = self._parse()
        return self._rule

    def _parse(self) -> AnyRule:
        assert self.summary is not None
        found = RuleSet()
        _load_documents(self.path, self.text, found, first_line=self.line or 1)
        loaded = found.rules.get(self.summary.id)
        if loaded is None:  # the text was parsed when the summary was made: only a code change gets here
            raise RuleError(f"rule {self.summary.id} no longer parses from its cached text", where=self.where)
        return loaded.rule

    @property
    def id(self) -> str:
        return self.summary.id if self.summary is not None else rule_key(self.rule)

    @property
    def name(self) -> str | None:
        return self.summary.name if self.summary is not None else self.rule.name

    @property
    def title(self) -> str:
        return self.summary.title if self.summary is not None else self.rule.title

    @property
    def level(self) -> str | None:
        if self.summary is not None:
            return self.summary.level
        return str(self.rule.level) if self.rule.level is not None else None

    @property
    def tags(self) -> list[str]:
        if self.summary is not None:
            return list(self.summary.tags)
        return [str(tag) for tag in self.rule.tags]

    @property
    def attack_tags(self) -> list[str]:
        return [tag for tag in self.tags if tag.startswith("attack.")]

    @property
    def version(self) -> str:
        """Hash of the rule's YAML text: any edit gives a new version."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else str(self.path)

    @property
    def is_correlation(self) -> bool:
        if self.summary is not None:
            return self.summary.correlation
        return isinstance(self.rule, SigmaCorrelationRule)

    @property
    def generates_alerts(self) -> bool:
        """False for base rules referenced by a correlation without ``generate: true``
        (set on the parsed rule when correlations are resolved; an unparsed rule is referenced by none)."""
        return self._rule._output if self._rule is not None else True

    def fresh(self) -> AnyRule:
        """A private copy, safe to run a processing pipeline over."""
        return copy.deepcopy(self.rule)


@dataclass
class RuleSet:
    """Loaded rules by id, plus every error met while loading them."""

    rules: dict[str, LoadedRule] = field(default_factory=dict)
    errors: list[RuleError] = field(default_factory=list)

    def __iter__(self) -> Iterator[LoadedRule]:
        return iter(self.rules.values())

    def __len__(self) -> int:
        return len(self.rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self.rules

    def get(self, rule_id: str) -> LoadedRule:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise RuleError(f"no rule with id {rule_id!r}", hint="see `soc rules list`") from None

    def enabled(self) -> list[LoadedRule]:
        return [loaded for loaded in self.rules.values() if loaded.enabled]

    def detection_rules(self) -> list[LoadedRule]:
        return [loaded for loaded in self.rules.values() if not loaded.is_correlation]

    def correlation_rules(self) -> list[LoadedRule]:
        return [loaded for loaded in self.rules.values() if loaded.is_correlation]


def rule_key(rule: AnyRule) -> str:
    """The id a rule is known by: its UUID, else its ``name``."""
    if rule.id is not None:
        return str(rule.id)
    return str(rule.name)


def load_rules(paths: Iterable[str | Path], *, pattern: str = "**/*.yml") -> RuleSet:
    """Load every rule under ``paths`` (files or directories, searched with ``pattern``).

    Never raises for a broken rule: each problem becomes a :class:`RuleError` in
    ``RuleSet.errors`` and the remaining rules still load.
    """
    files: list[Path] = []
    errors: list[RuleError] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(sorted(p for p in path.glob(pattern) if not _is_sample(p)))
        elif path.is_file():
            files.append(path)
        else:
            errors.append(RuleError("no such rule file or directory", where=str(path)))
    ruleset = RuleSet(errors=errors)
    for file in files:
        _load_file(file, ruleset)
    _resolve_correlations(ruleset)
    return ruleset


def load_rule_text(text: str, *, path: str | Path = "<text>") -> RuleSet:
    """Load rules from a YAML string (e.g. a rule posted to the API)."""
    ruleset = RuleSet()
    _load_documents(Path(path), text, ruleset)
    _resolve_correlations(ruleset)
    return ruleset


def _is_sample(path: Path) -> bool:
    return "samples" in path.parts


def _load_file(path: Path, ruleset: RuleSet) -> None:
    try:
        text = read_yaml_text(path)
    except OSError as exc:
        ruleset.errors.append(RuleError(f"cannot read rule file: {exc}", where=str(path)))
        return
    except ParseError as exc:
        ruleset.errors.append(RuleError(exc.message, where=exc.where, hint=exc.hint))
        return
    _load_documents(path, text, ruleset)


@dataclass
class _Document:
    line: int
    text: str
    data: Any


def _split_documents(path: Path, text: str, first_line: int = 1) -> list[_Document]:
    """YAML documents (safe loader: no aliases, bounded size) with the line each starts on;
    raises RuleError on bad YAML."""
    lines = text.splitlines(keepends=True)
    try:
        return [
            _Document(doc.line + first_line - 1, "".join(lines[doc.line - 1 : doc.end_line]), doc.data)
            for doc in iter_documents(text, source=str(path))
        ]
    except ParseError as exc:
        raise RuleError(exc.message, where=exc.where, hint=exc.hint) from exc


def _load_documents(path: Path, text: str, ruleset: RuleSet, *, first_line: int = 1) -> None:
    """The rules of ``text`` (which starts on line ``first_line`` of ``path``) into ``ruleset``."""
    try:
        documents = _split_documents(path, text, first_line)
    except RuleError as exc:
        ruleset.errors.append(exc)
        return
    documents = [doc for doc in documents if doc.data is not None]
    if not documents:
        return
    for doc in documents:
        if not isinstance(doc.data, dict):
            ruleset.errors.append(RuleError("a Sigma rule must be a YAML mapping", where=f"{path}:{doc.line}"))
            return
    if any(_COLLECTION_ACTION in doc.data for doc in documents):
        units = [(documents[0].line, text, [doc.data for doc in documents])]
    else:
        units = [(doc.line, doc.text, [doc.data]) for doc in documents]
    for line, unit_text, datas in units:
        _load_unit(path, line, unit_text, datas, ruleset)


def _load_unit(path: Path, line: int, text: str, datas: list[Any], ruleset: RuleSet) -> None:
    where = f"{path}:{line}"
    try:
        collection = SigmaCollection.from_dicts(
            datas,
            collect_errors=True,
            source=SigmaRuleLocation(path, line),
            collect_filters=True,
            resolve_references=False,
        )
    except SigmaError as exc:  # errors pySigma raises even when collecting
        ruleset.errors.append(translate_sigma_error(exc, where))
        return
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        # pySigma assumes well-typed YAML (a number where a string belongs trips it)
        ruleset.errors.append(RuleError(f"malformed rule: {type(exc).__name__}: {exc}", where=where))
        return
    except RecursionError:
        # pySigma checks each |re pattern with Python's re.compile, which recurses per nested group
        ruleset.errors.append(
            RuleError("malformed rule: a value is nested too deeply to parse", where=where, hint=_NESTING_HINT)
        )
        return
    ruleset.errors.extend(translate_sigma_error(error, where) for error in collection.errors)
    for sigma_filter in collection.filters:
        ruleset.errors.append(
            RuleError(
                f"Sigma filter {sigma_filter.title!r} is not supported yet",
                where=where,
                hint="express the exclusion inside the rule's detection",
            )
        )
    for rule in collection.rules:
        if rule.errors:
            continue
        if rule.id is None and rule.name is None:
            ruleset.errors.append(
                RuleError(
                    f"rule {rule.title!r} has no id",
                    where=where,
                    hint="add `id:` with a new UUID (python -c 'import uuid; print(uuid.uuid4())')",
                )
            )
            continue
        key = rule_key(rule)
        if rule.id is None and not SAFE_NAME.fullmatch(key):
            ruleset.errors.append(
                RuleError(
                    f"rule {rule.title!r} has no id and its name {key[:80]!r} cannot serve as one",
                    where=where,
                    hint="add `id:` with a new UUID, or a name of letters, digits, '.', '_', '-' (at most 128)",
                )
            )
            continue
        refused = _refused_regex(rule, where)
        if refused is not None:
            ruleset.errors.append(refused)
            continue
        if key in ruleset.rules:
            ruleset.errors.append(
                RuleError(
                    f"duplicate rule id {key}",
                    where=where,
                    hint=f"already used by {ruleset.rules[key].where}",
                )
            )
            continue
        ruleset.rules[key] = LoadedRule(rule=rule, path=path, line=line, text=text)


def _refused_regex(rule: AnyRule, where: str) -> RuleError | None:
    """The first ``|re`` pattern of the rule RE2 refuses (it would never run), as the error."""
    if not isinstance(rule, SigmaRule):
        return None
    for detection in rule.detection.detections.values():
        for item in _detection_items(detection):
            for value in item.value:
                if not isinstance(value, SigmaRegularExpression) or value.regexp.contains_placeholder():
                    continue  # placeholders are resolved by a pipeline; the matcher checks them then
                try:
                    compile_regex(str(value.regexp), where=where)
                except RuleError as exc:
                    return exc
    return None


def _detection_items(detection: SigmaDetection) -> Iterator[SigmaDetectionItem]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _detection_items(item)
        else:
            yield item


def _resolve_correlations(ruleset: RuleSet) -> None:
    """Point correlation rules at the rules they reference; drop those that cannot be."""
    correlations = ruleset.correlation_rules()
    if not correlations:
        return
    # only the rules correlations name are parsed (a rule from the compiled-rule cache is not, else)
    names = {str(ref.reference) for loaded in correlations for ref in _references(loaded.rule)}
    referenced = [loaded for loaded in ruleset.rules.values() if loaded.id in names or loaded.name in names]
    collection = SigmaCollection([loaded.rule for loaded in referenced], resolve_references=False)
    broken: list[str] = []
    for loaded in correlations:
        rule = loaded.rule
        assert isinstance(rule, SigmaCorrelationRule)
        try:
            rule.resolve_rule_references(collection)
        except SigmaError as exc:
            ruleset.errors.append(translate_sigma_error(exc, loaded.where))
            broken.append(loaded.id)
    for rule_id in broken:
        del ruleset.rules[rule_id]


def _references(rule: AnyRule) -> list[Any]:
    return list(rule.rules or []) if isinstance(rule, SigmaCorrelationRule) else []


def translate_sigma_error(exc: SigmaError, where: str) -> RuleError:
    """A pySigma error as our RuleError; keeps pySigma's own line when it knows one."""
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    source = exc.source
    if source is not None and source.line is not None and not where.endswith(f":{source.line}"):
        where = f"{source.path}:{source.line}"
    error = RuleError(f"{type(exc).__name__}: {message}", where=where)
    error.__cause__ = exc
    return error


def load_paths_or_shipped(paths: Sequence[str | Path] | None) -> RuleSet:
    """The rules under ``paths``, or the shipped rules when none are given (CLI default)."""
    return load_rules(paths if paths else [shipped_rules_dir()])


__all__ = [
    "AnyRule",
    "LoadedRule",
    "RuleSet",
    "RuleSummary",
    "load_paths_or_shipped",
    "load_rule_text",
    "load_rules",
    "rule_key",
    "shipped_rules_dir",
    "translate_sigma_error",
]
