"""The audit trail: append-only records in a keyed hash chain, anchored outside the store.

Each record has a sequence number (its document id, so two writers cannot both take the same
place: the second gets a Conflict and retries on top), the MAC of the record before it, and its
own MAC: HMAC-SHA256 over the previous MAC and the record, with a key kept in a file outside the
store (``audit.key_file``). Someone who can write the store but not read the key can neither
edit a record nor re-seal the records after it.

Deleting the newest records leaves a shorter chain that is still intact, so the head is also
*anchored*: ``{store, seq, hash, time}`` signed with the same key and appended to
``audit.anchor_file`` (and optionally sent to syslog) every ``anchor_every_records`` records,
every ``anchor_every_minutes`` minutes and at start and shutdown of ``soc up``. Verification
compares the chain with every anchor: a store that ends before an anchored record, or holds a
different record at an anchored place, was cut back or rewritten.

Records written before the key existed (plain SHA-256, no ``seal``) are *legacy*: they are
checked the old way as long as they form the start of the chain, and the first sealed record's
MAC covers the last legacy hash, so rewriting them breaks the chain there. The first start with
a key anchors the head, which covers a store holding legacy records only. An unsealed record
after a sealed one is tampering.

The key is resolved per store: :func:`configure` binds the settings' files to a store
(``create_app``, ``soc up`` and the CLI do); a store used before that takes them from the
default settings (``load_settings()``, so ``<data_dir>/secrets/audit.key``). No API route
updates or deletes audit records.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from soc_core.config import Settings, load_settings
from soc_core.errors import ConfigError, Conflict, NotFound
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store
from soc_core.store.base import MAX_LIST_SIZE, DocWrite

log = logging.getLogger("canhgac.audit")

GENESIS = "0" * 64
MAX_TEXT = 2000
SEAL = "hmac-sha256"
KEY_BYTES = 32
MAX_PROBLEMS = 50
SYSLOG_PRIORITY = 86  # facility authpriv (10) * 8 + severity info (6)

# The client's own X-Request-ID for the request being served (set by the API's middleware):
# every record made while serving it carries it, apart from the server's request id.
CLIENT_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_request_id", default=None)
# False in a playbook step's thread (the runner sets it): the workflow services' writes and audit
# records there skip the Elasticsearch refresh (lists see them within its refresh interval; reads
# by id at once) — the dearest part of a write, and four of a five-step run's writes.
IMMEDIATE_REFRESH: contextvars.ContextVar[bool] = contextvars.ContextVar("immediate_refresh", default=True)


def refreshing() -> bool:
    """Whether a workflow write made now should be searchable at once (see IMMEDIATE_REFRESH)."""
    return IMMEDIATE_REFRESH.get()


# --- the key and the anchors, per store ------------------------------------------------------


def _read_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key: {exc.strerror}", where=str(path)) from exc
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError("the audit key is not hex", where=str(path), hint="restore it from backup") from exc
    if len(key) < KEY_BYTES:
        raise ConfigError(f"the audit key is shorter than {KEY_BYTES} bytes", where=str(path))
    return key


def _create_key(path: Path) -> None:
    """Write a new random key, readable by its owner only. Two processes starting at once both
    write a temporary file and link it into place: one wins, both then read the winner."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(KEY_BYTES) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    except OSError as exc:
        raise ConfigError(f"cannot create the audit key: {exc.strerror}", where=str(path)) from exc
    log.info("audit key created", extra={"path": str(path)})


def key_id(key: bytes) -> str:
    """A short public name for a key, so a report can say "sealed with another key"."""
    return hmac.new(key, b"canhgac audit key id", hashlib.sha256).hexdigest()[:16]


class _FairLock:
    """A lock taken in the order asked for: a thread appending many records in a row (the
    playbook runner starting a page of runs) does not starve the others, as a plain lock lets
    the thread that just released it take it again at once."""

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turns:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._turns.wait()

    def __exit__(self, *exc: object) -> None:
        with self._turns:
            self._serving += 1
            self._turns.notify_all()


@dataclass
class _Trail:
    """The files one store's trail uses, the key once read, and the last head anchored here."""

    key_file: Path
    anchor_file: Path
    anchor_syslog: str | None
    anchor_every: int
    key: bytes | None = None
    last_anchor: tuple[int, str] | None = None
    # the last record this process appended (seq, hash): where the next one most likely goes,
    # read by id (real-time), so a record written without a refresh is never missed
    head: tuple[int, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # one append at a time per process: threads racing for the head only make each other read
    # and retry, and a busy one (the playbook runner's threads) could lose 50 times running
    appending: _FairLock = field(default_factory=_FairLock)

    def load_key(self, *, create: bool) -> bytes:
        with self.lock:
            if self.key is None:
                if create and not self.key_file.exists():
                    _create_key(self.key_file)
                self.key = _read_key(self.key_file)
            return self.key


_TRAILS: weakref.WeakKeyDictionary[Store, _Trail] = weakref.WeakKeyDictionary()
_TRAILS_LOCK = threading.Lock()


def configure(store: Store, settings: Settings) -> None:
    """Use these settings' key and anchor files for this store's trail from now on."""
    with _TRAILS_LOCK:
        _TRAILS[store] = _Trail(
            key_file=settings.audit_key_file,
            anchor_file=settings.audit_anchor_file,
            anchor_syslog=settings.audit.anchor_syslog,
            anchor_every=settings.audit.anchor_every_records,
        )


def _trail(store: Store) -> _Trail:
    with _TRAILS_LOCK:
        trail = _TRAILS.get(store)
    if trail is None:
        configure(store, load_settings())
        with _TRAILS_LOCK:
            trail = _TRAILS[store]
    return trail


def ensure_key(store: Store) -> str:
    """Create the store's audit key if there is none yet (first start); returns its key id."""
    return key_id(_trail(store).load_key(create=True))


# --- records ---------------------------------------------------------------------------------


def _clip(value: Any) -> Any:
    """User-supplied text stays one encoded record: strings are length-capped, never parsed."""
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, Mapping):
        return {str(k)[:200]: _clip(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip(v) for v in value[:200]]
    return value


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def _digest(previous: str, record: Mapping[str, Any]) -> str:
    """The legacy (unkeyed) link: anyone can recompute it, which is why records are now sealed."""
    return hashlib.sha256(previous.encode() + _canonical(record)).hexdigest()


def _seal(key: bytes, previous: str, record: Mapping[str, Any]) -> str:
    return hmac.new(key, previous.encode() + _canonical(record), hashlib.sha256).hexdigest()


def _end(store: Store, body: Mapping[str, Any]) -> tuple[int, str]:
    """Where the chain stands after this stored record: itself, or for a batch's first record
    the batch's last. A batch whose copies a crash cut short gets them written now."""
    batch = body.get("batch")
    if not batch:
        return int(body["seq"]), str(body["hash"])
    last = batch[-1]
    try:
        store.get_doc("audit", f"{int(last['seq']):012d}")
    except NotFound:
        _write_copies(store, batch, refresh=True)
    return int(last["seq"]), str(last["hash"])


def _write_copies(store: Store, copies: Sequence[Mapping[str, Any]], *, refresh: bool) -> None:
    """A batch's records after its first, each at its own place (reserved by the first): one
    bulk write. A place already taken holds the same record (written by a repair meanwhile)."""
    store.write_docs("audit", [DocWrite(f"{int(c['seq']):012d}", c) for c in copies], refresh=refresh)


def _head(store: Store) -> tuple[int, str]:
    page = store.list_docs("audit", sort="seq", descending=True, size=1)
    if not page.items:
        return 0, GENESIS
    return _end(store, page.items[0].body)


def _record_at(store: Store, seq: int) -> tuple[int, str] | None:
    """The chain's end after the record at ``seq`` (read by id), None if the place is free."""
    try:
        return _end(store, store.get_doc("audit", f"{seq:012d}").body)
    except NotFound:
        return None


def _likely_head(store: Store, trail: _Trail) -> tuple[int, str]:
    """The head to append to: the last record this process wrote if it is still there (one read
    by id), else the newest searchable one."""
    cached = trail.head
    if cached is not None and _record_at(store, cached[0]) == cached:
        return cached
    return _head(store)


def _after(store: Store, seq: int, previous: str) -> tuple[int, str]:
    """The real head at or after ``seq``: records appended since (by any process, refreshed or
    not) are followed by id, a batch's first record leading past the places it reserved."""
    while (found := _record_at(store, seq + 1)) is not None:
        seq, previous = found
    return seq, previous


def entry(
    *,
    actor: str,
    action: str,
    tenant: str | None = None,
    target: str | None = None,
    outcome: str = "success",
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
    source_ip: str | None = None,
    details: Mapping[str, Any] | None = None,
    entry_id: str | None = None,
) -> dict[str, Any]:
    """One record's content, made now (its time), appended later by :func:`record_batch`.
    ``entry_id``: a unique name the writer can search for, to append it only once after a
    crash (:func:`appended_entries`)."""
    made: dict[str, Any] = {
        "at": format_timestamp(utcnow()),
        "actor": actor,
        "action": action,
        "tenant": tenant,
        "target": target,
        "outcome": outcome,
        "before": before,
        "after": after,
        "request_id": request_id,
        "client_request_id": CLIENT_REQUEST_ID.get(),
        "source_ip": source_ip,
        "details": dict(details or {}),
    }
    if entry_id is not None:
        made["entry_id"] = entry_id
    return made


def record(
    store: Store,
    *,
    actor: str,
    action: str,
    tenant: str | None = None,
    target: str | None = None,
    outcome: str = "success",
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
    source_ip: str | None = None,
    details: Mapping[str, Any] | None = None,
    refresh: bool | None = None,
) -> int:
    """Append one sealed record; returns its sequence number. ``refresh=False`` (a writer
    making many records) leaves it unsearchable until the store's next refresh; the chain is
    followed by id, so appending stays correct either way. ``None``: :func:`refreshing`."""
    made = entry(
        actor=actor,
        action=action,
        tenant=tenant,
        target=target,
        outcome=outcome,
        before=before,
        after=after,
        request_id=request_id,
        source_ip=source_ip,
        details=details,
    )
    return record_batch(store, [made], refresh=refreshing() if refresh is None else refresh)[0]


def record_batch(store: Store, entries: Sequence[Mapping[str, Any]], *, refresh: bool = True) -> list[int]:
    """Append records (from :func:`entry`) as one batch; their sequence numbers.

    Each record is chained and sealed as if appended alone. The batch takes its place with one
    create — its first record, carrying the others (``batch``) under a MAC of their own
    (``batch_seal``) — which reserves the places after it; the others are then copied to those
    places in one bulk write, so every record is listed and searched on its own. Two requests
    whatever the size. A crash between the two loses nothing: the first record holds the rest,
    and the next append that meets it (or ``soc up``'s start, anchoring the head) writes the
    missing copies."""
    if not entries:
        return []
    trail = _trail(store)
    key = trail.load_key(create=True)
    sealed = {"seal": SEAL, "key_id": key_id(key)}
    contents = [_clip({**dict(made), **sealed}) for made in entries]
    with trail.appending:
        seq, previous = _likely_head(store, trail)
        for _ in range(50):
            chain = _chain(key, seq, previous, contents)
            first = dict(chain[0])
            if len(chain) > 1:
                first["batch"] = chain[1:]
                first["batch_seal"] = _batch_seal(key, chain[0]["hash"], chain[1:])
            try:
                store.create_doc("audit", first, doc_id=f"{seq + 1:012d}", refresh=refresh)
            except Conflict:  # another process took this place; chain onto theirs (and any after it)
                seq, previous = _after(store, seq, previous)
                continue
            if len(chain) > 1:
                _write_copies(store, chain[1:], refresh=refresh)
            trail.head = (int(chain[-1]["seq"]), str(chain[-1]["hash"]))
            break
        else:
            raise Conflict("could not append to the audit trail after 50 tries")
    numbers = [int(body["seq"]) for body in chain]
    if numbers[-1] // trail.anchor_every > (numbers[0] - 1) // trail.anchor_every:  # an anchor place crossed
        _write_anchor(store, trail, key, numbers[-1], str(chain[-1]["hash"]))
    return numbers


def _chain(key: bytes, seq: int, previous: str, contents: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records linked and sealed one after another from (seq, previous)."""
    chain = []
    for offset, content in enumerate(contents, 1):
        body = {**content, "seq": seq + offset, "prev_hash": previous}
        body["hash"] = previous = _seal(key, previous, body)
        chain.append(body)
    return chain


def _batch_seal(key: bytes, first_hash: str, copies: Sequence[Mapping[str, Any]]) -> str:
    return _seal(key, first_hash, {"batch": list(copies)})


def appended_entries(store: Store, entry_ids: Sequence[str]) -> set[str]:
    """Which of these entry ids are in the trail already (a batch counts whole once its first
    record is stored). A search: refreshes first, so records written without a refresh count."""
    if not entry_ids:
        return set()
    store.refresh()
    found: set[str] = set()
    for start in range(0, len(entry_ids), 500):
        wanted = list(entry_ids[start : start + 500])
        page = store.list_docs("audit", filters={"entry_id": wanted}, sort="seq", size=MAX_LIST_SIZE)
        for doc in page.items:
            found.add(str(doc.body.get("entry_id")))
            found.update(str(c.get("entry_id")) for c in doc.body.get("batch") or [])
    return found


# --- anchors ---------------------------------------------------------------------------------


def _write_anchor(store: Store, trail: _Trail, key: bytes, seq: int, head_hash: str) -> dict[str, Any] | None:
    """Append a signed anchor of (seq, hash). A failure to write it is logged, never raised: the
    change being audited has happened, and the next anchor covers this head too."""
    anchor: dict[str, Any] = {
        "store": store.location,
        "seq": seq,
        "hash": head_hash,
        "time": format_timestamp(utcnow()),
        "key_id": key_id(key),
    }
    anchor["mac"] = hmac.new(key, _canonical(anchor), hashlib.sha256).hexdigest()
    line = json.dumps(anchor, sort_keys=True) + "\n"
    with trail.lock:
        try:
            trail.anchor_file.parent.mkdir(parents=True, exist_ok=True)
            # one write on an O_APPEND descriptor: several processes can share the file
            fd = os.open(trail.anchor_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("audit anchor not written", extra={"path": str(trail.anchor_file), "error": str(exc)})
            return None
        if trail.last_anchor is None or seq >= trail.last_anchor[0]:
            trail.last_anchor = (seq, head_hash)
    if trail.anchor_syslog:
        _send_syslog(trail.anchor_syslog, line.strip())
    return anchor


def _send_syslog(address: str, line: str) -> None:
    message = f"<{SYSLOG_PRIORITY}>canhgac-audit: {line}".encode()
    try:
        if address.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(address)
                sock.send(message)
            return
        host, _, port = address.rpartition(":")
        family, kind, proto, _, target = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.sendto(message, target)
    except OSError as exc:
        log.error("audit anchor not sent to syslog", extra={"address": address, "error": str(exc)})


def anchor_head(store: Store, *, if_moved: bool = False) -> dict[str, Any] | None:
    """Anchor the store's current head (at start, on a schedule, at shutdown). With
    ``if_moved``, skip when this process anchored the same head last time."""
    trail = _trail(store)
    key = trail.load_key(create=True)
    seq, head_hash = _head(store)
    if if_moved and trail.last_anchor == (seq, head_hash):
        return None
    return _write_anchor(store, trail, key, seq, head_hash)


# --- verification ----------------------------------------------------------------------------

Status = Literal["ok", "tampered", "unverifiable"]
AnchorStatus = Literal["ok", "none", "truncated", "rewritten", "forged"]


@dataclass(frozen=True)
class Problem:
    seq: int
    reason: str

    def render(self) -> str:
        return f"record {self.seq}: {self.reason}"


@dataclass
class VerifyReport:
    """What :func:`verify_chain` found: ``status`` is ``ok``, ``tampered`` (``problems`` says
    where first) or ``unverifiable`` (``reason`` says why: no key, unreadable anchors)."""

    status: Status = "ok"
    records: int = 0
    head_seq: int = 0
    legacy_records: int = 0
    problems: list[Problem] = field(default_factory=list)
    anchor_status: AnchorStatus = "none"
    latest_anchor: dict[str, Any] | None = None
    anchors_checked: int = 0
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def first_bad_seq(self) -> int | None:
        return min((p.seq for p in self.problems), default=None)

    def add(self, seq: int, reason: str) -> None:
        self.status = "tampered"
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, reason))

    def as_dict(self) -> dict[str, Any]:
        first = min(self.problems, key=lambda p: p.seq) if self.problems else None
        return {
            "ok": self.ok,
            "status": self.status,
            "records": self.records,
            "head_seq": self.head_seq,
            "legacy_records": self.legacy_records,
            "first_bad_seq": first.seq if first else None,
            "first_bad_reason": first.reason if first else None,
            "problems": [{"seq": p.seq, "reason": p.reason} for p in self.problems],
            "anchor": {
                "status": self.anchor_status,
                "checked": self.anchors_checked,
                "latest": self.latest_anchor,
            },
            "reason": self.reason,
        }


def _anchors(path: Path, location: str, key: bytes, report: VerifyReport) -> dict[int, dict[str, Any]] | None:
    """This store's valid anchors by seq; forged or unreadable lines go into the report."""
    try:
        with path.open(encoding="utf-8") as lines:
            raw = list(lines)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        report.status = "unverifiable"
        report.reason = f"{path}: cannot read the audit anchors: {exc.strerror}"
        return None
    anchors: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(raw, 1):
        try:
            anchor = json.loads(line)
            mine = anchor["store"] == location
            claimed = str(anchor.pop("mac"))
            seq = int(anchor["seq"])
        except (ValueError, KeyError, TypeError, AttributeError):
            report.anchor_status = "forged"
            report.add(0, f"{path}:{number}: not an anchor line (the anchor file was edited)")
            continue
        if not mine:
            continue
        if not hmac.compare_digest(hmac.new(key, _canonical(anchor), hashlib.sha256).hexdigest(), claimed):
            report.anchor_status = "forged"
            report.add(seq, f"{path}:{number}: anchor signature does not match (forged, or another key)")
            continue
        if seq not in anchors or anchor["time"] > anchors[seq]["time"]:
            anchors[seq] = anchor
    return anchors


def _walk(store: Store) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        page = store.list_docs("audit", sort="seq", descending=False, size=500, cursor=cursor)
        for doc in page.items:
            yield dict(doc.body)
        cursor = page.next_cursor
        if cursor is None:
            return


def _missing_copies(
    report: VerifyReport,
    carried: dict[int, tuple[int, dict[str, Any]]],
    expected: int,
    found: int | None,
    previous: str,
) -> tuple[str, int]:
    """Places a batch reserved but that hold no record (before ``found``, or at the end): the
    batch carries them, so nothing is lost, but each is reported — a copy was deleted, or a
    crash came between the batch's two writes (the next append writes them again). Returns
    the link and the place the walk goes on from."""
    while expected in carried and (found is None or expected < found):
        first, copy = carried.pop(expected)
        report.add(
            expected,
            f"missing: its batch (record {first}) carries it, but it is not stored on its own "
            "(deleted, or a write cut short)",
        )
        report.records += 1
        previous = str(copy.get("hash"))
        expected += 1
    return previous, expected


def verify_chain(store: Store) -> VerifyReport:
    """Check every record's link and seal, then the chain against this store's anchors."""
    trail = _trail(store)
    report = VerifyReport()
    try:
        key = trail.load_key(create=False)
    except ConfigError as exc:
        report.status = "unverifiable"
        report.reason = f"{exc.render()} — the audit key is needed to check the seals; point audit.key_file at it"
        return report
    anchors = _anchors(trail.anchor_file, store.location, key, report)
    if anchors is None:
        return report
    report.anchors_checked = len(anchors)
    store.refresh()  # the walk searches: records appended without a refresh (a batch's copies) too
    previous = GENESIS
    expected = 1
    sealed_seen = False
    carried: dict[int, tuple[int, dict[str, Any]]] = {}  # place -> (its batch's first, the record carried)
    for body in _walk(store):
        stored_hash = str(body.pop("hash", ""))
        batch = body.pop("batch", None)
        batch_seal = body.pop("batch_seal", None)
        seq = body.get("seq")
        if not isinstance(seq, int):
            report.add(expected, f"record after {expected - 1} has no sequence number")
            seq = expected
        elif seq != expected:
            if expected in carried:
                previous, expected = _missing_copies(report, carried, expected, seq, previous)
            if seq != expected:
                report.add(expected, f"expected here, found record {seq} instead (records deleted or moved)")
        report.records += 1
        if body.get("prev_hash") != previous:
            report.add(seq, "link to the previous record is broken")
        if "seal" not in body:
            if sealed_seen:
                report.add(seq, "unsealed record after sealed ones: rewritten without the key")
            elif _digest(str(body.get("prev_hash")), body) != stored_hash:
                report.add(seq, "content does not match its hash (edited)")
            report.legacy_records += 1
        else:
            sealed_seen = True
            if body.get("seal") != SEAL:
                report.add(seq, f"unknown seal {body.get('seal')!r}")
            elif not hmac.compare_digest(_seal(key, str(body.get("prev_hash")), body), stored_hash):
                other = "" if body.get("key_id") == key_id(key) else f"; it names key {body.get('key_id')!r}"
                report.add(seq, f"content does not match its MAC (edited, or re-sealed without the key{other})")
        if seq in carried:
            first, copy = carried.pop(seq)
            if _canonical(copy) != _canonical({**body, "hash": stored_hash}):
                report.add(seq, f"differs from the record its batch (record {first}) carries (edited)")
        if batch is not None:
            if not isinstance(batch, list) or not isinstance(batch_seal, str):
                report.add(seq, "its batch is not a list of records with a seal (edited)")
            elif not hmac.compare_digest(_batch_seal(key, stored_hash, batch), batch_seal):
                report.add(seq, "the records its batch carries do not match their MAC (edited, removed or reordered)")
            else:
                carried.update((int(c["seq"]), (seq, dict(c))) for c in batch)
        anchor = anchors.get(seq)
        if anchor is not None and anchor["hash"] != stored_hash:
            report.anchor_status = "rewritten"
            report.add(seq, f"differs from the record anchored at {anchor['time']} (rewritten)")
        previous = stored_hash
        expected = seq + 1
    if expected in carried:  # the head batch's last records are not stored on their own
        previous, expected = _missing_copies(report, carried, expected, None, previous)
    report.head_seq = expected - 1
    if anchors:
        latest = anchors[max(anchors)]
        report.latest_anchor = {k: latest[k] for k in ("seq", "hash", "time")}
        if latest["seq"] > report.head_seq:
            report.anchor_status = "truncated"
            report.add(
                report.head_seq + 1,
                f"truncated: the trail ends at record {report.head_seq}, "
                f"but record {latest['seq']} was anchored at {latest['time']}",
            )
        elif report.anchor_status == "none":
            report.anchor_status = "ok"
    return report


# --- refused cross-agency attempts -----------------------------------------------------------


class RefusalLimiter:
    """At most ``per_minute`` cross-agency records per principal per minute, so an attacker
    cannot flood the trail; the attempts left out are counted into the next record."""

    MAX_PRINCIPALS = 10_000

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, list[float]] = {}  # principal -> [window start, recorded, skipped]
        self._lock = threading.Lock()

    def admit(self, principal: str, now: float | None = None) -> int | None:
        """``None``: leave this attempt out. Otherwise record it, with this many left out before."""
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._windows.get(principal)
            if window is None or now - window[0] >= 60:
                skipped = int(window[2]) if window else 0
                if len(self._windows) >= self.MAX_PRINCIPALS:
                    self._windows = {p: w for p, w in self._windows.items() if now - w[0] < 60}
                self._windows[principal] = [now, 1, 0]
                return skipped
            if window[1] < self.per_minute:
                window[1] += 1
                skipped, window[2] = int(window[2]), 0
                return skipped
            window[2] += 1
            return None


def record_cross_tenant(
    store: Store,
    limiter: RefusalLimiter,
    *,
    actor: str,
    actor_tenants: list[str],
    target: str,
    owner: str | None,
    operation: str,
    request_id: str | None,
    source_ip: str | None,
) -> None:
    """A refused attempt on another agency's object, as a ``security.cross_tenant`` record in
    the owning agency's part of the trail (its admins see who tried)."""
    skipped = limiter.admit(actor)
    if skipped is None:
        return
    record(
        store,
        actor=actor,
        action="security.cross_tenant",
        outcome="denied",
        tenant=owner,
        target=target,
        request_id=request_id,
        source_ip=source_ip,
        details={"tenant_asked": owner, "actor_tenants": actor_tenants, "operation": operation, "skipped": skipped},
    )


__all__ = [
    "CLIENT_REQUEST_ID",
    "IMMEDIATE_REFRESH",
    "Problem",
    "RefusalLimiter",
    "VerifyReport",
    "anchor_head",
    "appended_entries",
    "configure",
    "ensure_key",
    "entry",
    "key_id",
    "record",
    "record_batch",
    "record_cross_tenant",
    "refreshing",
    "verify_chain",
]
