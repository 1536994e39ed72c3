"""The ``soc`` command line.

Errors the user can act on (bad configuration, unreachable store, broken rules) are printed as
one paragraph naming the file, key or URL — never as a traceback.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from soc_core import __version__
from soc_core.auth import KEY_ROLES, ROLES, Membership
from soc_core.config import Settings, load_settings
from soc_core.datasets import allowed_datasets
from soc_core.devnode import DEV_NODE_DIR, ES_VERSION, DevNode, distribution_home
from soc_core.errors import InvalidInput, SocError
from soc_core.store import Store, open_store
from workflow.principals import cli_actor

app = typer.Typer(help="Canh Gác — security-operations toolkit.", no_args_is_help=True, add_completion=False)
dev_app = typer.Typer(help="Developer tools.", no_args_is_help=True)
es_app = typer.Typer(help="A local Elasticsearch node for development and tests.", no_args_is_help=True)
tenant_app = typer.Typer(help="Agencies (tenants).", no_args_is_help=True)
user_app = typer.Typer(help="People who use the SOC.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for sensors and integrations.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
dev_app.add_typer(es_app, name="elasticsearch")
app.add_typer(dev_app, name="dev")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (default: $SOC_CONFIG).", envvar="SOC_CONFIG"),
]


class _State:
    config: Path | None = None
    settings: Settings | None = None


state = _State()


@app.callback()
def main_options(config: ConfigOption = None) -> None:
    state.config = config


def settings() -> Settings:
    if state.settings is None:
        state.settings = load_settings(state.config)
    return state.settings


def store(*, setup: bool = True) -> Store:
    from workflow import audit  # noqa: PLC0415

    opened = open_store(settings())
    audit.configure(opened, settings())  # records made from the CLI are sealed with the server's key
    opened.ping()
    if setup:
        opened.setup()
    return opened


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"canhgac {__version__} (Elasticsearch dev node {ES_VERSION})")


@config_app.command("show")
def config_show() -> None:
    """Print the effective configuration (secrets hidden)."""
    data = settings().model_dump(mode="json")
    es = data["store"]["elasticsearch"]
    for secret in ("password", "api_key"):
        if es.get(secret):
            es[secret] = "***"
    out.print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="", markup=False)


@config_app.command("datasets")
def config_datasets() -> None:
    """The datasets events keep (the known list and store.extra_datasets); others are stored as
    ``unknown``. A sensor registered with ``datasets`` keeps only those of them."""
    for name in sorted(allowed_datasets(settings().store.extra_datasets)):
        out.print(name, markup=False)


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Load demo agencies, users and attack logs.")] = False,
    host: Annotated[str | None, typer.Option(help="Listen address (default from config).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default from config).", min=1, max=65535)] = None,
    role: Annotated[
        str,
        typer.Option(
            help="all: everything in one process; api: the API and UI only (any number); "
            "engine: detection + scheduled jobs, no HTTP (one per store); scheduler: the scheduled jobs alone."
        ),
    ] = "all",
) -> None:
    """Run the API, the detection engine and the scheduler: in one process, or one role apart."""
    from soc_api.runtime import check_role, serve  # noqa: PLC0415 - heavy imports only for this command

    check_role(role, demo=demo)
    current = settings()
    if host:
        current.api.host = host
    if port:
        current.api.port = port
    serve(current, store(), demo=demo, console=out, role=role)


# --- tenants, users, keys -------------------------------------------------------------------
@tenant_app.command("add")
def tenant_add(tenant_id: str, name: Annotated[str, typer.Argument(help="Display name of the agency.")]) -> None:
    """Register an agency, e.g. `soc tenant add so_y_te "Sở Y tế"`."""
    from soc_api.services.accounts import add_tenant  # noqa: PLC0415

    add_tenant(store(), tenant_id=tenant_id, name=name, actor=cli_actor())
    out.print(f"tenant [bold]{tenant_id}[/] added")


JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document.")]


@tenant_app.command("list")
def tenant_list(as_json: JsonOption = False) -> None:
    """Every agency: id, name and when it was registered."""
    from soc_api.services.accounts import list_tenants  # noqa: PLC0415

    tenants = [
        {"id": doc.id, "name": doc.body.get("name", ""), "created_at": doc.body.get("created_at")}
        for doc in list_tenants(store())
    ]
    if as_json:
        print_json(tenants)
        return
    table = Table("id", "name", "registered", box=None)
    for tenant in tenants:
        table.add_row(tenant["id"], tenant["name"], tenant["created_at"] or "—")
    out.print(table)


@user_app.command("list")
def user_list(as_json: JsonOption = False) -> None:
    """Every person: memberships (agency:role), status and two-factor enrolment (no secrets)."""
    from soc_api.routes.users import user_public  # noqa: PLC0415
    from soc_api.services.accounts import list_users  # noqa: PLC0415

    users = [user_public(doc) for doc in list_users(store(), None)]
    if as_json:
        print_json([user.model_dump() for user in users])
        return
    table = Table("username", "name", "memberships", "status", "TOTP", box=None)
    for user in users:
        memberships = ", ".join(f"{m.tenant}:{m.role}" for m in user.memberships)
        status = "disabled" if user.disabled else "must change password" if user.must_change_password else "active"
        table.add_row(user.username, user.display_name, memberships, status, "yes" if user.totp_enrolled else "no")
    out.print(table)


def _memberships(items: list[str]) -> list[Membership]:
    memberships = []
    for item in items:
        tenant, sep, role = item.partition(":")
        if not sep or role not in ROLES:
            raise InvalidInput(
                f"bad membership {item!r}", hint=f"write TENANT:ROLE with ROLE one of {', '.join(ROLES)}"
            )
        memberships.append(Membership(tenant, role))
    return memberships


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise InvalidInput("the two passwords differ", hint="type the same password twice")
    return first


@user_app.command("add")
def user_add(
    username: str,
    member: Annotated[
        list[str], typer.Option("--member", "-m", help="TENANT:ROLE (repeatable); TENANT * means every agency.")
    ],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
) -> None:
    """Add a person with one or more (tenant, role) memberships."""
    from soc_api.services.accounts import add_user  # noqa: PLC0415

    add_user(
        store(),
        username=username,
        password=_read_password(password_stdin),
        memberships=_memberships(member),
        actor=cli_actor(),
    )
    out.print(f"user [bold]{username}[/] added")


@user_app.command("roles")
def user_roles(
    username: str,
    member: Annotated[list[str], typer.Option("--member", "-m", help="TENANT:ROLE (repeatable); replaces all.")],
) -> None:
    """Replace a person's memberships; their next request already uses the new ones."""
    from soc_api.services.accounts import set_memberships  # noqa: PLC0415

    set_memberships(store(), username=username, memberships=_memberships(member), actor=cli_actor())
    out.print(f"user [bold]{username}[/] now: {', '.join(member)}")


@user_app.command("totp")
def user_totp(username: str) -> None:
    """Give a person a TOTP second factor; prints the otpauth URI to scan (shown once)."""
    from soc_api.services.accounts import enroll_totp  # noqa: PLC0415

    uri = enroll_totp(store(), username, actor=cli_actor())
    out.print("scan this URI with an authenticator app (shown once):")
    out.print(uri, markup=False, highlight=False)


@user_app.command("timezone")
def user_timezone(
    username: str, zone: Annotated[str, typer.Argument(help="IANA time zone, e.g. Asia/Ho_Chi_Minh or UTC.")]
) -> None:
    """Set the time zone a person's pages show times in (UTC stays on hover)."""
    from soc_api.services.accounts import set_timezone  # noqa: PLC0415

    name = set_timezone(store(), username, zone, actor=cli_actor())
    out.print(f"user [bold]{username}[/] now sees times in {name}")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a person: their sessions and API keys stop working at once."""
    from soc_api.services.accounts import disable_user  # noqa: PLC0415

    disable_user(store(), username, actor=cli_actor())
    out.print(f"user [bold]{username}[/] disabled")


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Let a disabled person sign in again."""
    from soc_api.services.accounts import enable_user  # noqa: PLC0415

    enable_user(store(), username, actor=cli_actor())
    out.print(f"user [bold]{username}[/] enabled")


@user_app.command("reset")
def user_reset(username: str) -> None:
    """A one-time password reset code for a person (shown once); their sessions end now."""
    from datetime import timedelta  # noqa: PLC0415

    from soc_api.services.accounts import issue_reset  # noqa: PLC0415

    minutes = settings().auth.reset_code_minutes
    code, _expires = issue_reset(store(), username, lifetime=timedelta(minutes=minutes), actor=cli_actor())
    out.print(f"one-time reset code for [bold]{username}[/] (shown once, valid {minutes} minutes):")
    out.print(code, markup=False, highlight=False)
    out.print("they set a new password with it at /ui/login/reset or POST /api/auth/reset")


@apikey_app.command("create")
def apikey_create(
    name: str,
    *,
    tenant: Annotated[str, typer.Option(help="The agency the key acts for; * = province-wide.")],
    owner: Annotated[str, typer.Option(help="The person the key answers to; it never holds more than they do.")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(KEY_ROLES)}.")] = "analyst",
    expires: Annotated[
        int | None, typer.Option(help="Days until it expires (default 90, at most 365; sensor keys 365).")
    ] = None,
    sensor: Annotated[str | None, typer.Option(help="For a sensor key: the sensor's id.")] = None,
) -> None:
    """Create an API key (shown once)."""
    from soc_api.services.apikeys import Caller, create_api_key  # noqa: PLC0415

    doc, key = create_api_key(
        store(),
        name=name,
        tenant=tenant,
        role=role,
        owner=owner,
        expires_days=expires,
        sensor_id=sensor,
        caller=Caller(cli_actor()),
    )
    out.print(f"API key [bold]{doc.id}[/] expires {doc.body['expires_at']} (shown once, keep it secret):")
    out.print(key, markup=False, highlight=False)


# --- audit trail ------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check every record's seal and link and the head against the anchors.
    Exit 0: intact; 1: tampered (the first bad record is named); 2: cannot verify."""
    from workflow import audit  # noqa: PLC0415

    report = audit.verify_chain(store(setup=False))
    if as_json:
        print_json(report.as_dict())
    else:
        anchor = report.latest_anchor
        anchored = f"latest anchor: record {anchor['seq']} at {anchor['time']}" if anchor else "no anchor yet"
        line = f"{report.records} records checked ({report.legacy_records} legacy, unsealed); {anchored}"
        if report.status == "ok":
            out.print(f"[bold green]audit trail intact[/]: {line}")
        elif report.status == "unverifiable":
            err.print(f"[bold red]cannot verify the audit trail[/]: {report.reason}", highlight=False)
        else:
            err.print(f"[bold red]audit trail TAMPERED[/]: {line}", highlight=False)
            for problem in sorted(report.problems, key=lambda p: p.seq):
                err.print(f"  {problem.render()}", markup=False, highlight=False)
    raise typer.Exit({"ok": 0, "tampered": 1, "unverifiable": 2}[report.status])


@audit_app.command("anchor")
def audit_anchor() -> None:
    """Anchor the trail's head now (``soc up`` does it on its own; a split deployment can run
    this from cron)."""
    from workflow import audit  # noqa: PLC0415

    anchor = audit.anchor_head(store(setup=False))
    if anchor is None:
        raise SocError("the anchor was not written (see the log above)", where=str(settings().audit_anchor_file))
    out.print(f"anchored record {anchor['seq']} in {settings().audit_anchor_file}")


@apikey_app.command("list")
def apikey_list(
    owner: Annotated[str | None, typer.Option(help="Only this person's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Every key with its owner, status, expiry and last use (never the key itself)."""
    from soc_api.routes.apikeys import public_keys  # noqa: PLC0415
    from soc_api.services.apikeys import list_keys  # noqa: PLC0415

    opened = store()
    keys, cursor = [], None
    while True:
        page = list_keys(opened, scope=None, owner=owner, size=500, cursor=cursor)
        keys += public_keys(opened, page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    if as_json:
        print_json([key.model_dump() for key in keys])
        return
    table = Table("id", "name", "tenant", "role", "owner", "status", "expires", "last used", box=None)
    for key in keys:
        last = f"{key.last_used_at} {key.last_used_ip or ''}".strip() if key.last_used_at else "never"
        table.add_row(key.id, key.name, key.tenant, key.role, key.owner or "—", key.status, key.expires_at, last)
    out.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key: the next request with it is refused."""
    from soc_api.services.apikeys import Caller, revoke_key  # noqa: PLC0415

    revoke_key(store(), key_id, scope=None, caller=Caller(cli_actor()))
    out.print(f"API key [bold]{key_id}[/] revoked")


@apikey_app.command("owner")
def apikey_owner(key_id: str, owner: str) -> None:
    """Give a key a new owner: for keys made before owners were required, or whose owner left."""
    from soc_api.services.apikeys import Caller, set_owner  # noqa: PLC0415

    set_owner(store(), key_id, owner=owner, caller=Caller(cli_actor()))
    out.print(f"API key [bold]{key_id}[/] now owned by [bold]{owner}[/]")


# --- development Elasticsearch ----------------------------------------------------------------
def _dev_node(workdir: Path, port: int) -> DevNode:
    return DevNode(workdir=workdir, port=port)


DevDir = Annotated[Path, typer.Option(help="Where the node keeps config, data and logs.")]


@es_app.command("fetch")
def es_fetch() -> None:
    """Download (with Maven) and unpack the Elasticsearch distribution into the cache."""
    with out.status(f"fetching Elasticsearch {ES_VERSION} from Maven Central…"):
        home = distribution_home()
    out.print(f"Elasticsearch {ES_VERSION} at {home}")


@es_app.command("start")
def es_start(
    workdir: DevDir = DEV_NODE_DIR,
    port: Annotated[int, typer.Option(help="HTTP port.")] = 9200,
) -> None:
    """Fetch (once, with Maven) and start a single-node Elasticsearch on loopback."""
    node = _dev_node(workdir, port)
    if node.running_pid():
        out.print(f"already running at {node.url}")
        return
    with out.status(f"starting Elasticsearch {ES_VERSION} (first run downloads it with Maven)…"):
        url = node.start()
    out.print(f"Elasticsearch {ES_VERSION} ready at [bold]{url}[/]")
    out.print(f"use it: SOC_STORE__BACKEND=elasticsearch SOC_STORE__ELASTICSEARCH__URL={url} soc up")


@es_app.command("stop")
def es_stop(workdir: DevDir = DEV_NODE_DIR) -> None:
    """Stop the development node."""
    node = _dev_node(workdir, 0)
    if not node.running_pid():
        out.print("not running")
        return
    node.stop()
    out.print("stopped")


@es_app.command("status")
def es_status(workdir: DevDir = DEV_NODE_DIR) -> None:
    """Is the development node running, and is the cluster healthy?"""
    node = _dev_node(workdir, 0)
    pid = node.running_pid()
    if not pid:
        out.print("not running")
        raise typer.Exit(1)
    import httpx  # noqa: PLC0415

    try:
        health = httpx.get(f"{node.url}/_cluster/health", timeout=5).json()
    except httpx.HTTPError as exc:
        raise SocError(f"running (pid {pid}) but not answering: {exc}", where=node.url) from exc
    out.print(f"pid {pid} at {node.url}: cluster {health.get('status')}")


def _register_subcommands() -> None:
    """Sub-apps from the other packages, given a way to open the configured store."""
    from detections.cli import build_rules_app  # noqa: PLC0415
    from intel.cli import build_intel_app  # noqa: PLC0415
    from playbooks.cli import build_playbook_app  # noqa: PLC0415
    from reports.cli import build_report_app  # noqa: PLC0415
    from scheduling.cli import build_jobs_app  # noqa: PLC0415
    from sensors.cli import build_sensor_app  # noqa: PLC0415
    from soc_api.scan_cli import build_scan_command  # noqa: PLC0415
    from soc_api.services.jobs import job_registry  # noqa: PLC0415

    # one pattern for every group from another package: build_<group>_app(open_store) -> Typer
    app.add_typer(build_sensor_app(lambda: open_store(settings())), name="sensor")  # pings and sets up itself
    app.add_typer(build_rules_app(store), name="rules")
    app.add_typer(build_playbook_app(store, settings), name="playbook")
    app.add_typer(build_intel_app(store), name="intel")
    app.add_typer(build_report_app(store, settings), name="report")
    app.add_typer(build_jobs_app(store, settings, lambda: job_registry(settings())), name="jobs")
    app.command("scan")(build_scan_command(settings))  # no store: reads files, prints matches


def main() -> None:
    if os.environ.get("SOC_LOG_JSON"):
        os.environ.setdefault("SOC_LOG__JSON_FORMAT", "true")
    _register_subcommands()
    try:
        # non-standalone click returns the exit code of typer.Exit instead of raising it
        code = app(standalone_mode=False)
    except SocError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.render())}", markup=True, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except (typer.Exit, SystemExit) as exc:
        code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
        raise SystemExit(code) from None
    except typer.TyperException as exc:  # usage errors (click's, vendored by typer) in non-standalone mode
        raise SystemExit(_usage_error(exc)) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _usage_error(exc: typer.TyperException) -> int:
    """One line for a bad command or value (the help for a group given nothing); its exit code."""
    from typer._click.exceptions import NoArgsIsHelpError  # noqa: PLC0415 - not re-exported by typer

    if isinstance(exc, NoArgsIsHelpError):
        exc.show()
        return 0
    context = getattr(exc, "ctx", None)
    command = context.command_path if context is not None else "soc"
    err.print(f"error: {exc.format_message()} (see `{command} --help`)", markup=False, highlight=False, soft_wrap=True)
    return 2


def print_json(data: object) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False))


__all__ = ["app", "main"]
