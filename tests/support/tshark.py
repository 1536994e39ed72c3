"""tshark (Wireshark's command line), asked for fields of a pcap, with its answers kept.

The network decoders are compared with tshark on ~200 pcaps (tests/sensors/network/test_net_peer.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
from pathlib import Path

# tshark's answers, kept between runs: starting tshark costs ~0.3 s of CPU and these tests ask
# it ~400 times (half of ``make check`` before). An answer depends only on the tshark version,
# the pcap's bytes and the arguments, which make the key; delete the folder to ask again.
CACHE = Path(__file__).resolve().parents[2] / "var" / "test-cache" / "tshark"


@functools.cache
def tshark_version() -> str:
    return subprocess.run(["tshark", "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def tshark(path: Path, display_filter: str, *fields: str, options: tuple[str, ...] = ()) -> list[list[str]]:
    arguments = ["-n", *options, "-Y", display_filter, "-T", "fields", "-E", "separator=|"]
    for name in fields:
        arguments += ["-e", name]
    key = hashlib.sha256(
        json.dumps([tshark_version(), hashlib.sha256(path.read_bytes()).hexdigest(), arguments]).encode()
    ).hexdigest()
    cached = CACHE / f"{key}.json"
    with contextlib.suppress(FileNotFoundError):
        rows: list[list[str]] = json.loads(cached.read_text())
        return rows
    command = ["tshark", "-r", str(path), *arguments]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    rows = [line.split("|") for line in run.stdout.splitlines() if line.strip()]
    if run.returncode != 0:  # e.g. a pcap cut short: the rows still count, but are not kept
        return rows
    with contextlib.suppress(OSError):  # a read-only checkout just asks tshark every time
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(rows))
        partial.replace(cached)
    return rows


__all__ = ["CACHE", "tshark"]
