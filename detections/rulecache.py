"""The compiled-rule cache: what loading and compiling a rule file gives, kept on disk so a
restart parses no YAML and runs no pipeline.

One entry per rule file, keyed by the SHA-256 of the cache format, the code version (the source
of the modules that load, process and serialise rules, and the versions of pySigma and its
Elasticsearch pipelines), the file's path and its text. Changing one rule file changes one
key: only that file is compiled again; a code or pipeline change invalidates every entry.

An entry holds, per rule, the summary the engine reads (:class:`~detections.loader.RuleSummary`:
id, title, level, tags, log source) and the rule's condition trees after
:func:`~detections.pipelines.canhgac_pipeline` in a small JSON form, or the error it compiled
to; and the file's load errors. Building the matcher, gate and prefilter from those trees is
all a warm start does (:func:`detections.evaluation.compile_detection_rule`).

Trust: entries are JSON (loading one runs no code) behind an HMAC-SHA256 over their bytes,
with a key kept in the cache directory (``key``, 0600, created once). An entry that is
truncated, garbled, signed with another key, or names another key or format is discarded and
rebuilt from the rule file, never used. An entry that cannot be written (a read-only
directory) costs only the time: the rules still load, with one warning.

Concurrency: every process shares the directory. An entry is written to a temporary file in
the same directory and renamed over its name (atomic); two writers of one key write the same
bytes. The key file is created the same way, with a hard link that fails if another process
made it first (that one's key is used).

Cold compiles run in a process pool of one worker per core, when there are enough files to pay
for starting it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from soc_core.errors import ParseError, RuleError
from soc_core.safe_yaml import read_yaml_text

from .evaluation import process_rule
from .loader import (
    LoadedRule,
    RuleSet,
    RuleSummary,
    _is_sample,
    _load_documents,
    _resolve_correlations,
)
from .matcher import compile_gate_trees, compile_trees, needed_fields_of
from .prefilter import literals_of
from .routing import ROUTING_VALUE_FIELDS
from .targets.walk import conditions

log = logging.getLogger(__name__)

FORMAT = 1
KEY_FILE = "key"
# below this many files to compile, starting worker processes costs more than it saves
POOL_MIN_FILES = 64
_CODE_FILES = (
    "loader.py",
    "pipelines.py",
    "rulecache.py",
    "matcher.py",
    "prefilter.py",
    "targets/walk.py",
)
_PACKAGES = ("pysigma", "pysigma-backend-elasticsearch")


Contents = tuple[list[LoadedRule], list[RuleError]]


class CacheEntryError(ValueError):
    """An entry that is not what this code wrote: it is rebuilt."""


def code_version() -> str:
    """The version of everything an entry depends on besides the rule file itself."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _CODE_FILES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    for package in _PACKAGES:
        try:
            digest.update(f"{package}={metadata.version(package)}\0".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package}=none\0".encode())
    return digest.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    compiled: int = 0  # files compiled: not in the cache, or rebuilt
    rebuilt: int = 0  # entries found broken or forged, discarded
    write_failures: int = 0


@dataclass
class RuleCache:
    """The cache directory (``<data_dir>/rule-cache`` for the engine and ``soc scan``)."""

    directory: Path
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    stats: CacheStats = field(default_factory=CacheStats)
    _secret: bytes | None = field(default=None, init=False, repr=False)
    _version: str = field(default_factory=code_version, init=False, repr=False)
    _warned: bool = field(default=False, init=False, repr=False)

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, workers: int | None = None) -> RuleCache:
        cache = cls(Path(data_dir) / "rule-cache")
        if workers is not None:
            cache.workers = workers
        return cache

    # keys and entries -------------------------------------------------------------------
    def key(self, path: Path, text: str) -> str:
        digest = hashlib.sha256(f"{FORMAT}\0{self._version}\0{path}\0".encode())
        digest.update(text.encode())
        return digest.hexdigest()

    def entry_path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        """The entry for ``key``; None when missing, or when broken (counted, and rebuilt)."""
        try:
            raw = self.entry_path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn(f"cannot read compiled-rule cache entry {self.entry_path(key)}: {exc}")
            return None
        try:
            return self._verify(key, raw)
        except CacheEntryError as exc:
            self.stats.rebuilt += 1
            log.warning("compiled-rule cache entry %s discarded (%s); rebuilt", self.entry_path(key), exc)
            return None

    def _verify(self, key: str, raw: bytes) -> dict[str, Any]:
        secret = self._key()
        if secret is None:
            raise CacheEntryError("no cache key to check it with")
        mac, _, payload = raw.partition(b"\n")
        expected = hmac.new(secret, payload, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(mac, expected):
            raise CacheEntryError("signature does not match (truncated, changed, or another key)")
        try:
            entry = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise CacheEntryError(f"not JSON: {exc}") from exc
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
            raise CacheEntryError("written for another key, format or code version")
        if not isinstance(entry.get("rules"), list) or not isinstance(entry.get("errors"), list):
            raise CacheEntryError("missing rules or errors")
        return entry

    def write(self, key: str, entry: dict[str, Any]) -> None:
        secret = self._key()
        if secret is None:
            self.stats.write_failures += 1
            return
        payload = json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()
        data = hmac.new(secret, payload, hashlib.sha256).hexdigest().encode() + b"\n" + payload
        target = self.entry_path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, data)
        except OSError as exc:
            self.stats.write_failures += 1
            self._warn(f"cannot write the compiled-rule cache in {self.directory}: {exc}")

    def _key(self) -> bytes | None:
        """The HMAC key, created on first use; None (with a warning) when it cannot be."""
        if self._secret is not None:
            return self._secret
        path = self.directory / KEY_FILE
        try:
            self._secret = path.read_bytes()
        except FileNotFoundError:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                _create_once(path, secrets.token_bytes(32))
                self._secret = path.read_bytes()
            except OSError as exc:
                self._warn(f"cannot create the compiled-rule cache key in {self.directory}: {exc}")
                return None
        except OSError as exc:
            self._warn(f"cannot read the compiled-rule cache key {path}: {exc}")
            return None
        if len(self._secret) < 32:
            self._warn(f"compiled-rule cache key {path} is too short; the cache is not used")
            self._secret = None
        return self._secret

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("%s; rules are compiled without it (slower start)", message)

    # loading ----------------------------------------------------------------------------
    def load(self, paths: Iterable[str | Path], *, pattern: str = "**/*.yml") -> RuleSet:
        """:func:`detections.loader.load_rules` through the cache: the same rules and errors."""
        files: list[Path] = []
        ruleset = RuleSet()
        for entry in paths:
            path = Path(entry)
            if path.is_dir():
                files.extend(sorted(p for p in path.glob(pattern) if not _is_sample(p)))
            elif path.is_file():
                files.append(path)
            else:
                ruleset.errors.append(RuleError("no such rule file or directory", where=str(path)))
        loaded: dict[Path, Contents] = {}
        missing: list[tuple[Path, str, str]] = []
        for file in files:
            try:
                text = read_yaml_text(file)
            except OSError as exc:
                loaded[file] = ([], [RuleError(f"cannot read rule file: {exc}", where=str(file))])
                continue
            except ParseError as exc:
                loaded[file] = ([], [RuleError(exc.message, where=exc.where, hint=exc.hint)])
                continue
            key = self.key(file, text)
            found = self.read(key)
            contents = self._contents(file, key, found) if found is not None else None
            if contents is None:
                missing.append((file, text, key))
            else:
                self.stats.hits += 1
                loaded[file] = contents
        for (file, _text, key), built in zip(missing, self._build(missing), strict=True):
            self.stats.compiled += 1
            built["format"], built["key"] = FORMAT, key
            self.write(key, built)
            loaded[file] = _contents(file, built)
        for file in files:
            _add(ruleset, *loaded[file])
        _resolve_correlations(ruleset)
        return ruleset

    def _contents(self, path: Path, key: str, entry: dict[str, Any]) -> Contents | None:
        try:
            return _contents(path, entry)
        except (CacheEntryError, KeyError, IndexError, TypeError, ValueError) as exc:
            # signed by this key, yet not what this code writes: rebuilt all the same
            self.stats.rebuilt += 1
            log.warning("compiled-rule cache entry %s discarded (%s); rebuilt", self.entry_path(key), exc)
            return None

    def _build(self, missing: Sequence[tuple[Path, str, str]]) -> list[dict[str, Any]]:
        jobs = [(str(path), text) for path, text, _ in missing]
        if self.workers <= 1 or len(jobs) < POOL_MIN_FILES:
            return [build_entry(path, text) for path, text in jobs]
        # fork is cheapest; with other threads running (the API beside the engine) it could copy
        # a lock held by one of them, so then the workers come from a fork server
        context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "forkserver")
        with concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            chunk = max(1, len(jobs) // (self.workers * 8))
            return list(pool.map(_build_job, jobs, chunksize=chunk))


def _build_job(job: tuple[str, str]) -> dict[str, Any]:
    return build_entry(*job)


def build_entry(path: str, text: str) -> dict[str, Any]:
    """Load one rule file's text and compile its detection rules: the entry to cache."""
    ruleset = RuleSet()
    _load_documents(Path(path), text, ruleset)
    return {
        "rules": [_rule_record(loaded) for loaded in ruleset],
        "errors": [_error_record(error) for error in ruleset.errors],
    }


def _rule_record(loaded: LoadedRule) -> dict[str, Any]:
    rule = loaded.rule
    record: dict[str, Any] = {
        "id": loaded.id,
        "name": rule.name,
        "title": loaded.title,
        "level": loaded.level,
        "tags": loaded.tags,
        "line": loaded.line,
        "text": loaded.text,
        "correlation": loaded.is_correlation,
    }
    if isinstance(rule, SigmaRule):
        source = rule.logsource
        record["logsource"] = [source.product, source.category, source.service]
        try:
            processed = process_rule(loaded)
            trees = conditions(processed, loaded.where)
            # compiled here only to learn whether it compiles: its error is cached too
            compile_trees(trees, where=loaded.where)
            compile_gate_trees(trees, value_fields=ROUTING_VALUE_FIELDS, where=loaded.where)
        except RuleError as exc:
            record["error"] = _error_record(exc)
            return record
        try:
            # kept as a JSON string inside the entry: a warm start decodes it only for the
            # rules its events reach (decoding every tree was most of a warm start)
            record["trees"] = json.dumps([_tree_json(tree) for tree in trees], separators=(",", ":"))
        except CacheEntryError:
            return record  # a value this form does not hold: compiled from the text each time
        literals = literals_of(trees)
        record["literals"] = sorted(literals) if literals is not None else None
        record["needs"] = sorted(needed_fields_of(trees))
    return record


def _error_record(error: RuleError) -> dict[str, Any]:
    return {"message": error.message, "where": error.where, "hint": error.hint}


def _error_from(record: Any) -> RuleError:
    if not isinstance(record, dict) or not isinstance(record.get("message"), str):
        raise CacheEntryError("malformed error record")
    return RuleError(record["message"], where=record.get("where"), hint=record.get("hint"))


def _contents(path: Path, entry: dict[str, Any]) -> Contents:
    return [_loaded_from(path, record) for record in entry["rules"]], [
        _error_from(record) for record in entry["errors"]
    ]


def _add(ruleset: RuleSet, rules: list[LoadedRule], errors: list[RuleError]) -> None:
    """A file's rules and errors into the set (a rule id seen in an earlier file is an error)."""
    ruleset.errors.extend(errors)
    for loaded in rules:
        if loaded.id in ruleset.rules:
            ruleset.errors.append(
                RuleError(
                    f"duplicate rule id {loaded.id}",
                    where=loaded.where,
                    hint=f"already used by {ruleset.rules[loaded.id].where}",
                )
            )
            continue
        ruleset.rules[loaded.id] = loaded


def _loaded_from(path: Path, record: dict[str, Any]) -> LoadedRule:
    """A LoadedRule with the summary of a verified entry (a shape error raises)."""
    logsource = record.get("logsource") or [None, None, None]
    trees = record.get("trees")
    literals = record.get("literals")
    summary = RuleSummary(
        id=record["id"],
        name=record["name"],
        title=record["title"],
        level=record["level"],
        tags=tuple(record["tags"]),
        logsource=(logsource[0], logsource[1], logsource[2]),
        correlation=bool(record["correlation"]),
        trees=_builder(trees) if trees is not None else None,
        literals=frozenset(literals) if literals is not None else None,
        needs=frozenset(record.get("needs") or ()),
        error=_error_from(record["error"]) if record.get("error") is not None else None,
    )
    return LoadedRule(None, path, record["line"], record["text"], summary=summary)


def _builder(trees: str) -> Callable[[], list[object]]:
    """The pySigma trees of an entry's JSON, built when the rule is first matched."""
    if not isinstance(trees, str):
        raise CacheEntryError("trees are not a JSON string")
    return lambda: [_tree_from(tree) for tree in json.loads(trees)]


# condition trees <-> JSON ---------------------------------------------------------------
_WILDCARDS = {SpecialChars.WILDCARD_MULTI: "*", SpecialChars.WILDCARD_SINGLE: "?"}
_WILDCARD_OF = {text: char for char, text in _WILDCARDS.items()}


def _tree_json(node: object) -> Any:
    if isinstance(node, ConditionAND | ConditionOR | ConditionNOT):
        kind = {ConditionAND: "and", ConditionOR: "or", ConditionNOT: "not"}[type(node)]
        return [kind, [_tree_json(arg) for arg in node.args]]
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return ["f", node.field, _value_json(node.value)]
    if isinstance(node, ConditionValueExpression):
        return ["k", _value_json(node.value)]
    if node is None:
        return None
    raise CacheEntryError(f"condition node {type(node).__name__}")


def _string_json(value: SigmaString) -> list[Any]:
    parts: list[Any] = []
    for part in value.s:
        if isinstance(part, str):
            parts.append(part)
        elif part in _WILDCARDS:
            parts.append({"w": _WILDCARDS[part]})
        else:  # a placeholder: the rule did not compile, never here
            raise CacheEntryError(f"string part {part!r}")
    return parts


def _value_json(value: object) -> dict[str, Any]:
    # exact types: subclasses (SigmaTimestampPart of SigmaNumber, cased strings) first
    if type(value) is SigmaCasedString:
        return {"cased": _string_json(value)}
    if type(value) is SigmaString:
        return {"s": _string_json(value)}
    if type(value) is SigmaTimestampPart:
        return {"ts": value.timestamp_part.name, "n": value.number}
    if type(value) is SigmaNumber:
        return {"n": value.number}
    if type(value) is SigmaBool:
        return {"b": value.boolean}
    if type(value) is SigmaNull:
        return {"null": True}
    if type(value) is SigmaExists:
        return {"exists": value.exists}
    if type(value) is SigmaRegularExpression:
        return {"re": _string_json(value.regexp), "flags": sorted(flag.name for flag in value.flags)}
    if type(value) is SigmaCompareExpression:
        return {"cmp": value.op.name, "n": value.number.number}
    if type(value) is SigmaCIDRExpression:
        return {"cidr": value.cidr}
    if type(value) is SigmaFieldReference:
        return {"ref": value.field, "sw": value.starts_with, "ew": value.ends_with}
    if type(value) is SigmaExpansion:
        return {"exp": [_value_json(inner) for inner in value.values]}
    raise CacheEntryError(f"value of type {type(value).__name__}")


def _tree_from(data: Any) -> Any:
    if data is None:
        return None
    kind = data[0]
    if kind in ("and", "or", "not"):
        cls = {"and": ConditionAND, "or": ConditionOR, "not": ConditionNOT}[kind]
        return cls(args=[_tree_from(arg) for arg in data[1]])
    if kind == "f":
        return ConditionFieldEqualsValueExpression(data[1], _value_from(data[2]))
    if kind == "k":
        return ConditionValueExpression(_value_from(data[1]))
    raise CacheEntryError(f"condition node {kind!r}")


def _string_from(parts: list[Any], cls: type[SigmaString] = SigmaString) -> SigmaString:
    # set the parts as they were: parsing them again as Sigma text would re-read escapes
    value = cls.__new__(cls)
    value.s = [part if isinstance(part, str) else _WILDCARD_OF[part["w"]] for part in parts]
    value.original = ""
    return value


def _value_from(data: dict[str, Any]) -> Any:
    if "s" in data:
        return _string_from(data["s"])
    if "cased" in data:
        return _string_from(data["cased"], SigmaCasedString)
    if "ts" in data:
        return SigmaTimestampPart(TimestampPart[data["ts"]], data["n"])
    if "cmp" in data:
        return SigmaCompareExpression(SigmaNumber(data["n"]), CompareOperators[data["cmp"]])
    if "n" in data:
        return SigmaNumber(data["n"])
    if "b" in data:
        return SigmaBool(data["b"])
    if "null" in data:
        return SigmaNull()
    if "exists" in data:
        return SigmaExists(data["exists"])
    if "re" in data:
        regex = SigmaRegularExpression.__new__(SigmaRegularExpression)
        regex.regexp = _string_from(data["re"])
        regex.flags = {SigmaRegularExpressionFlag[name] for name in data["flags"]}
        return regex
    if "cidr" in data:
        return SigmaCIDRExpression(data["cidr"])
    if "ref" in data:
        return SigmaFieldReference(data["ref"], data["sw"], data["ew"])
    if "exp" in data:
        return SigmaExpansion([_value_from(inner) for inner in data["exp"]])
    raise CacheEntryError(f"value {sorted(data)}")


# files ------------------------------------------------------------------------------------
def _atomic_write(target: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _create_once(target: Path, data: bytes) -> None:
    """Write ``target`` whole, unless another process created it first (then keep theirs)."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


__all__ = ["CacheStats", "RuleCache", "build_entry", "code_version"]
