"""Item 3 of the actions brief: ``block_ip``/``unblock_ip`` with real nftables in network
namespaces joined by a veth pair. The "firewall" namespace plays the SOC host (the action runs
with this thread in it, so its ``nft`` child lands there too); the "peer" namespace holds an
attacker (10.213.9.2, 2001:db8:9::2) and a bystander (10.213.9.3) that connect to a TCP
listener in the firewall namespace. A dropped SYN shows as a connect that times out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from playbooks.actions.base import ACTIONS, ActionError
from playbooks.actions.contain import BlockIp, BlockParams, UnblockIp, UnblockParams, list_blocks, unblock_block
from soc_core.config import Settings
from soc_core.errors import NotFound
from soc_core.store import Store
from tests.playbooks.support import context, in_netns
from tests.support.netns import ip
from tests.support.waiting import wait_for

FIREWALL4, FIREWALL6 = "10.213.9.1", "2001:db8:9::1"
ATTACKER4, BYSTANDER4, ATTACKER6 = "10.213.9.2", "10.213.9.3", "2001:db8:9::2"
PORT = 9000


@dataclass
class FirewallNet:
    firewall: str
    peer: str

    def ruleset(self) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.firewall, "nft", "list", "ruleset"], check=True, capture_output=True, text=True
        ).stdout

    def reaches(self, source: str) -> bool:
        """Can ``source`` (in the peer namespace) open a TCP connection to the firewall?"""
        family = socket.AF_INET6 if ":" in source else socket.AF_INET
        target = FIREWALL6 if ":" in source else FIREWALL4
        with in_netns(self.peer), socket.socket(family, socket.SOCK_STREAM) as client:
            client.bind((source, 0))
            client.settimeout(0.5)  # a dropped SYN is only ever seen as silence
            try:
                client.connect((target, PORT))
            except TimeoutError:
                return False
            return True

    def flows(self, source: str) -> None:
        """Wait until ``source`` connects (a loaded machine may need more than one try)."""
        wait_for(lambda: self.reaches(source), f"{source} reaching the firewall")


def _serve(server: socket.socket) -> None:
    while True:
        try:
            connection, _ = server.accept()
        except OSError:  # closed at teardown
            return
        connection.close()


@pytest.fixture
def firewall_net() -> Iterator[FirewallNet]:
    tag = uuid.uuid4().hex[:6]
    net = FirewallNet(f"cgfw{tag}", f"cgpe{tag}")
    servers: list[socket.socket] = []
    try:
        for ns in (net.firewall, net.peer):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", f"vf{tag}", "type", "veth", "peer", "name", f"vp{tag}")
        ip("link", "set", f"vf{tag}", "netns", net.firewall)
        ip("link", "set", f"vp{tag}", "netns", net.peer)
        ip("-n", net.firewall, "addr", "add", f"{FIREWALL4}/24", "dev", f"vf{tag}")
        ip("-n", net.firewall, "addr", "add", f"{FIREWALL6}/64", "dev", f"vf{tag}", "nodad")
        for address in (ATTACKER4, BYSTANDER4):
            ip("-n", net.peer, "addr", "add", f"{address}/24", "dev", f"vp{tag}")
        ip("-n", net.peer, "addr", "add", f"{ATTACKER6}/64", "dev", f"vp{tag}", "nodad")
        ip("-n", net.firewall, "link", "set", f"vf{tag}", "up")
        ip("-n", net.peer, "link", "set", f"vp{tag}", "up")
        with in_netns(net.firewall):
            for family, address in ((socket.AF_INET, FIREWALL4), (socket.AF_INET6, FIREWALL6)):
                server = socket.socket(family, socket.SOCK_STREAM)
                server.bind((address, PORT))
                server.listen(64)
                servers.append(server)
                threading.Thread(target=_serve, args=(server,), daemon=True).start()
        for source in (ATTACKER4, BYSTANDER4, ATTACKER6):
            net.flows(source)
        yield net
    finally:
        for server in servers:
            server.close()
        for ns in (net.firewall, net.peer):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def settings(tmp_path: Path, **contain: object) -> Settings:
    values: dict[str, object] = {
        "own_networks": [f"{FIREWALL4}/32", f"{FIREWALL6}/128"],
        "allow_networks": ["10.213.9.64/26", "192.0.2.0/24"],
        **contain,
    }
    return Settings(data_dir=tmp_path, playbooks={"contain": values})


def block(
    net: FirewallNet, config: Settings, store: Store, dry_run: bool = False, **params: object
) -> dict[str, object]:
    with in_netns(net.firewall):
        result = BlockIp().run(context(config, store, dry_run=dry_run), BlockParams.model_validate(params))
    return dict(result.output)


def unblock(net: FirewallNet, config: Settings, store: Store, **params: object) -> dict[str, object]:
    with in_netns(net.firewall):
        result = UnblockIp().run(context(config, store), UnblockParams.model_validate(params))
    return dict(result.output)


def test_contain_actions_are_registered_and_gated() -> None:
    assert ACTIONS["block_ip"] is BlockIp and ACTIONS["unblock_ip"] is UnblockIp
    assert BlockIp.gated and UnblockIp.gated
    assert not BlockIp.idempotent and not UnblockIp.idempotent


def test_contain_block_drops_and_unblock_restores(firewall_net: FirewallNet, store: Store, tmp_path: Path) -> None:
    config = settings(tmp_path)
    output = block(firewall_net, config, store, address=ATTACKER4, duration_seconds=600, reason="ssh brute force")
    assert output["address"] == ATTACKER4 and output["target"] == "local" and output["seconds"] == 600
    assert not firewall_net.reaches(ATTACKER4)
    firewall_net.flows(BYSTANDER4)
    store.refresh()
    [record] = list_blocks(store, tenants=("police",))
    assert record.id == output["block_id"]
    assert record.body["address"] == ATTACKER4 and record.body["reason"] == "ssh brute force"
    assert list_blocks(store, tenants=("health",)) == []

    lifted = unblock(firewall_net, config, store, address=ATTACKER4)
    assert lifted["removed"] is True and lifted["block_ids"] == [record.id]
    firewall_net.flows(ATTACKER4)
    store.refresh()
    assert list_blocks(store, tenants=("police",)) == []
    [removed] = list_blocks(store, tenants=("police",), active_only=False)
    assert removed.body["status"] == "removed" and removed.body["removed_by"].startswith("run:")


def test_contain_block_ipv6(firewall_net: FirewallNet, store: Store, tmp_path: Path) -> None:
    block(firewall_net, settings(tmp_path), store, address=ATTACKER6, duration_seconds=600)
    assert not firewall_net.reaches(ATTACKER6)
    firewall_net.flows(ATTACKER4)


def test_contain_rollback_by_id(firewall_net: FirewallNet, store: Store, tmp_path: Path) -> None:
    config = settings(tmp_path)
    output = block(firewall_net, config, store, address="10.213.9.2/31", duration_seconds=600)  # .2 and .3
    assert not firewall_net.reaches(ATTACKER4)
    assert not firewall_net.reaches(BYSTANDER4)
    store.refresh()
    with pytest.raises(NotFound):  # another agency's block is not there for it
        unblock_block(store, config, str(output["block_id"]), tenants=("health",), actor="analyst_health")
    assert not firewall_net.reaches(ATTACKER4)
    with in_netns(firewall_net.firewall):
        doc = unblock_block(store, config, str(output["block_id"]), tenants=("police",), actor="analyst_police")
    assert doc.body["status"] == "removed" and doc.body["removed_by"] == "analyst_police"
    firewall_net.flows(ATTACKER4)
    firewall_net.flows(BYSTANDER4)


def test_contain_block_expires(firewall_net: FirewallNet, sqlite_store: Store, tmp_path: Path) -> None:
    block(firewall_net, settings(tmp_path), sqlite_store, address=ATTACKER4, duration_seconds=2)
    assert not firewall_net.reaches(ATTACKER4)
    # the kernel drops the element when its timeout passes; nobody lifts it
    firewall_net.flows(ATTACKER4)  # the block expiring
    wait_for(
        lambda: list_blocks(sqlite_store, tenants=("police",)), "the record to read as expired", until=lambda b: b == []
    )
    assert "10.213.9.2" not in firewall_net.ruleset()


def test_contain_dry_run_changes_nothing(firewall_net: FirewallNet, sqlite_store: Store, tmp_path: Path) -> None:
    output = block(firewall_net, settings(tmp_path), sqlite_store, dry_run=True, address=ATTACKER4)
    assert output["dry_run"] is True
    assert output["command"] == [
        "nft",
        "add",
        "element",
        "inet",
        "canhgac",
        "block4",
        "{",
        ATTACKER4,
        "timeout",
        "3600s",
        "}",
    ]
    assert firewall_net.ruleset() == ""
    firewall_net.flows(ATTACKER4)
    assert list_blocks(sqlite_store, tenants=None, active_only=False) == []


BAD_INPUTS = [
    "1.2.3.4; rm -rf /",
    "1.2.3.4;id",
    "$(id)",
    "`id`",
    "-F",
    "1.2.3.4\nflush ruleset",
    "1.2.3.4 ",
    "0.0.0.0/0",
    "::/0",
    "0.0.0.0",
    "::",
    "1.2.0.0/16",  # wider than /24
    "2001:db8::/32",  # wider than /64
    "1.2.3.4/24",  # host bits set: not one network
    FIREWALL4,  # the SOC's own address
    FIREWALL6,
    "10.213.9.0/24",  # contains the SOC's address
    "10.213.9.70",  # allowlisted
    "127.0.0.1",
    "::1",
    "::ffff:10.213.9.2",  # IPv4-mapped IPv6
    "fe80::1%eth0",
    "224.0.0.1",
    "255.255.255.255",
    "01.2.3.4",
    "0x7f000001",
    "2130706433",
    "1.2.3",
]


@pytest.mark.parametrize("address", BAD_INPUTS)
def test_contain_bad_inputs_run_no_command(
    firewall_net: FirewallNet, sqlite_store: Store, tmp_path: Path, address: str
) -> None:
    before = firewall_net.ruleset()
    with pytest.raises(ActionError, match="refused to block or unblock"):
        block(firewall_net, settings(tmp_path), sqlite_store, address=address)
    with pytest.raises(ActionError, match="refused to block or unblock"):
        unblock(firewall_net, settings(tmp_path), sqlite_store, address=address)
    assert firewall_net.ruleset() == before == ""  # not even the table was made
    assert list_blocks(sqlite_store, tenants=None, active_only=False) == []


def test_contain_longer_than_allowed_is_refused(firewall_net: FirewallNet, sqlite_store: Store, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="longer than"):
        block(firewall_net, settings(tmp_path, max_seconds=60), sqlite_store, address=ATTACKER4, duration_seconds=61)
    assert firewall_net.ruleset() == ""


def test_contain_unknown_or_other_agency_gateway_is_refused(sqlite_store: Store, tmp_path: Path) -> None:
    gateway = {
        "host": "gw.health.example",
        "key_file": tmp_path / "k",
        "known_hosts_file": tmp_path / "kh",
        "tenant": "health",
    }
    config = settings(tmp_path, gateways={"health_gw": gateway})
    for name in ("health_gw", "nope"):
        with pytest.raises(ActionError, match="no gateway"):
            BlockIp().run(context(config, sqlite_store), BlockParams(address=ATTACKER4, gateway=name))


# --- the SSH path: the gateway's forced command -------------------------------------------------

GATEWAY_SCRIPT = Path(__file__).resolve().parents[2] / "playbooks" / "gateway" / "contain_gateway.py"
PYTHON3 = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable  # stdlib only
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def forced(net: FirewallNet, request: str, *never: str) -> subprocess.CompletedProcess[str]:
    """The forced command as sshd runs it: fixed argv, the client's words in SSH_ORIGINAL_COMMAND."""
    argv = ["ip", "netns", "exec", net.firewall, PYTHON3, "-I", str(GATEWAY_SCRIPT)]
    argv += [arg for network in never for arg in ("--never", network)]
    env = {"PATH": os.environ["PATH"], "SSH_ORIGINAL_COMMAND": request}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    "request_text",
    [
        "block 1.2.3.4; rm -rf / 30",
        "block 1.2.3.4;id 30",
        "block $(id) 30",
        "block `id` 30",
        "block -F 30",
        "block 1.2.3.4 30\nflush ruleset",
        "block 0.0.0.0/0 30",
        "block ::/0 30",
        "block 10.213.9.1 30",  # in --never
        "block 127.0.0.1 30",
        "block ::ffff:10.213.9.2 30",
        "block 10.213.9.3 -1",
        "block 10.213.9.3 1e3",
        "block 10.213.9.3 30 extra",
        "block  10.213.9.3 30",
        "unblock",
        "flush ruleset",
        "list ruleset",
        "",
    ],
)
def test_contain_gateway_script_refuses_bad_requests(firewall_net: FirewallNet, request_text: str) -> None:
    done = forced(firewall_net, request_text, f"{FIREWALL4}/32")
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stderr)["ok"] is False
    assert firewall_net.ruleset() == ""


def test_contain_gateway_script_blocks_and_unblocks(firewall_net: FirewallNet) -> None:
    done = forced(firewall_net, "block 10.213.9.3 600", f"{FIREWALL4}/32")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "verb": "block", "address": BYSTANDER4, "seconds": 600}
    assert not firewall_net.reaches(BYSTANDER4)
    firewall_net.flows(ATTACKER4)
    done = forced(firewall_net, "unblock 10.213.9.3")
    assert json.loads(done.stdout)["removed"] is True
    firewall_net.flows(BYSTANDER4)
    assert json.loads(forced(firewall_net, "unblock 10.213.9.3").stdout)["removed"] is False


@dataclass
class Gateway:
    key_file: Path
    known_hosts_file: Path


@pytest.fixture
def gateway_sshd(firewall_net: FirewallNet, tmp_path: Path) -> Iterator[Gateway]:
    """A real sshd in the firewall namespace letting the SOC's key run the forced command only
    (as root: ``PermitRootLogin forced-commands-only``). The gateway never blocks 10.213.9.2,
    the address the SOC's ssh comes from (the peer's primary address)."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    host_key, client_key = tmp_path / "ssh_host_ed25519_key", tmp_path / "soc_contain_key"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True)
    command = f"{PYTHON3} -I {GATEWAY_SCRIPT} --never {ATTACKER4}/32 --never {FIREWALL4}/32"
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(f'restrict,command="{command}" {client_key.with_suffix(".pub").read_text()}')
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{FIREWALL4} {host_key.with_suffix('.pub').read_text()}")
    config = tmp_path / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {FIREWALL4}",
                "Port 22",
                f"HostKey {host_key}",
                f"PidFile {tmp_path / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "StrictModes no",  # the test's files live under /tmp
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "UsePAM no",
                "PermitRootLogin forced-commands-only",
                "AllowUsers root",
                "",
            ]
        )
    )
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True)
    process = subprocess.Popen(
        ["ip", "netns", "exec", firewall_net.firewall, SSHD, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with in_netns(firewall_net.peer):
            wait_for(
                lambda: _connects(FIREWALL4, 22),
                "sshd listening",
                ignore=(OSError,),
            )
        yield Gateway(client_key, known_hosts)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def gateway_settings(tmp_path: Path, gateway: Gateway, tenant: str = "police") -> Settings:
    entry = {
        "host": FIREWALL4,
        "user": "root",
        "key_file": gateway.key_file,
        "known_hosts_file": gateway.known_hosts_file,
        "tenant": tenant,
    }
    return settings(tmp_path, gateways={"police_gw": entry})


def test_contain_over_ssh_blocks_and_unblocks_on_the_gateway(
    firewall_net: FirewallNet, gateway_sshd: Gateway, sqlite_store: Store, tmp_path: Path
) -> None:
    config = gateway_settings(tmp_path, gateway_sshd)
    with in_netns(firewall_net.peer):  # the SOC host: its ssh child starts in this namespace
        output = (
            BlockIp()
            .run(
                context(config, sqlite_store),
                BlockParams(address=BYSTANDER4, gateway="police_gw", duration_seconds=600),
            )
            .output
        )
    assert output["target"] == "police_gw"
    assert not firewall_net.reaches(BYSTANDER4)
    firewall_net.flows(ATTACKER4)
    [record] = list_blocks(sqlite_store, tenants=("police",))
    assert record.body["target"] == "police_gw"
    with in_netns(firewall_net.peer):
        doc = unblock_block(sqlite_store, config, record.id, tenants=("police",), actor="analyst_police")
    assert doc.body["status"] == "removed"
    firewall_net.flows(BYSTANDER4)


def test_contain_over_ssh_the_gateway_checks_again(
    firewall_net: FirewallNet, gateway_sshd: Gateway, sqlite_store: Store, tmp_path: Path
) -> None:
    # the SOC's own configuration does not protect 10.213.9.2; the gateway's forced command does
    config = gateway_settings(tmp_path, gateway_sshd)
    with in_netns(firewall_net.peer), pytest.raises(ActionError, match="the gateway refused"):
        BlockIp().run(context(config, sqlite_store), BlockParams(address=ATTACKER4, gateway="police_gw"))
    assert firewall_net.ruleset() == ""
    assert list_blocks(sqlite_store, tenants=None, active_only=False) == []


def _connects(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=5):
        return True
