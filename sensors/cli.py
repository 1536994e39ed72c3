"""``soc sensor …`` commands. The store is injected: the product CLI mounts
``build_sensor_app(open_store)``, ``open_store`` opening its configured store.

::

    soc sensor logs /var/log/auth.log* --tenant police --sensor-id web01 --parser auth --once
    soc sensor logs --config sensor.yml            # many inputs, follows until SIGTERM
    soc sensor syslog --udp 0.0.0.0:514 --tcp 0.0.0.0:514 --tenant police --sensor-id fw01
    soc sensor evtx exported/ Security.evtx --tenant police --sensor-id dc01
    app | soc sensor jsonl - --tenant police --sensor-id app01   # or: soc sensor logs - --parser …
    soc sensor enroll --es-url https://es:9200 --es-user admin --tenant police --sensor-id web01 \
        --key-file /etc/canhgac/sensor-es.key     # an ES API key that can only add police events

A sensor YAML with an ``elasticsearch:`` section writes there with its own credential instead
of the product's store; one with ``health:`` sends heartbeats to the SOC API.
"""

from __future__ import annotations

import gc
import glob
import json
import logging
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from sensors.config import (
    ElasticsearchOutput,
    HealthConfig,
    ImportConfig,
    SensorConfig,
    SyslogSensorConfig,
    load_config,
)
from sensors.enroll import enroll_sensor, sensor_config_snippet, write_secret
from sensors.forwarder import Forwarder
from sensors.health import HealthReporter
from sensors.parsers import PARSERS, get_parser
from sensors.pipeline import EventImport, LogSensor, SyslogSensor
from sensors.sources.evtx import evtx_files
from sensors.sources.jsonl import read_lines
from soc_core.errors import ConfigError, NotFound, SocError, StoreError, StoreUnavailable
from soc_core.secret_files import read_secret
from soc_core.store.base import Store
from soc_core.store.elasticsearch import ElasticsearchStore

StoreFactory = Callable[[], Store]
log = logging.getLogger(__name__)

_console = Console(stderr=True, soft_wrap=True)  # an error or a note is one line, however long


def _open_product_store(open_store: StoreFactory) -> Store:
    try:
        return open_store()
    except ValueError as exc:  # the Elasticsearch client refusing the URL (bad port, spaces, ...)
        raise ConfigError(f"cannot open the store: {exc}", where="store.elasticsearch.url") from exc


class SensorCredentialStore(ElasticsearchStore):
    """Elasticsearch through a sensor's own credential, which may only add its tenant's events.

    It cannot create index templates (the SOC server's store puts them in place) nor read
    cluster health, so ``setup`` does nothing and ``ping`` checks the credential instead.
    """

    def setup(self) -> None:
        """Nothing: the index templates are the SOC server's to create."""

    def ping(self) -> None:
        """Ask the node who this credential is: 401 for a bad one, any valid one may ask."""
        try:
            self.client.security.authenticate()
        except ApiError as exc:
            if exc.meta.status == 400:
                return  # a node without security has no such endpoint and no credential to check
            raise self._translate("authenticate the sensor's credential", exc) from exc
        except TransportError as exc:
            raise self._translate("authenticate the sensor's credential", exc) from exc


def sensor_store(output: ElasticsearchOutput | None, open_store: StoreFactory) -> Store:
    """The sensor's store, checked: its own Elasticsearch credential if its YAML has one, else
    the product's store.

    Errors that waiting cannot fix (a refused credential, a bad request) stop the command here;
    an unreachable store does not: the sensor starts, spools, and the forwarder delivers (and
    sets the store up) once it answers.
    """
    store = _open_product_store(open_store) if output is None else _credential_store(output)
    try:
        store.ping()
    except StoreUnavailable as exc:
        log.warning("store unreachable at %s: %s; spooling until it answers", exc.where or store.name, exc.message)
    except SocError as exc:
        store.close()
        cause = exc.__cause__
        if isinstance(cause, ApiError) and cause.meta.status in (401, 403):
            keys = "store.elasticsearch.username/password/api_key" if output is None else "elasticsearch.* in the YAML"
            raise ConfigError(
                f"Elasticsearch answered {cause.meta.status}: it refuses the credential — {exc.message}",
                where=exc.where,
                hint=f"check {keys}",
            ) from exc
        raise
    return store


def _credential_store(output: ElasticsearchOutput) -> SensorCredentialStore:
    api_key = username = password = None
    if output.api_key_file is not None:
        api_key = read_secret(output.api_key_file, what="Elasticsearch API key")
    else:
        assert output.password_file is not None  # the model checks they come together
        username = output.username
        password = read_secret(output.password_file, what="Elasticsearch password")
    try:
        return SensorCredentialStore(
            output.url,
            api_key=api_key,
            username=username,
            password=password,
            request_timeout=output.request_timeout,
            bounds=output.bounds,
        )
    except ValueError as exc:  # the Elasticsearch client refusing the URL (bad port, spaces, ...)
        raise ConfigError(f"cannot use {output.url!r}: {exc}", where="elasticsearch.url") from exc


@contextmanager
def _reporting(
    health: HealthConfig | None, counters: Callable[[], dict[str, int]], forwarder: Forwarder
) -> Iterator[None]:
    """Heartbeats to the SOC API while the body runs (nothing if ``health`` is not configured),
    with the forwarder's last error as the sensor's problem."""
    if health is None:
        yield
        return
    reporter = HealthReporter(health, counters, problem=lambda: forwarder.last_error)
    reporter.start()
    try:
        yield
    finally:
        reporter.stop()


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


def _import_config(tenant: str | None, sensor_id: str | None, state_dir: Path | None, timezone: str) -> ImportConfig:
    if not tenant or not sensor_id:
        raise ConfigError("--tenant and --sensor-id are required")
    data = {
        "tenant": tenant,
        "sensor_id": sensor_id,
        "state_dir": str(state_dir or Path("var") / "sensors" / sensor_id),
        "timezone": timezone,
    }
    return ImportConfig.from_dict(data, source="command line")


def _run_import(settings: ImportConfig, work: Callable[[EventImport], None], open_store: StoreFactory) -> None:
    """Open the store, run ``work`` on an :class:`EventImport`, print its counters."""
    with exit_on_error(2):
        store = sensor_store(None, open_store)

    def run() -> bool:
        importer = EventImport(settings, store)
        work(importer)
        ok = importer.finish()
        typer.echo(json.dumps(importer.counters(), sort_keys=True))
        return ok

    run_on_store(store, run)


def _stdin(
    *,
    open_store: StoreFactory,
    tenant: str | None,
    sensor_id: str | None,
    state_dir: Path | None,
    parser: str,
    source_id: str | None,
    timezone: str,
) -> None:
    with exit_on_error(2):
        settings = _import_config(tenant, sensor_id, state_dir, timezone)
        spec = get_parser(parser)
    source = f"stdin/{source_id or secrets.token_hex(8)}"
    lines = read_lines(sys.stdin.buffer, max_line_bytes=settings.max_line_bytes)
    _run_import(settings, lambda importer: importer.lines(lines, spec, source=source), open_store)


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


def _check_agency(store: Store, tenant: str) -> None:
    """Refuse an agency the product store does not know, once it knows any (a typo would
    otherwise file events under a name no one sees). A store that cannot answer now is not
    asked: the sensor starts and spools."""
    try:
        store.get_doc("tenants", tenant)
    except NotFound:
        registered = sorted(doc.id for doc in store.list_docs("tenants", size=50).items)
        if registered:
            raise ConfigError(
                f"agency {tenant!r} is not registered",
                where="--tenant",
                hint=f"use one of {', '.join(registered)}, or register it with `soc tenant add {tenant} NAME`",
            ) from None
        log.warning("no agency is registered in the store yet: register %r with `soc tenant add`", tenant)
    except StoreUnavailable:
        return
    except StoreError as exc:  # a store not set up yet (SQLite without its tables): nothing registered
        log.warning("agency %r not checked: %s", tenant, exc.message)


def _say_where_reading_starts(sensor: LogSensor, *, state_dir: Path) -> None:
    """One line per file on where it is read from: resuming at a checkpoint (with how to start
    over), tailing from the end, or reading from the beginning."""
    for source in sensor.inputs:
        for point in source.tailer.start_points():
            if point.why == "checkpoint":
                _console.print(
                    f"resuming {escape(point.path)} at byte {point.offset} of {point.size} from the checkpoint in "
                    f"{escape(str(state_dir))}; --reset reads it again",
                    soft_wrap=True,
                )
            elif point.why == "end":
                _console.print(
                    f"tailing {escape(point.path)} from its end: the {point.size} bytes already there are not read "
                    "(--from-beginning reads them)",
                    soft_wrap=True,
                )
            else:
                _console.print(f"reading {escape(point.path)} from the beginning ({point.size} bytes)", soft_wrap=True)


def _follow(sensor: LogSensor) -> bool:
    stop = threading.Event()
    return until_signal(stop, lambda: sensor.run(stop))


def build_sensor_app(open_store: StoreFactory) -> typer.Typer:
    """The ``sensor`` group; ``open_store`` opens the product's store (no ping, no setup: the
    sensors check it and set it up themselves, so that they start while it is down)."""
    app = typer.Typer(help="Run Canh Gác sensors.", no_args_is_help=True)

    @app.callback()
    def sensor() -> None:
        """Run Canh Gác sensors (a group, so ``logs`` stays a sub-command even when alone)."""

    @app.command("logs")
    def logs(
        *,
        paths: Annotated[list[str] | None, typer.Argument(help="Files or glob patterns.")] = None,
        tenant: Annotated[str | None, typer.Option(help="Agency (organization.id) of the events.")] = None,
        sensor_id: Annotated[str | None, typer.Option(help="Stable id of this sensor.")] = None,
        parser: Annotated[str, typer.Option(help=f"One of: {', '.join(sorted(PARSERS))}.")] = "auth",
        from_beginning: Annotated[bool, typer.Option(help="Read existing files from the start.")] = False,
        follow: Annotated[bool, typer.Option("--follow/--once", help="Keep tailing, or import and exit.")] = True,
        config: Annotated[Path | None, typer.Option(help="Sensor YAML with many inputs.")] = None,
        state_dir: Annotated[Path | None, typer.Option(help="Checkpoints, spool, dead letters.")] = None,
        timezone: Annotated[str, typer.Option(help="Zone of timestamps that have none.")] = "UTC",
        reset: Annotated[
            bool,
            typer.Option(help="Forget the checkpoints: read the files again (from the start with --from-beginning)."),
        ] = False,
    ) -> None:
        """Tail log files into the store, at least once, with checkpoints after delivery.

        ``-`` as the only PATH reads stdin once (no checkpoints: a pipe cannot be re-read).
        A file with a checkpoint resumes there, even with --from-beginning (--reset forgets it).
        """
        if paths == ["-"]:
            _stdin(
                open_store=open_store,
                tenant=tenant,
                sensor_id=sensor_id,
                state_dir=state_dir,
                parser=parser,
                source_id=None,
                timezone=timezone,
            )
            return
        with exit_on_error(2):
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
            for pattern in paths or ():  # a YAML's patterns may name files still to come
                if not _matches(pattern):
                    raise ConfigError(
                        f"no file matches {pattern}", where="PATH", hint="check the path and that the file is readable"
                    )
            store = sensor_store(settings.elasticsearch, open_store)
            if settings.elasticsearch is None:
                _check_agency(store, settings.tenant)

        def run() -> bool:
            sensor = LogSensor(settings, store)
            if reset:
                sensor.forget_checkpoints()
            _say_where_reading_starts(sensor, state_dir=settings.state_dir)
            with _reporting(settings.health, sensor.counters, sensor.forwarder):
                ok = _follow(sensor) if follow else _import(sensor)
            typer.echo(json.dumps(sensor.counters(), sort_keys=True))
            return ok

        run_on_store(store, run)

    @app.command("syslog")
    def syslog(
        *,
        udp: Annotated[list[str] | None, typer.Option(help="UDP host:port to listen on (repeatable).")] = None,
        tcp: Annotated[list[str] | None, typer.Option(help="TCP host:port to listen on (repeatable).")] = None,
        tenant: Annotated[str | None, typer.Option(help="Agency (organization.id) of the events.")] = None,
        sensor_id: Annotated[str | None, typer.Option(help="Stable id of this sensor.")] = None,
        parser: Annotated[str, typer.Option(help="Parser of each message (syslog, auth, firewall, ...).")] = "syslog",
        max_message_bytes: Annotated[int, typer.Option(help="Longer messages are truncated (480..65536).")] = 8192,
        max_connections: Annotated[int, typer.Option(help="Open TCP connections at most.")] = 1000,
        idle_timeout: Annotated[float, typer.Option(help="Close TCP connections silent this long (s).")] = 60.0,
        config: Annotated[Path | None, typer.Option(help="Syslog sensor YAML.")] = None,
        state_dir: Annotated[Path | None, typer.Option(help="Spool and dead letters.")] = None,
        timezone: Annotated[str, typer.Option(help="Zone of timestamps that have none.")] = "UTC",
    ) -> None:
        """Receive syslog (RFC 3164/5424 over UDP and TCP, RFC 6587 framing) until SIGTERM."""
        with exit_on_error(2):
            if config is not None:
                if udp or tcp:
                    raise ConfigError("give either --udp/--tcp or --config, not both")
                settings = load_config(config, SyslogSensorConfig)
            else:
                if not tenant or not sensor_id:
                    raise ConfigError("--tenant and --sensor-id are required without --config")
                data = {
                    "tenant": tenant,
                    "sensor_id": sensor_id,
                    "state_dir": str(state_dir or Path("var") / "sensors" / sensor_id),
                    "udp": udp or [],
                    "tcp": tcp or [],
                    "parser": parser,
                    "timezone": timezone,
                    "max_message_bytes": max_message_bytes,
                    "max_connections": max_connections,
                    "idle_timeout": idle_timeout,
                }
                settings = SyslogSensorConfig.from_dict(data, source="command line")
            store = sensor_store(settings.elasticsearch, open_store)

        def run() -> bool:
            sensor = SyslogSensor(settings, store)
            stop = threading.Event()
            with _reporting(settings.health, sensor.counters, sensor.forwarder):
                ok = until_signal(stop, lambda: sensor.run(stop))
            typer.echo(json.dumps(sensor.counters(), sort_keys=True))
            return ok

        run_on_store(store, run)

    @app.command("enroll")
    def enroll(
        *,
        es_url: Annotated[str, typer.Option(help="Elasticsearch URL.")],
        tenant: Annotated[str, typer.Option(help="Agency whose events the sensor may add.")],
        sensor_id: Annotated[str, typer.Option(help="Stable id of the sensor.")],
        es_user: Annotated[str | None, typer.Option(help="Administrator user name.")] = None,
        es_password: Annotated[
            str | None, typer.Option(help="Administrator password (prompted if omitted).", envvar="SOC_ES_PASSWORD")
        ] = None,
        es_api_key: Annotated[
            str | None,
            typer.Option(help="Administrator API key (encoded), instead of a user.", envvar="SOC_ES_API_KEY"),
        ] = None,
        key_file: Annotated[
            Path | None, typer.Option(help="Write the new key here (0600); else print it once.")
        ] = None,
        expiration: Annotated[str | None, typer.Option(help="Key lifetime such as 365d; default never.")] = None,
    ) -> None:
        """Create an Elasticsearch API key that can only add events for one tenant.

        Prints the ``elasticsearch:`` part of the sensor YAML that uses it.
        """
        if (es_user is None) == (es_api_key is None):
            _console.print("[red]error:[/red] give either --es-user or --es-api-key")
            raise typer.Exit(2)
        if es_user is not None and es_password is None:
            es_password = typer.prompt(f"password for {es_user}", hide_input=True)
        auth = {"api_key": es_api_key} if es_api_key else {"basic_auth": (es_user or "", es_password or "")}
        if key_file is not None and key_file.exists():
            _console.print(f"[red]error:[/red] {escape(str(key_file))}: refusing to overwrite an existing key file")
            raise typer.Exit(2)
        try:
            client = Elasticsearch(es_url, request_timeout=30, max_retries=0, **auth)
        except ValueError as exc:
            _console.print(f"[red]error:[/red] --es-url: {escape(str(exc))}")
            raise typer.Exit(2) from exc
        try:
            with exit_on_error(1):
                key = enroll_sensor(client, tenant=tenant, sensor_id=sensor_id, expiration=expiration, url=es_url)
                if key_file is not None:
                    write_secret(key_file, key.encoded)
        finally:
            client.close()
        _console.print(f"created API key {key.id} ({key.name})")
        if key_file is None:
            _console.print("the key is shown once; store it in a 0600 file named by elasticsearch.api_key_file:")
            typer.echo(key.encoded)
        typer.echo(sensor_config_snippet(key, url=es_url.rstrip("/"), key_file=key_file), nl=False)

    @app.command("evtx")
    def evtx(
        *,
        paths: Annotated[list[Path], typer.Argument(help=".evtx files or folders of them.")],
        tenant: Annotated[str | None, typer.Option(help="Agency (organization.id) of the events.")] = None,
        sensor_id: Annotated[str | None, typer.Option(help="Stable id of this sensor.")] = None,
        state_dir: Annotated[Path | None, typer.Option(help="Spool and dead letters.")] = None,
    ) -> None:
        """Import Windows .evtx files (re-importing the same records writes nothing new)."""
        with exit_on_error(2):
            settings = _import_config(tenant, sensor_id, state_dir, "UTC")
        files = evtx_files(paths)
        if not files:
            _console.print("[red]error:[/red] no .evtx files found")
            raise typer.Exit(2)

        def work(importer: EventImport) -> None:
            total = sum(path.stat().st_size for path in files)
            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
            with Progress(*columns, console=_console, transient=True) as progress:
                task = progress.add_task("importing", total=max(total, 1))
                for path in files:
                    progress.update(task, description=f"{path.name} ({importer.stats['records']} records)")
                    importer.evtx_file(path)
                    progress.advance(task, path.stat().st_size)

        _run_import(settings, work, open_store)

    @app.command("jsonl")
    def jsonl(
        *,
        paths: Annotated[list[str], typer.Argument(help="Files, glob patterns, or - for stdin.")],
        tenant: Annotated[str | None, typer.Option(help="Agency (organization.id) of the events.")] = None,
        sensor_id: Annotated[str | None, typer.Option(help="Stable id of this sensor.")] = None,
        from_beginning: Annotated[bool, typer.Option(help="Read existing files from the start.")] = False,
        follow: Annotated[bool, typer.Option("--follow/--once", help="Keep tailing, or import and exit.")] = True,
        state_dir: Annotated[Path | None, typer.Option(help="Checkpoints, spool, dead letters.")] = None,
        source_id: Annotated[str | None, typer.Option(help="Identity of stdin, for stable event ids.")] = None,
        timezone: Annotated[str, typer.Option(help="Zone of timestamps that have none.")] = "UTC",
    ) -> None:
        """JSON lines from any application (nested objects flattened); ``-`` reads stdin."""
        if paths == ["-"]:
            _stdin(
                open_store=open_store,
                tenant=tenant,
                sensor_id=sensor_id,
                state_dir=state_dir,
                parser="jsonl",
                source_id=source_id,
                timezone=timezone,
            )
            return
        logs(
            paths=paths,
            tenant=tenant,
            sensor_id=sensor_id,
            parser="jsonl",
            from_beginning=from_beginning,
            follow=follow,
            config=None,
            state_dir=state_dir,
            timezone=timezone,
        )

    from sensors.net_cli import build_network_app  # noqa: PLC0415 - it imports this module's helpers

    # the network sensor too starts while the store is down (it spools, and sets it up later)
    app.add_typer(build_network_app(lambda: sensor_store(None, open_store)))
    return app


@contextmanager
def exit_on_error(code: int) -> Iterator[None]:
    """A SocError becomes one error line and exit ``code`` (2: could not start; 1: failed)."""
    try:
        yield
    except SocError as exc:
        _console.print(f"[red]error:[/red] {escape(str(exc))}")  # messages quote URLs like [/_bulk]
        raise typer.Exit(code) from exc


def tune_garbage_collector() -> None:
    """For a sensor process, once it is set up: fewer, cheaper collections.

    Every event is a few short-lived dicts and lists, so the default collector (a young-generation
    pass every 700 allocations, full passes over everything alive) costs a sensor ~2-3 µs per
    event. What exists once the sensor is built (modules, rules, config) is frozen out of the
    collector's passes, and young passes come every 10,000 allocations: memory still bounded,
    cycles still collected.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def run_on_store(store: Store, run: Callable[[], bool]) -> None:
    """``run()`` a sensor on ``store``: errors exit 1 with one line, so does ``False`` (not all
    delivered); the store is closed either way."""
    tune_garbage_collector()
    try:
        with exit_on_error(1):
            ok = run()
    finally:
        store.close()
    if not ok:
        raise typer.Exit(1)


def until_signal(stop: threading.Event, run: Callable[[], bool]) -> bool:
    """``run()`` with SIGINT/SIGTERM setting ``stop``; the previous handlers restored after."""

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = [
    "StoreFactory",
    "build_sensor_app",
    "exit_on_error",
    "run_on_store",
    "sensor_store",
    "tune_garbage_collector",
    "until_signal",
]
