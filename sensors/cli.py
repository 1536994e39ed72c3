"""``soc sensor …`` commands. The store is injected: the product CLI calls
:func:`set_store_factory` with a function that opens its configured store, then mounts ``app``.

::

    soc sensor logs /var/log/auth.log* --tenant police --sensor-id web01 --parser auth --once
    soc sensor logs --config sensor.yml            # many inputs, follows until SIGTERM
"""

from __future__ import annotations

import glob
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from sensors.config import SensorConfig, load_config
from sensors.pipeline import LogSensor
from soc_core.errors import ConfigError, SocError
from soc_core.store.base import Store

StoreFactory = Callable[[], Store]

app = typer.Typer(help="Run Canh Gác sensors.", no_args_is_help=True)
_console = Console(stderr=True)
_store_factory: StoreFactory | None = None


@app.callback()
def sensor() -> None:
    """Run Canh Gác sensors (a group, so ``logs`` stays a sub-command even when alone)."""


def set_store_factory(factory: StoreFactory) -> None:
    """Tell the sensor commands how to open the store (the product config decides which)."""
    global _store_factory  # noqa: PLW0603 - the one wiring point between CLI layers
    _store_factory = factory


def _open_store() -> Store:
    if _store_factory is None:
        raise ConfigError(
            "no store is wired to the sensor commands",
            hint="call sensors.cli.set_store_factory() before mounting sensors.cli.app",
        )
    return _store_factory()


@app.command("logs")
def logs(
    *,
    paths: Annotated[list[str] | None, typer.Argument(help="Files or glob patterns.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Agency (organization.id) of the events.")] = None,
    sensor_id: Annotated[str | None, typer.Option(help="Stable id of this sensor.")] = None,
    parser: Annotated[str, typer.Option(help="auth | sshd | sudo | accounts | syslog")] = "auth",
    from_beginning: Annotated[bool, typer.Option(help="Read existing files from the start.")] = False,
    follow: Annotated[bool, typer.Option("--follow/--once", help="Keep tailing, or import and exit.")] = True,
    config: Annotated[Path | None, typer.Option(help="Sensor YAML with many inputs.")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="Checkpoints, spool, dead letters.")] = None,
    timezone: Annotated[str, typer.Option(help="Zone of timestamps that have none.")] = "UTC",
) -> None:
    """Tail log files into the store, at least once, with checkpoints after delivery."""
    try:
        settings = _settings(
            paths=paths,
            tenant=tenant,
            sensor_id=sensor_id,
            parser=parser,
            from_beginning=from_beginning,
            config=config,
            state_dir=state_dir,
            timezone=timezone,
        )
        store = _open_store()
    except SocError as exc:
        _console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        sensor = LogSensor(settings, store)
        ok = _follow(sensor) if follow else _import(sensor)
        typer.echo(json.dumps(sensor.counters(), sort_keys=True))
    except SocError as exc:
        _console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    if not ok:
        raise typer.Exit(1)


def _settings(
    *,
    paths: list[str] | None,
    tenant: str | None,
    sensor_id: str | None,
    parser: str,
    from_beginning: bool,
    config: Path | None,
    state_dir: Path | None,
    timezone: str,
) -> SensorConfig:
    if config is not None:
        if paths:
            raise ConfigError("give either PATH arguments or --config, not both")
        return load_config(config)
    if not paths or not tenant or not sensor_id:
        raise ConfigError("PATH..., --tenant and --sensor-id are required without --config")
    data = {
        "tenant": tenant,
        "sensor_id": sensor_id,
        "state_dir": str(state_dir or Path("var") / "sensors" / sensor_id),
        "inputs": [{"paths": paths, "parser": parser, "from_beginning": from_beginning, "timezone": timezone}],
    }
    return SensorConfig.from_dict(data, source="command line")


def _import(sensor: LogSensor) -> bool:
    total = sum(
        path.stat().st_size for source in sensor.inputs for pattern in source.config.paths for path in _matches(pattern)
    )
    columns = (TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=True) as progress:
        task = progress.add_task("import", total=max(total, 1))
        while True:
            read = sensor.step(final=True)
            progress.update(task, completed=min(sensor.bytes_acknowledged(), total))
            if read == 0 and sensor.idle:
                break
            if read == 0:
                threading.Event().wait(0.05)  # the store is failing: the forwarder backs off
    return sensor.close()


def _matches(pattern: str) -> list[Path]:
    return [Path(name) for name in glob.glob(pattern, recursive=True) if Path(name).is_file()]


def _follow(sensor: LogSensor) -> bool:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return sensor.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["StoreFactory", "app", "set_store_factory"]
