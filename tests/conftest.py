"""The test harness: a real database (SQLite file or a fresh PostgreSQL database),
migrated by the real CLI, and a real server process on a free port.

`CADENYA_TEST_DATABASE_URL` chooses the database: unset means a SQLite file in
a temporary folder; a PostgreSQL URL means a new database is created beside
the one named, used for this run, and dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest
from cadenya import Cadenya
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cadenya_server.accounts import service as accounts
from cadenya_server.config import Settings
from cadenya_server.kit.db import engine_url
from cadenya_server.kit.runtime import Runtime

SECRET_KEY = "test-secret-key-" + "x" * 32
LOOPBACK = "127.0.0.0/8,::1/128"
# For a server that a test floods on purpose: rate limits off (an empty rate turns one off).
NO_RATE_LIMITS = {
    "CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL": "",
    "CADENYA_SERVER_RATE_LIMIT_FAILED_AUTH": "",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def new_database(sqlite_dir: Path, *, like: str | None = None) -> Iterator[str]:
    """The URL of an empty database of the suite's kind, dropped afterwards; a copy of the
    database at URL `like` when given (one that nothing is connected to)."""
    given = os.environ.get("CADENYA_TEST_DATABASE_URL", "")
    if not given.startswith("postgres"):
        path = sqlite_dir / "cadenya.db"
        if like is not None:
            copy_sqlite(Path(make_url(like).database or ""), path)
        yield f"sqlite:///{path}"
        return
    name = f"cadenya_test_{secrets.token_hex(4)}"
    template = f' TEMPLATE "{make_url(like).database}"' if like is not None else ""
    admin = create_engine(engine_url(given), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{template}'))
    try:
        yield make_url(given).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def copy_sqlite(source: Path, target: Path) -> None:
    """A SQLite database file copied with its write-ahead log, if one is left."""
    for suffix in ("", "-wal"):
        if (found := source.with_name(source.name + suffix)).exists():
            shutil.copyfile(found, target.with_name(target.name + suffix))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with new_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def migrated_template(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database migrated once by the real CLI and never used: `new_database(dir,
    like=migrated_template)` copies it for a test that needs a migrated database of its
    own, cheaper than migrating one more."""
    with new_database(tmp_path_factory.mktemp("template")) as url:
        cli({**server_env, "CADENYA_SERVER_DATABASE_URL": url}, "migrate")
        yield url


# The longest files (by `pytest --durations`) start first: pytest-xdist hands out whole
# files in collection order (`make test`), and one of these left for last would run alone
# while the other processes sit idle. Only the order changes, never what runs.
LONGEST_FILES = (
    "test_webhook_durability.py",
    "test_openapi_contract.py",
    "test_throughput_bench_smoke.py",
    "test_bench_smoke.py",
    "test_cli.py",
    "test_search_writers.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(LONGEST_FILES)}
    # A stable sort: the tests of a file keep their order.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def server_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CADENYA_SERVER_DATABASE_URL": database_url,
        "CADENYA_SERVER_SECRET_KEY": SECRET_KEY,
        "CADENYA_SERVER_LOG_LEVEL": "WARNING",
        # The webhook receivers of the tests listen on loopback, and retry fast.
        "CADENYA_SERVER_WEBHOOK_ALLOWED_NETWORKS": LOOPBACK,
        "CADENYA_SERVER_WEBHOOK_RETRY_SCHEDULE": "1,1,2",
        "CADENYA_SERVER_WEBHOOK_TIMEOUT_SECONDS": "2",
        # The suite makes many requests quickly, hundreds with forged tokens among them;
        # tests/test_rate_limits.py starts its own servers with low limits.
        "CADENYA_SERVER_RATE_LIMIT_FAILED_AUTH": "100000/minute",
        "CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL": "1000000/minute",
    }


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `cadenya-server ARGS` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cadenya_server", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


@dataclass
class Server:
    base_url: str
    env: dict[str, str]
    runtime: Runtime
    process: subprocess.Popen[bytes] = field(repr=False)

    def client(self, token: str) -> Cadenya:
        """The official client, authenticated with `token`."""
        return Cadenya(api_key=token, base_url=self.base_url)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


START_SECONDS = 90


def start_server(
    env: dict[str, str], port: int, *args: str, log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """A `cadenya-server serve` process, returned once it answers /healthz; its output goes
    to `log` when given."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cadenya_server", "serve", "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=log,
    )
    # Generous: on a loaded machine (both databases' runs side by side) a start can
    # take far longer than usual; a server that fails to start says so at once.
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start within {START_SECONDS} s")


def processes() -> dict[int, tuple[str, int]]:
    """Every living process's (state, parent pid), from Linux's /proc; zombies left out."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        # The command name may hold spaces and parentheses: the fields follow its last ')'.
        state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
        if entry.name.isdigit() and state != "Z":
            found[int(entry.name)] = (state, int(parent))
    return found


def descendants(pid: int) -> set[int]:
    """The living processes below `pid`."""
    table = processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, (_, parent) in table.items() if parent in frontier}
        found |= frontier
    return found


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def server(server_env: dict[str, str], database_url: str) -> Iterator[Server]:
    cli(server_env, "migrate")
    port = free_port()
    process = start_server(server_env, port)
    runtime = Runtime.from_settings(
        Settings(
            database_url=database_url,
            secret_key=SECRET_KEY,
            issuer="cadenya-server",
            audience="cadenya-api",
            max_body_bytes=1024 * 1024,
            jwt_leeway_seconds=30,
        )
    )
    yield Server(f"http://127.0.0.1:{port}", server_env, runtime, process)
    stop_server(process)
    runtime.db.dispose()


@dataclass(frozen=True)
class Tenant:
    id: str
    admin_profile_id: str
    workspace_id: str
    api_key: str
    api_key_id: str


def make_account(server: Server, *, name: str = "Acme", domain: str = "acme.io") -> Tenant:
    """A fresh account with an admin, a default workspace and an admin API key."""
    with server.runtime.db.transaction() as session:
        created = accounts.create(
            session=session,
            keyring=server.runtime.keyring,
            name=name,
            domain=domain,
            admin_email=f"admin-{secrets.token_hex(4)}@{domain}",
            admin_name="Ada Admin",
        )
    return Tenant(
        id=created.account.id,
        admin_profile_id=created.admin.id,
        workspace_id=created.workspace_id,
        api_key=created.api_key,
        api_key_id=created.api_key_id,
    )


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    """A real OpenID Provider on loopback (oidc-provider-mock); its issuer URL."""
    from oidc_providers import real_provider

    with real_provider() as issuer:
        yield issuer


@pytest.fixture
def account(server: Server) -> Tenant:
    return make_account(server)


def jwt_for(server: Server, profile_id: str, account_id: str, ttl: int = 600) -> str:
    return server.runtime.jwt.mint(profile_id=profile_id, account_id=account_id, ttl_seconds=ttl)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def make_profile(
    server: Server,
    account_id: str,
    *,
    name: str,
    email: str = "",
    type: str = "user",
    role: str = "member",
    labels: dict[str, str] | None = None,
) -> str:
    """A profile added straight to the database; its id."""
    from cadenya_server.profiles import repository

    with server.runtime.db.transaction() as session:
        return repository.add(
            session,
            account_id=account_id,
            type=type,
            role=role,
            name=name,
            email=email,
            labels=labels,
        ).id


def make_api_key(
    server: Server,
    account: Tenant,
    *,
    permissions: list[str],
    all_workspaces: bool = False,
    workspace_ids: tuple[str, ...] = (),
) -> str:
    """An API key added straight to the database, assigned to `workspace_ids`; its token."""
    from cadenya_server.api_keys import service
    from cadenya_server.models import ApiKeyWorkspace

    with server.runtime.db.transaction() as session:
        issued = service.issue(
            session=session,
            keyring=server.runtime.keyring,
            account_id=account.id,
            name=f"test key {secrets.token_hex(3)}",
            permissions=permissions,
            creator_profile_id=account.admin_profile_id,
            all_workspaces=all_workspaces,
        )
        for workspace_id in workspace_ids:
            session.add(
                ApiKeyWorkspace(
                    api_key_id=issued.key.id, workspace_id=workspace_id, account_id=account.id
                )
            )
    return issued.token
