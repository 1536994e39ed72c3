"""Windows event log records → flat ECS fields, as Winlogbeat names them.

Three shapes of input, told apart by their keys:

* **EVTX JSON** (``{"Event": {"System": …, "EventData": …}}``), as the ``evtx`` package renders
  a record of a ``.evtx`` file (see :mod:`sensors.sources.evtx`);
* **Winlogbeat** JSON lines (``{"winlog": {"channel": …, "event_data": …}, …}``), nested ECS;
* **NXLog** ``to_json()`` lines (``{"EventID": …, "Channel": …, "SourceName": …}``), with the
  event data as top-level keys.

Every record gives ``event.dataset = "windows.<channel>"`` (``security``, ``sysmon``,
``powershell``, ``powershell_classic``, ``system``, ``application``, else the channel name
without ``Microsoft-Windows-`` and ``/Operational``), ``event.code`` (the event id as a string),
``winlog.channel/event_id/computer_name/record_id/provider_name``, every EventData field as
``winlog.event_data.<Name>`` and the ECS fields Winlogbeat derives from them
(``process.command_line``, ``process.executable``, ``process.parent.executable``,
``user.name`` — ``SubjectUserName`` on Security events —, ``source.ip``, ``file.path`` …), so
the detection engine's ``ecs_windows`` field mapping finds what SigmaHQ rules ask for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sensors.parsers.context import Fields, ParseContext
from soc_core.errors import ParseError
from soc_core.events import flatten, parse_timestamp

DATASET = "windows.unknown"

CHANNEL_DATASETS = {
    "security": "security",
    "system": "system",
    "application": "application",
    "microsoft-windows-sysmon/operational": "sysmon",
    "microsoft-windows-powershell/operational": "powershell",
    "windows powershell": "powershell_classic",
    "powershellcore/operational": "powershell",
}
# A record without a channel (some exports) takes it from its provider.
PROVIDER_CHANNELS = {
    "microsoft-windows-sysmon": "Microsoft-Windows-Sysmon/Operational",
    "microsoft-windows-security-auditing": "Security",
    "microsoft-windows-powershell": "Microsoft-Windows-PowerShell/Operational",
}
_NIL = frozenset({"", "-", "::", "0.0.0.0"})  # noqa: S104 - "no address" as Windows writes it
_DATASET_UNSAFE = re.compile(r"[^a-z0-9_]+")
_HASH = re.compile(r"(?P<kind>[A-Za-z0-9]+)=(?P<value>[0-9A-Fa-f]+)")
_NXLOG_SYSTEM = frozenset(
    {"EventTime", "EventReceivedTime", "Hostname", "Keywords", "EventType", "SeverityValue", "Severity",
     "EventID", "SourceName", "ProviderGuid", "Version", "Task", "OpcodeValue", "RecordNumber",
     "ProcessID", "ThreadID", "Channel", "Category", "Opcode", "Message", "SourceModuleName",
     "SourceModuleType", "Domain", "AccountName", "UserID", "AccountType", "ActivityID", "Level",
     "ERROR_EVT_UNRESOLVED"}
)  # fmt: skip


def parse(line: str, ctx: ParseContext) -> Fields:
    """A Winlogbeat, NXLog or EVTX-JSON line; :class:`ParseError` for anything else."""
    try:
        document = json.loads(line)
    except ValueError as exc:
        raise ParseError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ParseError("a Windows event must be a JSON object")
    if isinstance(document.get("Event"), dict):
        return from_evtx(document)
    if isinstance(document.get("winlog"), dict):
        return from_winlogbeat(document)
    if "EventID" in document and ("Channel" in document or "SourceName" in document):
        return from_nxlog(document, ctx)
    raise ParseError("not a Windows event (no Event, winlog or EventID/Channel keys)")


# ------------------------------------------------------------------------------ shapes
def from_evtx(document: Mapping[str, Any]) -> Fields:
    """Fields of one record as rendered by the ``evtx`` package (``records_json``)."""
    event = document["Event"]
    system = event.get("System") or {}
    if not isinstance(system, dict):
        raise ParseError("EVTX record without a System element")
    provider = _attributes(system.get("Provider"))
    event_id = system.get("EventID")
    if isinstance(event_id, dict):
        event_id = event_id.get("#text")
    created = _attributes(system.get("TimeCreated")).get("SystemTime")
    execution = _attributes(system.get("Execution"))
    fields = _system_fields(
        channel=system.get("Channel"),
        event_id=event_id,
        computer=system.get("Computer"),
        record_id=system.get("EventRecordID"),
        provider=provider.get("Name"),
        timestamp=created,
    )
    if provider.get("Guid"):
        fields["winlog.provider_guid"] = str(provider["Guid"])
    for name, key in (("ProcessID", "winlog.process.pid"), ("ThreadID", "winlog.process.thread.id")):
        if isinstance(execution.get(name), int):
            fields[key] = execution[name]
    user = _attributes(system.get("Security")).get("UserID")
    if user:
        fields["winlog.user.identifier"] = str(user)
    for name, key in (("Level", "winlog.level"), ("Task", "winlog.task"), ("Opcode", "winlog.opcode")):
        if system.get(name) is not None and not isinstance(system.get(name), dict):
            fields[key] = str(system[name])
    data = _evtx_event_data(event.get("EventData"))
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        for element in user_data.values():
            if isinstance(element, dict):
                for name, value in element.items():
                    if not name.startswith("#") and _scalar(value):
                        fields[f"winlog.user_data.{name}"] = _text(value)
    return _with_event_data(fields, data)


def from_winlogbeat(document: Mapping[str, Any]) -> Fields:
    """A Winlogbeat document: flattened, with our ECS derivations added where missing."""
    flat = flatten(document)
    winlog = document["winlog"]
    data = winlog.get("event_data") if isinstance(winlog.get("event_data"), dict) else {}
    fields = _system_fields(
        channel=winlog.get("channel"),
        event_id=winlog.get("event_id") or flat.get("event.code"),
        computer=winlog.get("computer_name") or flat.get("host.name"),
        record_id=winlog.get("record_id"),
        provider=winlog.get("provider_name"),
        timestamp=flat.get("@timestamp"),
    )
    derived = _with_event_data(fields, {str(k): v for k, v in data.items()})
    for key, value in flat.items():
        if key.startswith("winlog.event_data.") or key in ("@timestamp", "event.dataset", "organization.id"):
            continue
        derived.setdefault(key, value)
    return derived


def from_nxlog(document: Mapping[str, Any], ctx: ParseContext) -> Fields:
    """An NXLog ``im_msvistalog`` record written with ``to_json()``."""
    stamp = document.get("EventTime")
    timestamp = None
    if isinstance(stamp, str):
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            timestamp = moment if moment.tzinfo else moment.replace(tzinfo=ctx.tz)
    fields = _system_fields(
        channel=document.get("Channel"),
        event_id=document.get("EventID"),
        computer=document.get("Hostname"),
        record_id=document.get("RecordNumber"),
        provider=document.get("SourceName"),
        timestamp=timestamp,
    )
    if isinstance(document.get("Message"), str):
        fields["message"] = document["Message"]
    data = {k: v for k, v in document.items() if k not in _NXLOG_SYSTEM}
    return _with_event_data(fields, data)


# ----------------------------------------------------------------------------- helpers
def dataset_for(channel: str | None) -> str:
    """``windows.<short channel name>``; a valid dataset for any channel string."""
    key = (channel or "unknown").lower()
    short = CHANNEL_DATASETS.get(key)
    if short is None:
        key = key.removeprefix("microsoft-windows-").removesuffix("/operational")
        short = _DATASET_UNSAFE.sub("_", key).strip("_")[:60] or "unknown"
    return f"windows.{short}"


def _system_fields(
    *,
    channel: object,
    event_id: object,
    computer: object,
    record_id: object,
    provider: object,
    timestamp: object,
) -> Fields:
    if event_id is None or not str(event_id).strip().isdigit():
        raise ParseError(f"Windows event without a numeric event id ({event_id!r})")
    if not channel and isinstance(provider, str):
        channel = PROVIDER_CHANNELS.get(provider.lower())
    code = str(int(str(event_id).strip()))
    fields: Fields = {
        "event.dataset": dataset_for(str(channel) if channel else (str(provider) if provider else None)),
        "event.module": "windows",
        "event.kind": "event",
        "event.code": code,
        "winlog.event_id": code,
    }
    if channel:
        fields["winlog.channel"] = str(channel)
    if computer:
        fields["winlog.computer_name"] = str(computer)
        fields["host.name"] = str(computer)
    if record_id is not None and str(record_id).isdigit():
        fields["winlog.record_id"] = int(str(record_id))
    if provider:
        fields["winlog.provider_name"] = str(provider)
        fields["event.provider"] = str(provider)
    if isinstance(timestamp, datetime):
        fields["@timestamp"] = timestamp
    elif isinstance(timestamp, str) and timestamp:
        try:
            fields["@timestamp"] = parse_timestamp(timestamp)
        except ParseError:
            fields["winlog.time_created"] = timestamp
    return fields


def _attributes(element: object) -> dict[str, Any]:
    if isinstance(element, dict):
        attributes = element.get("#attributes")
        if isinstance(attributes, dict):
            return attributes
    return {}


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _evtx_event_data(data: object) -> dict[str, Any]:
    """Named Data elements as a dict; unnamed ones as ``Data`` (joined) and ``param1…``."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name == "#attributes":
            continue
        if name == "Data":
            texts = value.get("#text") if isinstance(value, dict) else value
            items = texts if isinstance(texts, list) else [texts]
            strings = [_text(item) for item in items if _scalar(item)]
            out["Data"] = "\n".join(strings)
            for number, text in enumerate(strings, 1):
                out[f"param{number}"] = text
        elif _scalar(value):
            out[name] = value
        else:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def _split_user(value: str) -> tuple[str | None, str]:
    domain, sep, name = value.partition("\\")
    return (domain, name) if sep else (None, value)


def _basename(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1]


def _pid(value: object) -> int | None:
    text = _text(value).strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _set_process(fields: Fields, prefix: str, path: object) -> None:
    text = _text(path)
    if text and text not in _NIL:
        fields.setdefault(f"{prefix}.executable", text)
        fields.setdefault(f"{prefix}.name", _basename(text))


def _set_user(fields: Fields, value: object, domain: object = None) -> None:
    text = _text(value)
    if not text or text in _NIL:
        return
    split_domain, name = _split_user(text)
    fields.setdefault("user.name", name)
    found = split_domain or (_text(domain) if domain else None)
    if found and found not in _NIL:
        fields.setdefault("user.domain", found)


def _set_address(fields: Fields, prefix: str, ip: object, port: object = None) -> None:
    address = _text(ip).strip()
    if address and address not in _NIL:
        fields.setdefault(f"{prefix}.ip", address.removeprefix("::ffff:"))
        number = _pid(port) if port is not None else None
        if number:
            fields.setdefault(f"{prefix}.port", number)


def _hashes(fields: Fields, prefix: str, value: object) -> None:
    for match in _HASH.finditer(_text(value)):
        fields.setdefault(f"{prefix}.hash.{match.group('kind').lower()}", match.group("value").lower())


def _ecs_from_event_data(fields: Fields, data: dict[str, Any]) -> None:
    """The ECS fields Winlogbeat derives from EventData (Sysmon, Security, PowerShell …)."""
    get = data.get
    dataset = fields["event.dataset"]
    code = fields["event.code"]
    security = dataset == "windows.security"
    process_creation = (dataset == "windows.sysmon" and code == "1") or (security and code == "4688")
    if security:
        _set_user(fields, get("SubjectUserName"), get("SubjectDomainName"))
        if get("SubjectUserSid"):
            fields.setdefault("user.id", _text(get("SubjectUserSid")))
        for name in ("SubjectLogonId", "TargetLogonId"):
            if get(name):
                fields.setdefault("winlog.logon.id", _text(get(name)))
        if get("TargetUserName") and _text(get("TargetUserName")) not in _NIL:
            fields["user.target.name"] = _text(get("TargetUserName"))
            _set_user(fields, get("TargetUserName"), get("TargetDomainName"))
        if get("LogonType") is not None:
            fields["winlog.logon.type"] = _text(get("LogonType"))
        if get("ServiceName"):
            fields["service.name"] = _text(get("ServiceName"))
        _set_process(fields, "process", get("NewProcessName") or get("ProcessName"))
        _set_process(fields, "process.parent", get("ParentProcessName"))
        pid = _pid(get("NewProcessId")) if get("NewProcessId") else None
        if pid is not None:
            fields["process.pid"] = pid
    _set_user(fields, get("User"))
    _set_user(fields, get("AccountName"))
    if (process_creation or security) and get("CommandLine"):
        fields["process.command_line"] = _text(get("CommandLine"))
    if process_creation:
        for name, key in (
            ("OriginalFileName", "process.pe.original_file_name"),
            ("Description", "process.pe.description"),
            ("Product", "process.pe.product"),
            ("Company", "process.pe.company"),
            ("FileVersion", "process.pe.file_version"),
        ):
            if get(name):
                fields[key] = _text(get(name))
        _hashes(fields, "process", get("Hashes"))
    elif get("Hashes"):
        _hashes(fields, "file", get("Hashes"))
    _set_process(fields, "process", get("Image") or get("SourceImage"))
    _set_process(fields, "process.parent", get("ParentImage"))
    for name, key in (
        ("ParentCommandLine", "process.parent.command_line"),
        ("ProcessGuid", "process.entity_id"),
        ("SourceProcessGuid", "process.entity_id"),
        ("ParentProcessGuid", "process.parent.entity_id"),
        ("CurrentDirectory", "process.working_directory"),
        ("TargetObject", "registry.path"),
        ("QueryName", "dns.question.name"),
        ("ScriptBlockText", "powershell.file.script_block_text"),
        ("Payload", "powershell.file.script_block_text"),
        ("ScriptBlockId", "powershell.file.script_block_id"),
        ("HostApplication", "process.command_line"),
        ("Imphash", "file.pe.imphash"),
        ("Signature", "file.code_signature.subject_name"),
        ("SourceHostname", "source.domain"),
        ("DestinationHostname", "destination.domain"),
        ("WorkstationName", "source.domain"),
    ):
        value = get(name)
        if value not in (None, "", "-"):
            fields.setdefault(key, _text(value))
    for name, key in (("ProcessId", "process.pid"), ("ParentProcessId", "process.parent.pid")):
        number = _pid(get(name)) if get(name) is not None else None
        if number is not None:
            fields.setdefault(key, number)
    for name in ("TargetFilename", "ImageLoaded", "ScriptName", "PipeName"):
        if get(name):
            path = _text(get(name))
            fields.setdefault("file.path", path)
            fields.setdefault("file.name", _basename(path))
    if get("Signed") is not None:
        fields["file.code_signature.signed"] = _text(get("Signed")).lower() == "true"
    _set_address(
        fields,
        "source",
        get("SourceIp") or get("IpAddress") or get("ClientAddress"),
        get("SourcePort") or get("IpPort"),
    )
    _set_address(
        fields, "destination", get("DestinationIp") or get("DestAddress"), get("DestinationPort") or get("DestPort")
    )
    if get("SourceAddress") and "source.ip" not in fields:
        _set_address(fields, "source", get("SourceAddress"), get("SourcePort"))
    if dataset == "windows.sysmon" and code == "3":
        if get("Protocol"):
            fields["network.transport"] = _text(get("Protocol")).lower()
        if get("Initiated") is not None:
            fields["network.direction"] = "egress" if _text(get("Initiated")).lower() == "true" else "ingress"


def _with_event_data(fields: Fields, data: dict[str, Any]) -> Fields:
    for name, value in data.items():
        fields[f"winlog.event_data.{name}"] = _text(value) if _scalar(value) else json.dumps(value, sort_keys=True)
    _ecs_from_event_data(fields, data)
    category = _CATEGORIES.get((fields["event.dataset"], fields["event.code"]))
    if category:
        fields["event.category"] = [category]
    return fields


_CATEGORIES = {
    ("windows.sysmon", "1"): "process",
    ("windows.sysmon", "3"): "network",
    ("windows.sysmon", "11"): "file",
    ("windows.sysmon", "22"): "network",
    ("windows.security", "4688"): "process",
    ("windows.security", "4624"): "authentication",
    ("windows.security", "4625"): "authentication",
}


__all__ = ["DATASET", "dataset_for", "from_evtx", "from_nxlog", "from_winlogbeat", "parse"]
