#!/usr/bin/python3 -I
"""Block and unblock addresses with nftables — the forced command of an agency gateway, and the
rules the SOC host applies to itself (``playbooks.actions.contain`` imports this module).

Standard library only, so it can be copied to a gateway as it is. On the gateway, the SOC's
dedicated key may run nothing else; in ``~canhgac/.ssh/authorized_keys``::

    restrict,command="/usr/bin/python3 -I /usr/local/sbin/contain_gateway.py --never 10.20.0.0/16" ssh-ed25519 AAAA…

(with ``canhgac`` allowed to run ``nft``: root, or CAP_NET_ADMIN through a sudoers line for this
script alone). sshd puts what the SOC asked for in ``SSH_ORIGINAL_COMMAND``: ``block ADDRESS
SECONDS`` or ``unblock ADDRESS``. This script checks it again, whatever the SOC checked: one verb,
one address or network (no wider than ``--max-prefix-v4``/``-v6``; never loopback, unspecified,
multicast, IPv4-mapped, nor inside a ``--never`` network), whole seconds; anything else exits 2
before any command runs. ``nft`` is run with argument lists, never through a shell.

The rules: table ``inet <table>`` with sets ``block4``/``block6`` (flags interval, timeout) and
``input``/``forward`` chains dropping traffic from their members. An element carries its own
``timeout``, so a block expires in the kernel even if nobody comes back to lift it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ADDRESS_TEXT = re.compile(r"^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$")
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
MAX_SECONDS = 366 * 24 * 3600
EXIT_REFUSED = 2
EXIT_FAILED = 1


class Refused(ValueError):
    """An address, verb or duration that must not reach nftables."""


def parse_network(text: str, *, max_prefix_v4: int, max_prefix_v6: int, never: Sequence[Network] = ()) -> Network:
    """One address (v4 or v6) or a network no wider than the limits, in canonical form."""
    if not isinstance(text, str) or not ADDRESS_TEXT.match(text):
        raise Refused(f"{text!r} is not one IP address or network (digits, hex, '.', ':' and one '/prefix' only)")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise Refused(f"{text!r} is not a valid address or network: {exc}") from exc
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        raise Refused(f"{text!r} is an IPv4-mapped IPv6 address; give the IPv4 form")
    limit = max_prefix_v4 if network.version == 4 else max_prefix_v6
    if network.prefixlen < limit:
        raise Refused(f"{text!r} is wider than /{limit}, the widest network one block may cover")
    first = network.network_address
    for bad, why in (
        (first.is_unspecified, "the unspecified address"),
        (network.is_loopback, "loopback"),
        (network.is_multicast, "multicast"),
        (first.is_reserved and network.version == 4, "reserved"),
    ):
        if bad:
            raise Refused(f"{text!r} is {why}; it cannot be blocked")
    for protected in never:
        if network.version == protected.version and network.overlaps(protected):
            raise Refused(f"{text!r} overlaps {protected}, which is never blocked (own or allowlisted)")
    return network


def parse_seconds(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_SECONDS:
        raise Refused(f"{text!r} is not a duration in whole seconds (1 to {MAX_SECONDS})")
    return int(text)


def check_table(name: str) -> str:
    if not TABLE_NAME.match(name):
        raise Refused(f"{name!r} is not an nftables table name ([a-z][a-z0-9_]*)")
    return name


def ruleset(table: str) -> str:
    """The table, sets and chains, made idempotently and atomically (``nft -f -``): existing set
    elements are kept, the chains' rules are replaced rather than added twice."""
    t = check_table(table)
    return "\n".join(
        [
            f"add table inet {t}",
            f"add set inet {t} block4 {{ type ipv4_addr; flags interval, timeout; }}",
            f"add set inet {t} block6 {{ type ipv6_addr; flags interval, timeout; }}",
            *(
                f"add chain inet {t} {chain} {{ type filter hook {chain} priority -10; policy accept; }}"
                for chain in ("input", "forward")
            ),
            *(f"flush chain inet {t} {chain}" for chain in ("input", "forward")),
            *(
                f"add rule inet {t} {chain} {family} saddr @{set_name} drop"
                for chain in ("input", "forward")
                for family, set_name in (("ip", "block4"), ("ip6", "block6"))
            ),
        ]
    )


def canonical(network: Network) -> str:
    """``1.2.3.4`` for one address, ``1.2.3.0/24`` for a network."""
    return network.with_prefixlen if network.num_addresses > 1 else str(network.network_address)


def set_name(network: Network) -> str:
    return "block4" if network.version == 4 else "block6"


def element_argv(verb: str, table: str, network: Network, seconds: int | None = None) -> list[str]:
    """``nft add|delete element inet TABLE SET { NETWORK [timeout Ns] }`` as an argument list."""
    element = [canonical(network)]
    if seconds is not None:
        element += ["timeout", f"{seconds}s"]
    return ["nft", verb, "element", "inet", check_table(table), set_name(network), "{", *element, "}"]


def _nft(argv: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)


class NftFailed(RuntimeError):
    """nft refused a command; the message carries its stderr."""


def block(table: str, network: Network, seconds: int) -> None:
    done = _nft(["nft", "-f", "-"], stdin=ruleset(table))
    if done.returncode != 0:
        raise NftFailed(f"making table inet {table} failed: {done.stderr.strip()}")
    # delete first so a repeated block restarts its timeout (``add`` keeps the old one)
    _nft(element_argv("delete", table, network))
    done = _nft(element_argv("add", table, network, seconds))
    if done.returncode != 0:
        raise NftFailed(f"blocking {network} failed: {done.stderr.strip()}")


def unblock(table: str, network: Network) -> bool:
    """Lift a block; False when it was not there (expired, or never applied)."""
    done = _nft(element_argv("delete", table, network))
    if done.returncode == 0:
        return True
    if "element does not exist" in done.stderr or "No such file or directory" in done.stderr:
        return False
    raise NftFailed(f"unblocking {network} failed: {done.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="forced command: block/unblock one address with nftables")
    parser.add_argument("--table", default="canhgac")
    parser.add_argument("--max-prefix-v4", type=int, default=24)
    parser.add_argument("--max-prefix-v6", type=int, default=64)
    parser.add_argument("--never", action="append", default=[], help="a network never blocked (repeat)")
    options = parser.parse_args(argv)
    request = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    try:
        never = [ipaddress.ip_network(item, strict=False) for item in options.never]
    except ValueError as exc:
        print(json.dumps({"ok": False, "failed": f"bad --never network in authorized_keys: {exc}"}), file=sys.stderr)
        return EXIT_FAILED
    try:
        words = request.split(" ")
        limits = {"max_prefix_v4": options.max_prefix_v4, "max_prefix_v6": options.max_prefix_v6}
        if len(words) == 3 and words[0] == "block":
            network = parse_network(words[1], never=never, **limits)
            seconds = parse_seconds(words[2])
            block(options.table, network, seconds)
            answer: dict[str, object] = {"ok": True, "verb": "block", "address": canonical(network), "seconds": seconds}
        elif len(words) == 2 and words[0] == "unblock":
            network = parse_network(words[1], never=never, **limits)
            answer = {
                "ok": True,
                "verb": "unblock",
                "address": canonical(network),
                "removed": unblock(options.table, network),
            }
        else:
            raise Refused(f"{request[:200]!r} is not 'block ADDRESS SECONDS' or 'unblock ADDRESS'")
    except Refused as exc:
        print(json.dumps({"ok": False, "refused": str(exc)}), file=sys.stderr)
        return EXIT_REFUSED
    except (NftFailed, OSError, subprocess.SubprocessError) as exc:
        print(json.dumps({"ok": False, "failed": str(exc)}), file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
