"""Demo data for ``soc up --demo``: two agencies, their analysts, and real-looking auth logs.

The logs are written as files and imported through the real log sensor, so the demo runs the
same path as production: file → parser → forwarder → store → detection engine → alerts.
"""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta
from pathlib import Path

from sensors.config import InputConfig, SensorConfig
from sensors.pipeline import LogSensor
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.errors import Conflict
from soc_core.events import utcnow
from soc_core.store import Store

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - published demo credential
TENANTS = {"police": "Công an tỉnh", "health": "Sở Y tế"}


def _syslog_stamp(moment: datetime) -> str:
    return f"{moment:%b} {moment.day:>2} {moment:%H:%M:%S}"


def demo_auth_log(host: str, start: datetime, *, attacker: str, spray: bool, seed: int) -> str:
    """An sshd/sudo log: ordinary logins, then a brute force (or a password spray)."""
    rng = random.Random(seed)  # noqa: S311 - repeatable demo data, not secrets
    lines = []
    moment = start
    pid = 4000 + seed
    staff = ["nguyenvana", "tranthib", "lehoangc"]
    for i in range(6):
        moment += timedelta(seconds=rng.randint(20, 90))
        user = staff[i % len(staff)]
        port = rng.randint(40000, 60000)
        lines.append(
            f"{_syslog_stamp(moment)} {host} sshd[{pid + i}]: Accepted publickey for {user} from 10.20.1.{10 + i} "
            f"port {port} ssh2: ED25519 SHA256:q1w2e3r4t5y6u7i8o9p0"
        )
    moment += timedelta(seconds=30)
    lines.append(
        f"{_syslog_stamp(moment)} {host} sudo: nguyenvana : TTY=pts/0 ; PWD=/home/nguyenvana ; USER=root ; "
        "COMMAND=/usr/bin/systemctl restart nginx"
    )
    targets = ["root", "admin", "oracle", "ubuntu", "postgres", "test", "guest", "backup", "www", "git"]
    for i in range(14):
        moment += timedelta(seconds=rng.randint(2, 9))
        user = targets[i % len(targets)] if spray else "root"
        port = rng.randint(30000, 65000)
        if spray and user not in ("root", "backup", "www"):
            text = f"Failed password for invalid user {user} from {attacker} port {port} ssh2"
        else:
            text = f"Failed password for {user} from {attacker} port {port} ssh2"
        lines.append(f"{_syslog_stamp(moment)} {host} sshd[{pid + 100 + i}]: {text}")
    lines.append(
        f"{_syslog_stamp(moment)} {host} sshd[{pid + 200}]: Connection closed by {attacker} port 4242 [preauth]"
    )
    lines.append(f"{_syslog_stamp(moment)} {host} kernel: [12345.678] eth0: link up, 1000 Mbps, full duplex")
    return "\n".join(lines) + "\n"


def load_demo(settings: Settings, store: Store) -> str:
    """Create the demo agencies and analysts (once) and import their logs; returns a summary."""
    for tenant_id, name in TENANTS.items():
        if not accounts.tenant_exists(store, tenant_id):
            accounts.add_tenant(store, tenant_id=tenant_id, name=name)
        with contextlib.suppress(Conflict):  # already there from an earlier demo run
            accounts.add_user(
                store,
                username=f"analyst_{tenant_id}",
                password=DEMO_PASSWORD,
                memberships=[Membership(tenant_id, "analyst")],
            )
    demo_dir = settings.data_dir / "demo"
    logs_dir = demo_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    start = utcnow().replace(microsecond=0) - timedelta(minutes=20)
    imported = 0
    for seed, (tenant_id, host, attacker, spray) in enumerate(
        [("police", "portal-congan", "203.0.113.45", False), ("health", "his-soyte", "198.51.100.77", True)]
    ):
        path = logs_dir / f"auth-{tenant_id}.log"
        if not path.exists():
            path.write_text(demo_auth_log(host, start, attacker=attacker, spray=spray, seed=seed), encoding="utf-8")
        imported += _import(path, tenant_id, demo_dir / "sensor-state" / tenant_id, store)
    return f"{len(TENANTS)} agencies, {imported} new log events imported from {logs_dir}"


def _import(path: Path, tenant: str, state_dir: Path, store: Store) -> int:
    config = SensorConfig(
        tenant=tenant,
        sensor_id=f"demo-{tenant}",
        state_dir=state_dir,
        inputs=[InputConfig(paths=[str(path)], parser="auth", from_beginning=True)],
    )
    sensor = LogSensor(config, store)
    try:
        counters = sensor.run_until_idle(timeout=120)
    finally:
        sensor.close()
    return int(counters.get("events_out", 0))
