"""Contain actions: ``block_ip`` and ``unblock_ip`` with nftables, on the SOC host or on an agency
gateway over SSH (a dedicated key whose ``authorized_keys`` line forces
``playbooks/gateway/contain_gateway.py``).

Both are gated (a person approves) and the runner runs them dry by default: a dry run checks the
address and the target and says which command it would run. The address is parsed strictly here
(one address or a network no wider than ``playbooks.contain.max_prefix_v4``/``_v6``; never
loopback, unspecified, multicast, IPv4-mapped, the SOC's own networks or the allowlisted ones)
before any command runs, and the gateway parses it again. Commands are argument lists, never a
shell. A block carries its expiry in the kernel (nftables element ``timeout``); every applied
block is a ``containment`` document, so :func:`list_blocks` and :func:`unblock_block` can list
them and roll one back.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from playbooks.actions.base import Action, ActionContext, ActionError, ActionResult, register
from playbooks.gateway import contain_gateway as nft
from soc_core.config import GatewaySettings, Settings
from soc_core.errors import NotVisible
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.store.base import MAX_LIST_SIZE, Doc, Store

DOC_KIND = "containment"
LOCAL = "local"  # the target name of the SOC host itself
SSH_TIMEOUT_SECONDS = 60


class BlockParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=1, max_length=64)
    gateway: str | None = Field(None, max_length=64)  # a name in playbooks.contain.gateways; None: the SOC host
    duration_seconds: int | None = Field(None, ge=1)  # default playbooks.contain.default_seconds
    reason: str = Field("", max_length=500)


class UnblockParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=1, max_length=64)
    gateway: str | None = Field(None, max_length=64)


def vet(address: str, settings: Settings) -> nft.Network:
    """The address as a network nftables may hold, or an :class:`ActionError` saying why not."""
    contain = settings.playbooks.contain
    never = [ipaddress.ip_network(item, strict=False) for item in (*contain.own_networks, *contain.allow_networks)]
    try:
        return nft.parse_network(
            address, max_prefix_v4=contain.max_prefix_v4, max_prefix_v6=contain.max_prefix_v6, never=never
        )
    except nft.Refused as exc:
        raise ActionError(
            f"refused to block or unblock: {exc}",
            where="playbooks.contain",
            hint="give one address (or a narrow network) that is neither the SOC's nor allowlisted",
        ) from exc


def gateway_for(settings: Settings, name: str | None, tenant: str) -> GatewaySettings | None:
    """The named gateway, if this run's agency may use it (None: the SOC host)."""
    if name is None:
        return None
    gateway = settings.playbooks.contain.gateways.get(name)
    if gateway is None or gateway.tenant not in (tenant, "*"):
        raise ActionError(
            f"no gateway {name!r} for agency {tenant!r}",
            where="playbooks.contain.gateways",
            hint="name a gateway configured for this agency",
        )
    return gateway


def ssh_argv(gateway: GatewaySettings, request: str) -> list[str]:
    """ssh with the dedicated key only, the pinned host key, no user configuration, no prompt."""
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(gateway.key_file),
        "-p",
        str(gateway.port),
        "-l",
        gateway.user,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={gateway.known_hosts_file}",
        "-o",
        "ConnectTimeout=10",
        "--",
        gateway.host,
        request,
    ]


def _on_gateway(name: str, gateway: GatewaySettings, request: str) -> dict[str, Any]:
    where = f"gateway {name} ({gateway.user}@{gateway.host}:{gateway.port})"
    try:
        done = subprocess.run(
            ssh_argv(gateway, request), capture_output=True, text=True, timeout=SSH_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ActionError(f"cannot run ssh: {exc}", where=where, hint="install openssh-client") from exc
    if done.returncode == nft.EXIT_REFUSED:
        raise ActionError(f"the gateway refused {request!r}: {done.stderr.strip()[:500]}", where=where)
    if done.returncode != 0:
        raise ActionError(
            f"{request!r} failed (exit {done.returncode}): {done.stderr.strip()[:500]}",
            where=where,
            hint="check the key, the gateway's host key in known_hosts_file and its forced command",
        )
    try:
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ActionError(
            f"the gateway's answer is not the forced command's: {done.stdout[:200]!r}", where=where
        ) from exc
    return answer


@contextmanager
def _nft_on_soc_host() -> Iterator[None]:
    try:
        yield
    except nft.NftFailed as exc:
        raise ActionError(str(exc), where="nftables on the SOC host", hint="the SOC must run as root to block") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise ActionError(
            f"cannot run nft: {exc}", where="the SOC host", hint="install nftables (scripts/install-system-deps)"
        ) from exc


def apply_block(
    settings: Settings, target: str, gateway: GatewaySettings | None, network: nft.Network, seconds: int
) -> None:
    if gateway is None:
        with _nft_on_soc_host():
            nft.block(settings.playbooks.contain.table, network, seconds)
    else:
        _on_gateway(target, gateway, f"block {nft.canonical(network)} {seconds}")


def apply_unblock(settings: Settings, target: str, gateway: GatewaySettings | None, network: nft.Network) -> bool:
    if gateway is None:
        with _nft_on_soc_host():
            return nft.unblock(settings.playbooks.contain.table, network)
    return bool(_on_gateway(target, gateway, f"unblock {nft.canonical(network)}").get("removed"))


def _planned(settings: Settings, gateway: GatewaySettings | None, request: list[str]) -> list[str]:
    """The command a dry run would run (for the run record)."""
    if gateway is None:
        return request
    return ssh_argv(gateway, " ".join(request))


@register
class BlockIp(Action[BlockParams]):
    """Drop traffic from an address (or narrow network) until it expires or is unblocked."""

    name: ClassVar[str] = "block_ip"
    Params: ClassVar[type[BaseModel]] = BlockParams
    idempotent: ClassVar[bool] = False
    gated: ClassVar[bool] = True

    def run(self, ctx: ActionContext, params: BlockParams) -> ActionResult:
        contain = ctx.settings.playbooks.contain
        network = vet(params.address, ctx.settings)
        gateway = gateway_for(ctx.settings, params.gateway, ctx.tenant)
        target = params.gateway or LOCAL
        seconds = params.duration_seconds or contain.default_seconds
        if seconds > contain.max_seconds:
            raise ActionError(
                f"a block of {seconds} s is longer than {contain.max_seconds} s",
                where="playbooks.contain.max_seconds",
                hint="block for less, and block again if needed",
            )
        address = nft.canonical(network)
        output: dict[str, Any] = {"address": address, "target": target, "seconds": seconds}
        if ctx.dry_run:
            request = ["block", address, str(seconds)]
            command = nft.element_argv("add", contain.table, network, seconds) if gateway is None else request
            return ActionResult(output={**output, "dry_run": True, "command": _planned(ctx.settings, gateway, command)})
        apply_block(ctx.settings, target, gateway, network, seconds)
        now = utcnow()
        record = ctx.store.create_doc(
            DOC_KIND,
            {
                "tenant": ctx.tenant,
                "address": address,
                "target": target,
                "status": "active",
                "reason": params.reason,
                "run_id": ctx.run_id,
                "step_id": ctx.step_id,
                "created_at": format_timestamp(now),
                "expires_at": format_timestamp(now + timedelta(seconds=seconds)),
                "removed_at": None,
                "removed_by": None,
            },
            doc_id=uuid.uuid4().hex,
        )
        return ActionResult(
            output={**output, "block_id": record.id, "expires_at": record.body["expires_at"]}, changed=True
        )


@register
class UnblockIp(Action[UnblockParams]):
    """Lift a block now (rolling back a block_ip step); its records are marked removed."""

    name: ClassVar[str] = "unblock_ip"
    Params: ClassVar[type[BaseModel]] = UnblockParams
    idempotent: ClassVar[bool] = False
    gated: ClassVar[bool] = True

    def run(self, ctx: ActionContext, params: UnblockParams) -> ActionResult:
        network = vet(params.address, ctx.settings)
        gateway = gateway_for(ctx.settings, params.gateway, ctx.tenant)
        target = params.gateway or LOCAL
        address = nft.canonical(network)
        output: dict[str, Any] = {"address": address, "target": target}
        if ctx.dry_run:
            request = ["unblock", address]
            command = (
                nft.element_argv("delete", ctx.settings.playbooks.contain.table, network)
                if gateway is None
                else request
            )
            return ActionResult(output={**output, "dry_run": True, "command": _planned(ctx.settings, gateway, command)})
        removed = apply_unblock(ctx.settings, target, gateway, network)
        records = [
            doc
            for doc in list_blocks(ctx.store, tenants=(ctx.tenant,))
            if doc.body["address"] == address and doc.body["target"] == target
        ]
        for doc in records:
            _mark_removed(ctx.store, doc, actor=f"run:{ctx.run_id}")
        return ActionResult(
            output={**output, "removed": removed, "block_ids": [doc.id for doc in records]}, changed=removed
        )


def list_blocks(store: Store, *, tenants: tuple[str, ...] | None, active_only: bool = True) -> list[Doc]:
    """Blocks recorded for these agencies (all if None), newest first; ``active_only``: those not
    removed and not yet expired."""
    filters = {"status": "active"} if active_only else None
    now = utcnow()
    found: list[Doc] = []
    cursor: str | None = None
    while True:
        page = store.list_docs(DOC_KIND, tenants=tenants, filters=filters, size=MAX_LIST_SIZE, cursor=cursor)
        found += [doc for doc in page.items if not active_only or parse_timestamp(doc.body["expires_at"]) > now]
        cursor = page.next_cursor
        if cursor is None:
            return found


def _mark_removed(store: Store, doc: Doc, *, actor: str) -> Doc:
    body = {**doc.body, "status": "removed", "removed_at": format_timestamp(utcnow()), "removed_by": actor}
    return store.update_doc(DOC_KIND, doc.id, body, version=doc.version)


def unblock_block(
    store: Store, settings: Settings, block_id: str, *, tenants: tuple[str, ...] | None, actor: str
) -> Doc:
    """Roll one recorded block back: lift it where it was applied and mark it removed. Another
    agency's block answers as missing (:class:`NotVisible`)."""
    doc = store.get_doc(DOC_KIND, block_id)
    if tenants is not None and doc.body["tenant"] not in tenants:
        raise NotVisible(f"no block {block_id}", target=f"{DOC_KIND}/{block_id}", owner=doc.body["tenant"])
    target = doc.body["target"]
    gateway = None if target == LOCAL else gateway_for(settings, target, doc.body["tenant"])
    apply_unblock(settings, target, gateway, vet(doc.body["address"], settings))
    return _mark_removed(store, doc, actor=actor)


__all__ = ["DOC_KIND", "BlockIp", "BlockParams", "UnblockIp", "UnblockParams", "list_blocks", "unblock_block", "vet"]
