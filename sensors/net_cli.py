"""``soc sensor net`` and ``soc sensor pcap``: the network sensor on the command line.

The sensor group mounts these with :func:`build_network_app`, passing the function that opens its store::

    soc sensor net --iface eth1 --bpf "not port 22" --tenant police --sensor-id tap01
    soc sensor pcap capture1.pcap capture2.pcapng --tenant police --sensor-id lab

``pcap`` imports every file it can: a file that cannot be opened or breaks off is reported on
stderr and as ``{"file": …, "error": …}``, what was read of it is kept, the next files are
imported, the summary counts ``files_failed`` and the exit status is 1.

Both report their health to the SOC API (heartbeats with the sensor's counters, see
:mod:`sensors.netsensor`) when given ``--health-api-url`` and ``--health-key-file``, or
``--config`` naming a sensor YAML whose ``health:`` section says where (other sections of that
file are for the log sensors and are not read here)::

    soc sensor net --iface eth1 --tenant police --sensor-id tap01 \
        --health-api-url https://soc.example.gov.vn --health-key-file /etc/canhgac/sensor-api.key
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from sensors.cli import exit_on_error, run_on_store, until_signal
from sensors.config import HealthConfig
from sensors.health import HealthReporter
from sensors.netsensor import NetSensorSettings, NetworkSensor
from sensors.packets.analyzer import AnalyzerOptions
from sensors.sources.network import CaptureError, LiveCapture
from soc_core.config import read_config_file, validate_config
from soc_core.errors import ConfigError, SocError
from soc_core.store.base import Store

_console = Console(stderr=True)

Tenant = Annotated[str, typer.Option(help="Agency (organization.id) of the events.")]
SensorId = Annotated[str, typer.Option(help="Stable id of this sensor.")]
StateDir = Annotated[Path | None, typer.Option(help="Spool and dead letters (default var/sensors/<id>).")]
MaxFlows = Annotated[int, typer.Option(help="Flow table bound; the least recently seen flow is evicted.")]
IdleTimeout = Annotated[float, typer.Option(help="Seconds without packets that end a flow.")]
ActiveTimeout = Annotated[float, typer.Option(help="Seconds after which a long flow is reported.")]
HealthUrl = Annotated[str | None, typer.Option(help="SOC API to send heartbeats to (with --health-key-file).")]
HealthKeyFile = Annotated[Path | None, typer.Option(help="File (0600) holding the sensor's SOC API key.")]
HealthInterval = Annotated[float | None, typer.Option(help="Seconds between heartbeats.")]
ConfigFile = Annotated[Path | None, typer.Option(help="Sensor YAML; its health: section is used.")]


def health_config(
    *, api_url: str | None, key_file: Path | None, interval: float | None, config: Path | None
) -> HealthConfig | None:
    """Where heartbeats go: the options, else the YAML ``health:`` section, else nowhere."""
    where = "--health-api-url/--health-key-file"
    section: dict[str, object] = {}
    if config is not None:
        data = read_config_file(config, what="sensor configuration") or {}
        if not isinstance(data, dict) or not isinstance(data.get("health") or {}, dict):
            raise ConfigError("expected a mapping with a health: mapping", where=str(config))
        section = dict(data.get("health") or {})
        where = f"{config}: health"
    if api_url is not None:
        section["api_url"] = api_url
    if key_file is not None:
        section["api_key_file"] = key_file
    if not section:
        return None
    if interval is not None:
        section["interval"] = interval
    return validate_config(HealthConfig, section, where=where, what="health settings")


@contextmanager
def reporting(sensor: NetworkSensor, health: HealthConfig | None) -> Iterator[HealthReporter | None]:
    """Heartbeats with ``sensor``'s counters and run id while the body runs; a last one at the end."""
    if health is None:
        yield None
        return
    reporter = HealthReporter(health, sensor.heartbeat_counters, problem=lambda: sensor.forwarder.last_error)
    reporter.run_id = sensor.run_id  # the id of the health reports and events: one run, one id
    reporter.start()
    try:
        yield reporter
    finally:
        reporter.stop()


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


def build_network_app(open_store: Callable[[], Store]) -> typer.Typer:
    """The ``net`` and ``pcap`` commands (mounted without a name: they join the sensor group)."""
    app = typer.Typer()

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
        health_api_url: HealthUrl = None,
        health_key_file: HealthKeyFile = None,
        health_interval: Annotated[
            float | None, typer.Option(help="Seconds between heartbeats (default: --interval).")
        ] = None,
        config: ConfigFile = None,
    ) -> None:
        """Capture live traffic into the store until SIGINT/SIGTERM; health every interval."""
        settings = _settings(
            tenant, sensor_id, state_dir, max_flows=max_flows, idle_timeout=idle_timeout,
            active_timeout=active_timeout, interval=interval, loss_threshold=loss_threshold,
        )  # fmt: skip
        with exit_on_error(2):
            # One heartbeat per interval report unless told otherwise: each carries that interval.
            health = health_config(
                api_url=health_api_url, key_file=health_key_file, interval=health_interval, config=config
            )
            if health is not None and health_interval is None and config is None:
                health = health.model_copy(update={"interval": interval})
        stop = threading.Event()
        with exit_on_error(2):
            store = open_store()

        def capture() -> bool:
            with LiveCapture(iface, bpf=bpf, promiscuous=promiscuous) as live:
                sensor = NetworkSensor(settings, store, on_health=lambda report: typer.echo(json.dumps(report)))
                with reporting(sensor, health):
                    done = sensor.run_live(live, stop)
                typer.echo(json.dumps(sensor.counters(), sort_keys=True))
                return done

        run_on_store(store, lambda: until_signal(stop, capture))

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
        health_api_url: HealthUrl = None,
        health_key_file: HealthKeyFile = None,
        health_interval: HealthInterval = None,
        config: ConfigFile = None,
    ) -> None:
        """Import pcap/pcapng files into the store (re-importing a file stores nothing twice)."""
        settings = _settings(
            tenant, sensor_id, state_dir, max_flows=max_flows, idle_timeout=idle_timeout, active_timeout=active_timeout
        )
        with exit_on_error(2):
            health = health_config(
                api_url=health_api_url, key_file=health_key_file, interval=health_interval, config=config
            )
            store = open_store()
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        failed: list[Path] = []
        try:
            sensor = NetworkSensor(settings, store)
            with reporting(sensor, health), Progress(*columns, console=_console, transient=True) as progress:
                for path in files:
                    task = progress.add_task(path.name, total=1)

                    def advance(done: int, total: int, task: TaskID = task) -> None:
                        progress.update(task, completed=done, total=max(total, 1))

                    try:
                        counters = sensor.import_pcap(path, progress=advance)
                    except CaptureError as exc:
                        # One damaged file must not cost the others: report it, count it, go on.
                        failed.append(path)
                        _console.print(f"[red]error:[/red] {exc}; skipped the rest of {path}")
                        typer.echo(json.dumps({"file": str(path), "error": str(exc)}, sort_keys=True))
                        continue
                    progress.update(task, completed=1, total=1)
                    typer.echo(json.dumps({"file": str(path), **counters}, sort_keys=True))
                ok = sensor.close()
            typer.echo(
                json.dumps({**sensor.counters(), "files": len(files), "files_failed": len(failed)}, sort_keys=True)
            )
        except (SocError, OSError) as exc:
            _console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        finally:
            store.close()
        if failed:
            _console.print(
                f"[red]error:[/red] {len(failed)} of {len(files)} files failed: {', '.join(map(str, failed))}"
            )
        if not ok or failed:
            raise typer.Exit(1)

    return app


__all__ = ["build_network_app", "health_config", "reporting"]
