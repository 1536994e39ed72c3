"""``soc sensor net`` and ``soc sensor pcap``: the network sensor on the command line.

The product CLI mounts these with :func:`register`, passing the function that opens its store::

    soc sensor net --iface eth1 --bpf "not port 22" --tenant police --sensor-id tap01
    soc sensor pcap capture1.pcap capture2.pcapng --tenant police --sensor-id lab
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from sensors.netsensor import NetSensorSettings, NetworkSensor
from sensors.packets.analyzer import AnalyzerOptions
from sensors.sources.network import LiveCapture
from soc_core.errors import SocError
from soc_core.store.base import Store

_console = Console(stderr=True)

Tenant = Annotated[str, typer.Option(help="Agency (organization.id) of the events.")]
SensorId = Annotated[str, typer.Option(help="Stable id of this sensor.")]
StateDir = Annotated[Path | None, typer.Option(help="Spool and dead letters (default var/sensors/<id>).")]
MaxFlows = Annotated[int, typer.Option(help="Flow table bound; the least recently seen flow is evicted.")]
IdleTimeout = Annotated[float, typer.Option(help="Seconds without packets that end a flow.")]
ActiveTimeout = Annotated[float, typer.Option(help="Seconds after which a long flow is reported.")]


def _settings(
    tenant: str,
    sensor_id: str,
    state_dir: Path | None,
    *,
    max_flows: int,
    idle_timeout: float,
    active_timeout: float,
    interval: float = 10.0,
    loss_threshold: float = 0.10,
) -> NetSensorSettings:
    return NetSensorSettings(
        tenant=tenant,
        sensor_id=sensor_id,
        state_dir=state_dir or Path("var") / "sensors" / sensor_id,
        interval=interval,
        loss_threshold=loss_threshold,
        analyzer=AnalyzerOptions(max_flows=max_flows, idle_timeout=idle_timeout, active_timeout=active_timeout),
    )


def register(app: typer.Typer, open_store: Callable[[], Store]) -> None:
    """Add the ``net`` and ``pcap`` commands to ``app``."""

    @app.command("net")
    def net(
        *,
        iface: Annotated[str, typer.Option(help="Interface to capture on.")],
        tenant: Tenant,
        sensor_id: SensorId,
        bpf: Annotated[str | None, typer.Option(help="tcpdump filter expression.")] = None,
        promiscuous: Annotated[bool, typer.Option(help="Put the interface in promiscuous mode.")] = False,
        state_dir: StateDir = None,
        interval: Annotated[float, typer.Option(help="Seconds between health reports.")] = 10.0,
        loss_threshold: Annotated[float, typer.Option(help="Loss ratio that raises a health event.")] = 0.10,
        max_flows: MaxFlows = 100_000,
        idle_timeout: IdleTimeout = 60.0,
        active_timeout: ActiveTimeout = 300.0,
    ) -> None:
        """Capture live traffic into the store until SIGINT/SIGTERM; health every interval."""
        settings = _settings(
            tenant, sensor_id, state_dir, max_flows=max_flows, idle_timeout=idle_timeout,
            active_timeout=active_timeout, interval=interval, loss_threshold=loss_threshold,
        )  # fmt: skip
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        try:
            store = open_store()
        except SocError as exc:
            _console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with LiveCapture(iface, bpf=bpf, promiscuous=promiscuous) as capture:
                sensor = NetworkSensor(settings, store, on_health=lambda health: typer.echo(json.dumps(health)))
                ok = sensor.run_live(capture, stop)
                typer.echo(json.dumps(sensor.counters(), sort_keys=True))
        except SocError as exc:
            _console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            store.close()
        if not ok:
            raise typer.Exit(1)

    @app.command("pcap")
    def pcap(
        *,
        files: Annotated[list[Path], typer.Argument(help="pcap or pcapng files.")],
        tenant: Tenant,
        sensor_id: SensorId,
        state_dir: StateDir = None,
        max_flows: MaxFlows = 100_000,
        idle_timeout: IdleTimeout = 60.0,
        active_timeout: ActiveTimeout = 300.0,
    ) -> None:
        """Import pcap/pcapng files into the store (re-importing a file stores nothing twice)."""
        settings = _settings(
            tenant, sensor_id, state_dir, max_flows=max_flows, idle_timeout=idle_timeout, active_timeout=active_timeout
        )
        try:
            store = open_store()
        except SocError as exc:
            _console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        try:
            sensor = NetworkSensor(settings, store)
            with Progress(*columns, console=_console, transient=True) as progress:
                for path in files:
                    task = progress.add_task(path.name, total=max(path.stat().st_size, 1))

                    def advance(done: int, total: int, task: TaskID = task) -> None:
                        progress.update(task, completed=done)

                    counters = sensor.import_pcap(path, progress=advance)
                    progress.update(task, completed=path.stat().st_size)
                    typer.echo(json.dumps({"file": str(path), **counters}, sort_keys=True))
            ok = sensor.close()
            typer.echo(json.dumps(sensor.counters(), sort_keys=True))
        except (SocError, OSError) as exc:
            _console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        finally:
            store.close()
        if not ok:
            raise typer.Exit(1)


__all__ = ["register"]
