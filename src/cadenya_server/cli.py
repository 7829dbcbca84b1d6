"""The `cadenya-server` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select

from cadenya_server import demo_data
from cadenya_server.accounts import service as accounts
from cadenya_server.config import ConfigError, get_settings
from cadenya_server.kit import logging as kit_logging
from cadenya_server.kit import migrate as migrations
from cadenya_server.kit.errors import ApiError
from cadenya_server.kit.runtime import Runtime
from cadenya_server.models import Account, ApiKey, Profile
from cadenya_server.profiles import importer

app = typer.Typer(help="A self-hostable server for the Cadenya Account API.", no_args_is_help=True)
accounts_app = typer.Typer(help="Create accounts.", no_args_is_help=True)
profiles_app = typer.Typer(help="Load profiles in bulk.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(profiles_app, name="profiles")
err = Console(stderr=True)

DEMO_DOMAIN = "demo.cadenya.local"


def _runtime() -> Runtime:
    try:
        return Runtime.from_settings(get_settings())
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from exc


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


@app.callback()
def _setup() -> None:
    kit_logging.configure()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    runtime = _runtime()
    migrations.upgrade(runtime.db.engine)
    err.print("database is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
) -> None:
    """Serve the API (run `migrate` first)."""
    runtime = _runtime()
    if migrations.pending(runtime.db.engine):
        raise _fail("the database schema is not up to date; run `cadenya-server migrate`")
    runtime.db.dispose()
    # X-Forwarded-For names the client only when it comes from a proxy the operator
    # trusts; uvicorn's own default would trust it from 127.0.0.1.
    trusted_proxies = runtime.settings.forwarded_allow_ips
    uvicorn.run(
        "cadenya_server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
    )


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
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    try:
        with progress:
            task = progress.add_task("import", total=importer.count_rows(file))
            report = importer.import_records(
                db=runtime.db,
                account_id=account,
                records=importer.read_file(file),
                on_progress=lambda n: progress.advance(task, n),
            )
    except (importer.ImportAborted, UnicodeDecodeError) as exc:
        raise _fail(str(exc)) from exc
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
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    profiles: Annotated[int, typer.Option(help="How many demo profiles")] = 3000,
) -> None:
    """Migrate, create (or reuse) a demo account full of profiles, print how to call it, serve."""
    runtime = _runtime()
    migrations.upgrade(runtime.db.engine)
    account_id, api_key = _demo_account(runtime, profiles)
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    print(
        f"""
Cadenya Account API demo
  base URL   {base_url}
  account    {account_id}
  API key    {api_key}
  docs       {base_url}/docs

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
""",
        flush=True,
    )
    runtime.db.dispose()
    serve(host=host, port=port, workers=1)


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
