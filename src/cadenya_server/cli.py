"""The `cadenya-server` command line."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from cadenya_server import __version__, demo_data
from cadenya_server.accounts import service as accounts
from cadenya_server.config import ConfigError, Settings, get_settings, load_settings
from cadenya_server.kit import logging as kit_logging
from cadenya_server.kit import metrics
from cadenya_server.kit import migrate as migrations
from cadenya_server.kit.errors import ApiError
from cadenya_server.kit.runtime import Runtime
from cadenya_server.models import Account, ApiKey, Profile
from cadenya_server.profiles import importer
from cadenya_server.webhooks.worker import Worker

app = typer.Typer(
    help="A self-hostable server for the Cadenya Account API.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
accounts_app = typer.Typer(help="Create accounts.", no_args_is_help=True)
profiles_app = typer.Typer(help="Load profiles in bulk.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(profiles_app, name="profiles")
err = Console(stderr=True)

DEMO_DOMAIN = "demo.cadenya.local"
HostOption = Annotated[
    str | None,
    typer.Option(help="Address to listen on  [default: CADENYA_SERVER_HOST, or 127.0.0.1]"),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        help="Port to listen on  [default: CADENYA_SERVER_PORT, or 8080]", min=1, max=65535
    ),
]


def _settings() -> Settings:
    """The settings as the environment gives them, logging set up as they say; a bad one
    ends the command (exit 2). Nothing is written yet (see `_runtime`)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        for line in str(exc).splitlines():
            err.print(f"[red]configuration error:[/] {escape(line)}", soft_wrap=True)
        raise typer.Exit(2) from None
    kit_logging.configure(level=settings.log_level, log_format=settings.log_format)
    return settings


def _runtime(*, migrated: bool = True) -> Runtime:
    """What the commands work with; unless `migrated=False`, refused on a stale schema."""
    _settings()
    # Only now, when a command is past its checks, may a development secret key be made.
    runtime = Runtime.from_settings(get_settings())
    if migrated:
        schema = migrations.schema_state(runtime.db.engine)
        if schema is not migrations.SchemaState.CURRENT:
            raise _fail(f"the database schema is {schema.value}")
    return runtime


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def _print_version(value: bool) -> None:
    if value:
        print(f"cadenya-server {__version__}")
        raise typer.Exit()


@app.callback()
def _setup(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    # Until a command reads the settings, which may change the level and format.
    kit_logging.configure()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    _migrate(_runtime(migrated=False))
    err.print("database is up to date")


def _migrate(runtime: Runtime) -> None:
    if migrations.schema_state(runtime.db.engine) is migrations.SchemaState.UNKNOWN:
        raise _fail(f"the database schema is {migrations.SchemaState.UNKNOWN.value}")
    migrations.upgrade(runtime.db.engine)


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[int, typer.Option(help="Worker processes", min=1)] = 1,
    webhook_worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Send webhooks from this server too (off: run `cadenya-server worker`)",
        ),
    ] = True,
) -> None:
    """Serve the API (run `migrate` first)."""
    if not webhook_worker:
        # Read by every server process, those uvicorn starts included.
        os.environ["CADENYA_SERVER_WEBHOOK_WORKER"] = "0"
        get_settings.cache_clear()
    settings = _settings()
    host, port = host or settings.host, port or settings.port
    _check_port(host, port)
    _runtime().db.dispose()
    _serve(settings, host=host, port=port, workers=workers)


def _check_port(host: str, port: int) -> None:
    """Say plainly, before anything else, that the address is taken or unusable."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise _fail(f"cannot listen on {host}: {exc.strerror}") from None
    # As uvicorn will bind: SO_REUSEADDR, so a port in TIME_WAIT counts as free.
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _fail(
                    f"port {port} on {host} is already in use; choose another with --port, "
                    "CADENYA_SERVER_PORT or `make run PORT=…`"
                ) from None
            raise _fail(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    json_logs = kit_logging.wants_json(settings.log_format)
    with metrics.prepared(workers=workers):
        uvicorn.run(
            "cadenya_server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            # Applied in this process and in every worker: the same lines from all of them.
            log_config=kit_logging.dict_config(level=settings.log_level, json=json_logs),
            server_header=False,
            # uvicorn replaces a worker that does not answer its ping in time; on a busy
            # machine a starting worker took longer than the default 5 s to import.
            timeout_worker_healthcheck=30,
            # X-Forwarded-For names the client only when it comes from a proxy the operator
            # trusts; uvicorn's own default would trust it from 127.0.0.1.
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        )


@app.command()
def worker() -> None:
    """Send webhooks, alone (beside servers started with `serve --no-worker`, or more of
    them: any number of workers share the work)."""
    runtime = _runtime()
    delivery = Worker(db=runtime.db, keyring=runtime.keyring, settings=runtime.settings.webhooks)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, delivery.stop)
        await delivery.run()

    err.print("webhook worker started", _networks_note(runtime))
    asyncio.run(main())
    runtime.db.dispose()


def _networks_note(runtime: Runtime) -> str:
    allowed = runtime.settings.webhooks.allowed_networks
    return f"(also reaching {', '.join(allowed)})" if allowed else ""


def _webhooks_note(runtime: Runtime) -> str:
    allowed = runtime.settings.webhooks.allowed_networks
    if not allowed:
        return ""
    return f"""
Webhooks may reach {", ".join(allowed)} (CADENYA_SERVER_WEBHOOK_ALLOWED_NETWORKS): a
receiver on this machine works. Production servers reach public addresses only.
"""


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="Account name")],
    domain: Annotated[str, typer.Option(help="The account's domain")],
    admin_email: Annotated[str, typer.Option(help="Email of the first administrator")],
    admin_name: Annotated[str, typer.Option(help="Name of the first administrator")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create an account with its first administrator and an admin API key."""
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            created = accounts.create(
                session=session,
                keyring=runtime.keyring,
                name=name,
                domain=domain,
                admin_email=admin_email,
                admin_name=admin_name,
            )
    except ApiError as exc:
        raise _fail(exc.message) from exc
    result = {
        "accountId": created.account.id,
        "adminProfileId": created.admin.id,
        "workspaceId": created.workspace_id,
        "apiKeyId": created.api_key_id,
        "apiKey": created.api_key,
    }
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


@profiles_app.command("import")
def profiles_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header row, or JSON Lines")],
    account: Annotated[str, typer.Option(help="The account to import into")],
) -> None:
    """Import profiles; idempotent by email, bad rows reported by line number."""
    if not file.is_file():
        raise _fail(f"no such file: {file}")
    runtime = _runtime()
    progress = Progress(
        TextColumn("{task.description:>5}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    try:
        with progress:
            rows = importer.count_rows(file)
            read = progress.add_task("read", total=rows)
            # Rows saved (a batch's at its commit) or rejected.
            done = progress.add_task("saved", total=rows)
            report = importer.import_records(
                db=runtime.db,
                account_id=account,
                records=importer.read_file(file),
                on_read=lambda n: progress.advance(read, n),
                on_progress=lambda n: progress.advance(done, n),
            )
            # The count was an estimate (a CSV value may span lines): end at what was read.
            total = int(progress.tasks[read].completed)
            for task in (read, done):
                progress.update(task, total=total, completed=total)
    except (importer.ImportAborted, UnicodeDecodeError) as exc:
        raise _fail(str(exc)) from exc
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}") from exc
    for line, message in report.errors:
        # Messages quote the file: print them as written, one line each, never as markup.
        err.print(f"line {line}: {message}", markup=False, soft_wrap=True)
    print(
        f"imported {report.inserted} new, updated {report.updated}, "
        f"rejected {len(report.errors)} rows"
    )
    if report.errors:
        raise typer.Exit(1)


@profiles_app.command("count-labels")
def profiles_count_labels(
    account: Annotated[str, typer.Option(help="The account whose label searches to speed up")],
) -> None:
    """Keep gram counts per label for a large account (imports past 50,000 profiles do)."""
    runtime = _runtime()
    try:
        started = importer.count_labels(db=runtime.db, account_id=account)
    except importer.ImportAborted as exc:
        raise _fail(str(exc)) from exc
    print("label gram counts started" if started else "label gram counts were already kept")


@profiles_app.command("index-long-needles")
def profiles_index_long_needles(
    account: Annotated[str, typer.Option(help="The account whose long needles to speed up")],
) -> None:
    """Keep bitmaps that count needles of four or more characters exactly for a large
    account (imports past 50,000 profiles do)."""
    runtime = _runtime()
    try:
        started = importer.keep_bitmaps(db=runtime.db, account_id=account)
    except importer.ImportAborted as exc:
        raise _fail(str(exc)) from exc
    print("long-needle bitmaps started" if started else "long-needle bitmaps were already kept")


@app.command()
def token(
    profile: Annotated[str, typer.Option(help="The profile the token speaks for")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds", min=1, max=30 * 86400)] = 3600,
) -> None:
    """Print a JWT for a user or system profile."""
    runtime = _runtime()
    with runtime.db.transaction(write=False) as session:
        row = session.get(Profile, profile)
        if row is None:
            raise _fail(f"no profile {profile}")
        if row.type == "api_key":
            raise _fail("API-key profiles authenticate with their key, not a JWT")
        account_id = row.account_id
    print(runtime.jwt.mint(profile_id=profile, account_id=account_id, ttl_seconds=ttl))


@app.command()
def demo(
    host: HostOption = None,
    port: PortOption = None,
    profiles: Annotated[int, typer.Option(help="How many demo profiles", min=0)] = 3000,
) -> None:
    """Migrate, create (or reuse) a demo account full of profiles, print how to call it, serve."""
    settings = _settings()
    host, port = host or settings.host, port or settings.port
    _check_port(host, port)
    runtime = _runtime(migrated=False)
    _migrate(runtime)
    account_id, api_key = _demo_account(runtime, profiles)
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    print(
        f"""
Cadenya Account API demo
  base URL   {base_url}
  account    {account_id}
  API key    {api_key}
  docs       {base_url}/docs
  console    {base_url}/console (sign in with the API key)

Try it with the official client (pip install cadenya==1.8.0):

    from cadenya import Cadenya

    client = Cadenya(api_key="{api_key}", base_url="{base_url}")
    print(client.accounts.retrieve().metadata.name)
    page = client.workspace_admin.list_profiles(query="zoë", limit=5)
    for profile in page.items:
        print(profile.spec.name, profile.spec.email)

or with curl:

    curl -H 'Authorization: Bearer {api_key}' \\
      '{base_url}/v1/account/profiles?query=zo%C3%AB&limit=5'
{_webhooks_note(runtime)}""",
        flush=True,
    )
    runtime.db.dispose()
    _serve(settings, host=host, port=port, workers=1)


def _demo_account(runtime: Runtime, count: int) -> tuple[str, str]:
    """The demo account and its admin key; made, with its profiles, on the first run only."""
    with runtime.db.transaction() as session:
        existing = session.scalars(select(Account).where(Account.domain == DEMO_DOMAIN)).first()
        if existing is not None:
            key = session.scalars(
                select(ApiKey).where(ApiKey.account_id == existing.id, ApiKey.is_default)
            ).first()
            if key is not None:
                token = runtime.keyring.decrypt(key.token_ciphertext, context=key.id)
                return existing.id, token
        created = accounts.create(
            session=session,
            keyring=runtime.keyring,
            name="Acme Demo",
            domain=DEMO_DOMAIN,
            admin_email="ada@acme.io",
            admin_name="Ada Lovelace",
        )
    err.print(f"loading {count} demo profiles…")
    importer.import_records(
        db=runtime.db,
        account_id=created.account.id,
        records=enumerate(demo_data.profiles(count), start=1),
    )
    return created.account.id, created.api_key


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except OperationalError as exc:
        # The database is down, unreachable or refuses us: expected, and no bug of ours.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err.print(f"[red]error:[/] cannot use the database: {escape(reason)}", soft_wrap=True)
        sys.exit(1)
