"""``soc up``: the API, the streaming detection engine and the scheduler, in one process or apart.

``--role all`` (the default, and the demo) runs everything in one process; ``--role api`` runs
the API and UI only, any number of them; ``--role engine`` runs the streaming detection engine
and the scheduler (``scheduling``: retention, silence checks, hunts, the digest, audit
anchoring), without HTTP — exactly one per store; ``--role scheduler`` runs the scheduler alone.
``scheduler.enabled: false`` keeps it out of all and engine. Any number of schedulers may run on
one store: each job run is claimed once. The engine
runs in a background thread and polls the store for new events; rule changes reach it through
the store's rule generation. The API side creates ``admin`` on first start, with a random
password printed once. SIGUSR1 dumps every thread's stack to stderr (a stuck process).
"""

from __future__ import annotations

import errno
import faulthandler
import json
import logging
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from rich.console import Console

from detections import lifecycle
from detections.engine import DetectionEngine
from detections.loader import shipped_rules_dir
from detections.rulecache import RuleCache
from playbooks.format import configured_library
from playbooks.runner import Runner, RunnerThread
from scheduling.scheduler import JobScheduler
from soc_api.main import create_app
from soc_api.services import accounts
from soc_api.services.jobs import job_registry
from soc_core.auth import PROVINCE, Membership, password_problem
from soc_core.config import Settings
from soc_core.errors import ConfigError, SocError, StoreUnavailable
from soc_core.store import Store
from workflow import audit

log = logging.getLogger("canhgac.runtime")
ROLES = ("all", "api", "engine", "scheduler")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _skip = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """One line per record, with the structured ``extra`` fields as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in JsonFormatter._skip}
        return line + "".join(f" {key}={value}" for key, value in extras.items())


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log.json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log.level)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))


def ensure_admin(store: Store) -> str | None:
    """Create ``admin`` (province-wide) if there are no users yet; returns its new password."""
    if store.list_docs("users", size=1).items:
        return None
    password = secrets.token_urlsafe(12)
    while password_problem(password, username="admin"):  # a random draw may look like a word
        password = secrets.token_urlsafe(12)
    accounts.add_user(
        store,
        username="admin",
        password=password,
        memberships=[Membership(PROVINCE, "admin")],
        display_name="Administrator",
        must_change_password=True,  # printed on a console: the person chooses their own at first sign-in
    )
    return password


class EngineThread(threading.Thread):
    """Polls the store for new events and runs every enabled rule over them; rebuilds the
    engine when a rule admin changed the rules (the checkpoint lives in the store). Closes each
    engine it stops using, and the last one when it stops, so no worker process outlives it."""

    def __init__(
        self, engine: DetectionEngine, *, interval: float, batch_size: int, rebuild: Callable[[], DetectionEngine]
    ) -> None:
        super().__init__(name="detection-engine", daemon=True)
        self.engine = engine
        self.rebuild = rebuild
        self.generation = lifecycle.generation(engine.store)
        self.interval = interval
        self.batch_size = batch_size
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            self._poll()
        finally:
            self.engine.close()

    def _poll(self) -> None:
        backoff = self.interval
        while not self.stop_event.is_set():
            try:
                current = lifecycle.generation(self.engine.store)
                if current != self.generation:
                    previous, self.engine = self.engine, self.rebuild()
                    previous.close()
                    self.generation = current
                    log.info("rules reloaded", extra={"generation": current})
                result = self.engine.run_until_idle(limit=self.batch_size)
            except StoreUnavailable as exc:
                log.warning("detection paused: store unavailable", extra={"error": exc.render()})
                backoff = min(backoff * 2, 30.0)
                self.stop_event.wait(backoff)
                continue
            backoff = self.interval
            if result.events:
                log.info(
                    "detection pass",
                    extra={
                        "events": result.events,
                        "alerts_created": result.alerts_created,
                        "alerts_updated": result.alerts_updated,
                        "redone_in_process": result.redone_in_process,
                    },
                )
            self.stop_event.wait(self.interval)


def build_engine(settings: Settings, store: Store) -> DetectionEngine:
    """The engine over the shipped rules plus stored custom rules, with enabled flags, scopes
    and exceptions from the store."""
    dirs = settings.detection.rules_dirs or [shipped_rules_dir()]
    rules, policy = lifecycle.effective_rules(store, dirs, cache=RuleCache.in_data_dir(settings.data_dir))
    for error in rules.errors:
        log.warning("rule not loaded", extra={"error": error.render()})
    engine = DetectionEngine(
        rules,
        store,
        policy=policy,
        workers=settings.detection.workers,
        slow_batch_seconds=settings.detection.slow_batch_seconds,
    )
    for error in engine.errors:
        log.warning("rule not compiled", extra={"error": error.render()})
    return engine


def build_runner_thread(settings: Settings, store: Store) -> RunnerThread:
    """The playbook runner over the playbooks of ``playbooks.dirs`` and the shipped library
    (broken ones are logged and left out; the others run)."""
    library = configured_library(settings.playbooks.dirs, shipped=settings.playbooks.library)
    for error in library.errors:
        log.warning("playbook not loaded", extra={"error": error.render()})
    return RunnerThread(Runner(store, settings, library))


def runs_scheduler(settings: Settings, role: str) -> bool:
    """``--role scheduler`` always; all and engine unless ``scheduler.enabled`` is false."""
    return role == "scheduler" or (role in ("all", "engine") and settings.scheduler.enabled)


def check_role(role: str, *, demo: bool) -> None:
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} for `soc up --role`", hint=f"use one of {', '.join(ROLES)}")
    if demo and role != "all":
        raise ConfigError("--demo runs everything in one process", hint="leave out --role, or use --role all")


def serve(
    settings: Settings,
    store: Store,
    *,
    demo: bool,
    console: Console,
    on_ready: Callable[[], None] | None = None,
    role: str = "all",
) -> None:
    """Run the parts of ``role`` (one of :data:`ROLES`) until stopped (Ctrl-C, SIGTERM)."""
    check_role(role, demo=demo)
    api = role in ("all", "api")
    # bound first: a port in use or a bad address is one error line before anything starts
    listening = listening_socket(settings.api.host, settings.api.port) if api else None
    configure_logging(settings)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    audit.configure(store, settings)
    audit.ensure_key(store)
    audit.anchor_head(store)  # from here on a cut-back trail shows, legacy records included
    engine_side = role in ("all", "engine")
    password = ensure_admin(store) if api else None
    if demo:
        from soc_api.demo import load_demo  # noqa: PLC0415

        with console.status("loading demo agencies, users and attack logs…"):
            summary = load_demo(settings, store)
        console.print(f"demo: {summary}")
    threads: list[EngineThread | RunnerThread] = []
    if engine_side and settings.playbooks.enabled:
        threads.append(build_runner_thread(settings, store))
    if engine_side and settings.detection.enabled:
        thread = EngineThread(
            build_engine(settings, store),
            interval=settings.detection.interval_seconds,
            batch_size=settings.detection.batch_size,
            rebuild=lambda: build_engine(settings, store),
        )
        threads.append(thread)
    scheduler = JobScheduler(store, settings, job_registry(settings)) if runs_scheduler(settings, role) else None
    if scheduler is not None:
        scheduler.start()
    for started in threads:
        started.start()
    engines = [t for t in threads if isinstance(t, EngineThread)]
    runners = [t for t in threads if isinstance(t, RunnerThread)]
    parts = [
        name
        for name, on in (
            ("api", api),
            ("engine", bool(engines)),
            ("playbooks", bool(runners)),
            ("scheduler", scheduler is not None),
        )
        if on
    ]
    url = f"http://{settings.api.host}:{settings.api.port}"

    def announce() -> None:
        log.info("started", extra={"role": role, "parts": parts, "store": store.name})
        console.print(f"[bold green]Canh Gác[/] ({role}: {', '.join(parts)}) is running on {store.name}")
        if api:
            console.print(f"  analysts' web UI: [bold]{url}/ui[/]")
            console.print(f"  API: [bold]{url}/api[/] (reference at {url}/docs)")
        if password:
            console.print(f"first login: user [bold]admin[/], password [bold]{password}[/] (shown once)")
            console.print("  at first sign-in admin sets up TOTP and chooses a new password")
        if demo:
            console.print(
                "demo analysts: [bold]analyst_police[/] / [bold]analyst_health[/], password demo-password-2026"
            )
        if on_ready:
            on_ready()

    try:
        if listening is not None:
            config = uvicorn.Config(
                create_app(settings, store),
                host=settings.api.host,  # only for uvicorn's own log line: it serves the socket bound above
                port=settings.api.port,
                log_level=settings.log.level.lower(),
                access_log=False,
            )
            AnnouncingServer(config, announce).run(sockets=[listening])
        else:
            announce()
            _run_until_stopped(threads)
    finally:
        for stopping in threads:
            stopping.stop_event.set()
        for stopping in threads:
            stopping.join(timeout=10)
        if scheduler is not None:
            scheduler.shutdown()
        try:
            audit.anchor_head(store)
        except SocError as exc:  # a store down at shutdown: the last scheduled anchor stands
            log.error("audit head not anchored at shutdown", extra={"error": exc.render()})
        store.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; :class:`ConfigError` naming them if it cannot."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        bound = socket.socket(family, kind, proto)
    except (OSError, OverflowError) as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}", where="--host/--port (api.host, api.port)") from exc
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restart over TIME_WAIT
        bound.bind(address)
        bound.listen(2048)
    except OSError as exc:
        bound.close()
        hint = "another program listens there (another `soc up`?): stop it, or choose another --port"
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            where="--host/--port (api.host, api.port)",
            hint=hint if exc.errno == errno.EADDRINUSE else "choose another --host or --port",
        ) from exc
    return bound


class AnnouncingServer(uvicorn.Server):
    """uvicorn calling ``on_started`` once it serves: "running" is never printed before that."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.on_started()


def _run_until_stopped(threads: Sequence[threading.Thread]) -> None:
    """The engine role's main thread: wait for SIGTERM or Ctrl-C; a dead engine or playbook
    thread is an error (exit 1), not a process that looks alive and does nothing."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1.0):
        if any(not thread.is_alive() for thread in threads):
            log.error(
                "an engine thread stopped; exiting", extra={"threads": [t.name for t in threads if not t.is_alive()]}
            )
            raise SystemExit(1)


__all__ = [
    "ROLES",
    "EngineThread",
    "build_engine",
    "build_runner_thread",
    "check_role",
    "configure_logging",
    "ensure_admin",
    "listening_socket",
    "runs_scheduler",
    "serve",
]
