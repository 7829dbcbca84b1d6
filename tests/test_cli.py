"""`cadenya-server accounts create` and `cadenya-server profiles import`, run as a user would."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cadenya_server import __version__, demo_data
from cadenya_server.profiles import importer
from conftest import (
    SECRET_KEY,
    Server,
    Tenant,
    cli,
    descendants,
    free_port,
    jwt_for,
    new_database,
    processes,
    repo_root,
)
from search_model import PATH, walk


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    path.write_text(
        "".join(
            (json.dumps(line, ensure_ascii=False) if isinstance(line, dict) else line) + "\n"
            for line in lines
        ),
        encoding="utf-8",
    )
    return path


def import_file(server: Server, account_id: str, path: Path):
    return cli(server.env, "profiles", "import", "--account", account_id, str(path), check=False)


def by_email(server: Server, tenant: Tenant) -> dict[str, dict]:
    """Every profile of the account that has an email, through the API."""
    items = walk(server.http(tenant.api_key), limit=1000).items
    return {i["spec"]["email"].lower(): i for i in items if i["spec"]["email"]}


def assert_clean_failure(result) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout


def test_accounts_create_prints_one_json_object_with_a_working_key(server: Server) -> None:
    result = cli(
        server.env,
        "accounts",
        "create",
        "--name",
        "Globex",
        "--domain",
        "globex.test",
        "--admin-email",
        "Hank@Globex.test",
        "--admin-name",
        "Hank Scorpio",
        "--json",
    )
    created = json.loads(result.stdout)
    assert isinstance(created, dict)
    assert {"accountId", "adminProfileId", "apiKey"} <= set(created)
    client = server.client(created["apiKey"])
    account = client.accounts.retrieve()
    assert account.metadata.id == created["accountId"]
    assert account.metadata.name == "Globex"
    assert account.spec.domain == "globex.test"
    assert account.metadata.profile_id == created["adminProfileId"]
    (admin,) = client.workspace_admin.list_profiles(query="hank@globex")
    assert admin.metadata.id == created["adminProfileId"]
    assert admin.spec.type == "PROFILE_TYPE_USER" and admin.spec.name == "Hank Scorpio"
    # The administrator is one: a token for that profile may search the account.
    as_admin = server.http(jwt_for(server, created["adminProfileId"], created["accountId"]))
    assert as_admin.get(PATH).status_code == 200


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--admin-email", "not-an-email", "admin_email"),
        ("--admin-name", "Bad\x07Bell", "admin_name"),
    ],
)
def test_accounts_create_refuses_bad_input(
    server: Server, option: str, value: str, named: str
) -> None:
    arguments = {
        "--name": "Initech",
        "--domain": "initech.test",
        "--admin-email": "bill@initech.test",
        "--admin-name": "Bill Lumbergh",
        option: value,
    }
    result = cli(
        server.env,
        "accounts",
        "create",
        *[part for pair in arguments.items() for part in pair],
        "--json",
        check=False,
    )
    assert_clean_failure(result)
    assert result.stdout == ""
    assert named in result.stderr


def test_csv_import_reports_bad_rows_by_line_and_imports_the_good_ones(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        ["name", "email", "type", "role", "labels", "externalId"],
        [
            [
                "Grace Hopper",
                "grace@navy.test",
                "",
                "admin",
                "team=core;cadenya.com/tier=vip",
                "g-1",
            ],
            ["No Email", "", "", "", "", ""],
            ["Łukasz Nowak", "lukasz@example.pl", "user", "member", "", ""],
            ["Robot", "robot@example.com", "robot", "", "", ""],
            ["Boss", "boss@example.com", "", "boss", "", ""],
            ["Bad Label", "label@example.com", "", "", "team=not valid", ""],
            ["Cron", "cron@system.test", "system", "", "team=ops", ""],
            ["Half Label", "half@example.com", "", "", "team", ""],
        ],
    )
    result = import_file(server, account.id, path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in reported] == [
        "line 3",
        "line 5",
        "line 6",
        "line 7",
        "line 9",
    ]
    assert "robot" in reported[1] and "boss" in reported[2]
    # One line per bad row, the label key included.
    assert "labels[team]" in reported[3] and reported[3].endswith("allowed between")
    assert "imported 3 new, updated 0, rejected 5 rows" in result.stdout

    profiles = by_email(server, account)
    grace = profiles["grace@navy.test"]
    assert grace["spec"] == {
        "type": "PROFILE_TYPE_USER",
        "email": "grace@navy.test",
        "name": "Grace Hopper",
    }
    assert grace["metadata"]["labels"] == {"team": "core", "cadenya.com/tier": "vip"}
    assert grace["metadata"]["externalId"] == "g-1"
    assert profiles["lukasz@example.pl"]["spec"]["name"] == "Łukasz Nowak"
    assert profiles["cron@system.test"]["spec"]["type"] == "PROFILE_TYPE_SYSTEM"
    assert not {"robot@example.com", "boss@example.com", "label@example.com"} & set(profiles)
    # The role column decides who administers the account.
    as_grace = jwt_for(server, grace["metadata"]["id"], account.id)
    assert server.http(as_grace).get(PATH).status_code == 200
    lukasz = profiles["lukasz@example.pl"]["metadata"]["id"]
    assert server.http(jwt_for(server, lukasz, account.id)).get(PATH).status_code == 403


def test_json_lines_import(server: Server, account: Tenant, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "people.jsonl",
        [
            {
                "name": "Zoë Ärger",
                "email": "zoe@zoë-design.eu",
                "labels": {"team": "design", "cadenya.com/team": "x"},
                "externalId": "ext-42",
            },
            "",
            "{not json",
            {"name": "Deploy Bot", "email": "deploy@example.com", "type": "api_key"},
            '["a list"]',
            {"name": "Ops", "email": "ops@example.com", "type": "system", "role": "member"},
            {"name": "Labels As Text", "email": "lat@example.com", "labels": "team=x"},
            {"name": "Ada", "email": "ada@example.com", "role": "admin"},
        ],
    )
    result = import_file(server, account.id, path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    reported = [line.split(":")[0] for line in result.stderr.splitlines() if line[:5] == "line "]
    assert reported == ["line 3", "line 5", "line 7"]
    assert "imported 4 new, updated 0, rejected 3 rows" in result.stdout

    profiles = by_email(server, account)
    zoe = profiles["zoe@zoë-design.eu"]
    assert zoe["metadata"]["labels"] == {"team": "design", "cadenya.com/team": "x"}
    assert zoe["metadata"]["externalId"] == "ext-42"
    assert zoe["spec"]["type"] == "PROFILE_TYPE_USER"
    assert profiles["deploy@example.com"]["spec"]["type"] == "PROFILE_TYPE_API_KEY"
    assert profiles["ops@example.com"]["spec"]["type"] == "PROFILE_TYPE_SYSTEM"
    ada = profiles["ada@example.com"]["metadata"]["id"]
    assert server.http(jwt_for(server, ada, account.id)).get(PATH).status_code == 200
    found = server.client(account.api_key).workspace_admin.list_profiles(
        labels="cadenya.com/team=x"
    )
    assert [p.metadata.id for p in found] == [zoe["metadata"]["id"]]


def test_importing_twice_is_idempotent_by_email_in_any_case(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    rows = [["Ann Able", "Ann@Example.com", "team=a"], ["Bob Baker", "bob@example.com", ""]]
    path = write_csv(tmp_path / "first.csv", ["name", "email", "labels"], rows)
    assert "imported 2 new, updated 0" in import_file(server, account.id, path).stdout
    first = by_email(server, account)

    again = import_file(server, account.id, path)
    assert again.returncode == 0
    assert "imported 0 new, updated 2, rejected 0 rows" in again.stdout
    assert by_email(server, account).keys() == first.keys()

    shouted = write_csv(
        tmp_path / "second.csv",
        ["name", "email", "labels"],
        [["Ann Renamed", "ANN@EXAMPLE.COM", "team=b"], ["Cy New", "cy@example.com", ""]],
    )
    result = import_file(server, account.id, shouted)
    assert "imported 1 new, updated 1, rejected 0 rows" in result.stdout
    after = by_email(server, account)
    assert len(after) == len(first) + 1
    ann = after["ann@example.com"]
    assert ann["metadata"]["id"] == first["ann@example.com"]["metadata"]["id"]
    assert ann["spec"]["name"] == "Ann Renamed"
    assert ann["metadata"]["labels"] == {"team": "b"}
    total = server.http(account.api_key).get(PATH, params={"labels": "team=a"}).json()
    assert total["pagination"]["total"] == 0


def test_a_role_or_type_left_out_keeps_the_existing_one(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    first = write_csv(
        tmp_path / "roles.csv",
        ["name", "email", "type", "role"],
        [
            ["Grace Hopper", "grace@navy.test", "", "admin"],
            ["Alan Turing", "alan@bletchley.test", "", "admin"],
            ["Nightly Sync", "sync@system.test", "system", ""],
        ],
    )
    assert import_file(server, account.id, first).returncode == 0
    ids = {email: p["metadata"]["id"] for email, p in by_email(server, account).items()}
    # A plain list of names, then one that demotes Alan on purpose.
    names = write_csv(
        tmp_path / "names.csv",
        ["name", "email"],
        [["Rear Admiral Hopper", "grace@navy.test"], ["Sync", "sync@system.test"]],
    )
    assert "updated 2" in import_file(server, account.id, names).stdout
    demote = write_csv(
        tmp_path / "demote.csv",
        ["name", "email", "role"],
        [["Grace Hopper", "grace@navy.test", ""], ["Alan Turing", "alan@bletchley.test", "member"]],
    )
    assert "updated 2" in import_file(server, account.id, demote).stdout

    profiles = by_email(server, account)
    assert profiles["sync@system.test"]["spec"]["type"] == "PROFILE_TYPE_SYSTEM"
    assert profiles["grace@navy.test"]["spec"]["name"] == "Grace Hopper"

    def status(email: str) -> int:
        return server.http(jwt_for(server, ids[email], account.id)).get(PATH).status_code

    assert status("grace@navy.test") == 200
    assert status("alan@bletchley.test") == 403


def test_unknown_account_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", ["name", "email"], [["A", "a@example.com"]])
    result = import_file(server, "account_01HZZZZZZZZZZZZZZZZZZZZZZZ", path)
    assert_clean_failure(result)
    assert "account_01HZZZZZZZZZZZZZZZZZZZZZZZ" in result.stderr
    assert "imported" not in result.stdout


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("missing.csv", None, "no such file"),
        ("header.csv", "full_name,mail\nA,a@example.com\n", "header"),
        ("latin1.csv", "name,email\nJos\xe9,jose@example.com\n".encode("latin-1"), "utf-8"),
    ],
)
def test_unreadable_files_are_clear_errors(
    server: Server,
    account: Tenant,
    tmp_path: Path,
    name: str,
    content: str | bytes | None,
    says: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_bytes(content)
    result = import_file(server, account.id, path)
    assert_clean_failure(result)
    assert says in result.stderr.lower()


def test_messages_print_file_text_verbatim(server: Server, account: Tenant, tmp_path: Path) -> None:
    # Brackets in a bad row must reach the operator as written, not as terminal markup.
    path = write_csv(
        tmp_path / "markup.csv",
        ["name", "email", "labels"],
        [["A", "a@example.com", "[/]"], ["B", "b@example.com", "[bold]x"], ["C", "c@x.io", ""]],
    )
    result = import_file(server, account.id, path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "'[/]'" in result.stderr and "'[bold]x'" in result.stderr
    assert "imported 1 new" in result.stdout


def test_a_large_import_completes(server: Server, account: Tenant, tmp_path: Path) -> None:
    count = 20_000
    path = write_lines(tmp_path / "large.jsonl", list(demo_data.profiles(count, seed=3)))
    started = time.perf_counter()
    result = import_file(server, account.id, path)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert f"imported {count} new, updated 0, rejected 0 rows" in result.stdout
    total = server.http(account.api_key).get(PATH, params={"limit": 1}).json()
    # The account's administrator and its admin key come on top of the import.
    assert total["pagination"]["total"] == count + 2
    print(f"\nimported {count} profiles in {elapsed:.1f} s: {count / elapsed:.0f} rows/s")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_killed_import_takes_its_helper_processes_with_it(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    # Large enough for the gram counts of a batch to go to a helper process.
    path = write_lines(tmp_path / "big.jsonl", list(demo_data.profiles(150_000, seed=5)))
    command = ["profiles", "import", "--account", account.id, str(path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "cadenya_server", *command],
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The worker that counts grams, and multiprocessing's resource tracker.
        deadline = time.monotonic() + 120
        while len(helpers := descendants(process.pid)) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, "the import ended before it started its helpers"
            time.sleep(0.05)
        assert len(helpers) >= 2, "no helper process started"
        # Long enough for the worker to be counting: a worker still starting up ends by itself.
        time.sleep(3)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 10
    while (alive := helpers & processes().keys()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "helper processes outlived their import"


def test_count_labels_keeps_label_totals_of_an_account_exact(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    names = ["Anderson", "Jonsson", "Zoë Sonne", "Ada", "Łukasz"]
    lines = [
        {"name": f"{names[n % 5]} {n}", "email": f"p{n}@x.io", "labels": {"team": f"t{n % 3}"}}
        for n in range(40)
    ]
    assert import_file(server, account.id, write_lines(tmp_path / "t.jsonl", lines)).returncode == 0
    started = cli(server.env, "profiles", "count-labels", "--account", account.id)
    assert started.stdout.strip() == "label gram counts started"
    again = cli(server.env, "profiles", "count-labels", "--account", account.id)
    assert again.stdout.strip() == "label gram counts were already kept"
    unknown = cli(server.env, "profiles", "count-labels", "--account", "account_nope", check=False)
    assert_clean_failure(unknown)

    http = server.http(account.api_key)
    body = {"metadata": {"labels": {"team": "t1"}}, "spec": {"email": "s@x.io", "name": "Son"}}
    assert http.post(PATH, json=body).status_code == 200
    # One label and a short needle: the totals come from the counts the command started
    # and the triggers kept since; the pages walk the profiles themselves.
    for query in ("", "o", "son", "zoë", "łuk", "x.io"):
        found = walk(http, query=query, labels="team=t1", limit=7)
        assert set(found.totals) == {len(found.items)}, query
    assert len(walk(http, query="son", labels="team=t1").items) == 9  # 8 imported, and Son


def test_version_and_short_help(server_env: dict[str, str]) -> None:
    assert cli(server_env, "--version").stdout.strip() == f"cadenya-server {__version__}"
    assert cli(server_env, "-h").stdout == cli(server_env, "--help").stdout
    assert "--workers" in cli(server_env, "serve", "-h").stdout


def accounts_create(name: str, domain: str) -> list[str]:
    """The arguments of `accounts create` for NAME at DOMAIN."""
    return [
        *("accounts", "create", "--name", name, "--domain", domain),
        *("--admin-email", f"a@{domain}", "--admin-name", "A"),
    ]


BAD_SETTINGS = [
    ("CADENYA_SERVER_MAX_BODY_BYTES", "1MB"),
    ("CADENYA_SERVER_PORT", "http"),
    ("CADENYA_SERVER_PORT", "70000"),
    ("CADENYA_SERVER_LOG_LEVEL", "loud"),
    ("CADENYA_SERVER_SECRET_KEY", "too-short"),
    ("CADENYA_SERVER_SECRET_KEY_FILE", "/nonexistent/secret"),
    ("CADENYA_SERVER_DATABASE_URL", "mysql://root:hunter2@db/cadenya"),
]


def assert_one_line_naming(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("configuration error: ") and variable in line, line
    assert "hunter2" not in line


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_the_variable(
    server_env: dict[str, str], variable: str, value: str
) -> None:
    env = {**server_env, variable: value}
    if variable == "CADENYA_SERVER_SECRET_KEY_FILE":
        del env["CADENYA_SERVER_SECRET_KEY"]
    assert_one_line_naming(cli(env, "migrate", check=False), variable)


@pytest.mark.parametrize("command", ["serve", "demo", "accounts"])
def test_every_command_reads_the_settings_alike(server_env: dict[str, str], command: str) -> None:
    args = accounts_create("A", "a.test") if command == "accounts" else [command]
    env = {**server_env, "CADENYA_SERVER_MAX_BODY_BYTES": "1MB"}
    assert_one_line_naming(cli(env, *args, check=False), "CADENYA_SERVER_MAX_BODY_BYTES")


def test_the_secret_key_can_come_from_a_file(server: Server, tmp_path: Path) -> None:
    """As a mounted secret: the key in the file is the key (surrounding whitespace aside)."""
    key_file = tmp_path / "secret"
    key_file.write_text(f"\n{SECRET_KEY}\n")
    env = {k: v for k, v in server.env.items() if k != "CADENYA_SERVER_SECRET_KEY"}
    env["CADENYA_SERVER_SECRET_KEY_FILE"] = str(key_file)
    created = json.loads(cli(env, *accounts_create("Filed", "filed.test"), "--json").stdout)
    # API keys are found by an HMAC keyed from the secret key: the server, given the key
    # in its environment, finds this one.
    assert server.client(created["apiKey"]).accounts.retrieve().metadata.name == "Filed"
    result = cli({**env, "CADENYA_SERVER_SECRET_KEY": SECRET_KEY}, "migrate", check=False)
    assert result.returncode == 2 and "not both" in result.stderr
    # An empty mounted secret is a mistake, not a request for a generated key.
    key_file.write_text("\n")
    assert_one_line_naming(cli(env, "migrate", check=False), "CADENYA_SERVER_SECRET_KEY_FILE")


def test_index_long_needles_keeps_their_totals_exact(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    lines = [
        {"name": f"Anna Müller {n}", "email": f"anna.{n}@initech.io", "type": "user"}
        for n in range(30)
    ]
    assert import_file(server, account.id, write_lines(tmp_path / "n.jsonl", lines)).returncode == 0
    started = cli(server.env, "profiles", "index-long-needles", "--account", account.id)
    assert started.stdout.strip() == "long-needle bitmaps started"
    again = cli(server.env, "profiles", "index-long-needles", "--account", account.id)
    assert again.stdout.strip() == "long-needle bitmaps were already kept"
    unknown = cli(
        server.env, "profiles", "index-long-needles", "--account", "account_nope", check=False
    )
    assert_clean_failure(unknown)

    http = server.http(account.api_key)
    body = {"spec": {"email": "late@initech.io", "name": "Late Müller"}}
    assert http.post(PATH, json=body).status_code == 200
    for query, total in (("müller", 31), ("initech.io", 31), ("anna müller 1", 11), ("xyzqw", 0)):
        found = walk(http, query=query, limit=7)
        assert set(found.totals) == {total} and len(found.items) == total, query


UNMIGRATED_COMMANDS = [
    tuple(accounts_create("A", "a.test")),
    ("profiles", "import", "--account", "account_x", "{csv}"),
    ("profiles", "count-labels", "--account", "account_x"),
    ("profiles", "index-long-needles", "--account", "account_x"),
    ("token", "--profile", "profile_x"),
    ("serve", "--port", "{port}"),
]


@pytest.mark.parametrize("command", UNMIGRATED_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_refuses_an_unmigrated_database(
    server_env: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    csv_file = write_csv(tmp_path / "p.csv", ["name", "email"], [["A", "a@example.com"]])
    args = [a.format(csv=csv_file, port=free_port()) for a in command]
    with new_database(tmp_path) as url:
        env = {**server_env, "CADENYA_SERVER_DATABASE_URL": url}
        result = cli(env, *args, check=False)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.strip() == (
            "error: the database schema is not migrated; run `cadenya-server migrate`"
        )
        if command[0] != "serve":  # which would serve
            cli(env, "migrate")
            result = cli(env, *args, check=False)
            assert "cadenya-server migrate" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "command", [("migrate",), UNMIGRATED_COMMANDS[0]], ids=["migrate", "create"]
)
def test_an_unreachable_database_is_one_line(
    server_env: dict[str, str], command: tuple[str, ...]
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    result = cli({**server_env, "CADENYA_SERVER_DATABASE_URL": url}, *command, check=False)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot use the database: ") and "refused" in line, line


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_port_in_use_is_said_before_anything_else(
    server_env: dict[str, str], tmp_path: Path, command: str
) -> None:
    with new_database(tmp_path) as url, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**server_env, "CADENYA_SERVER_DATABASE_URL": url, "CADENYA_SERVER_LOG_LEVEL": "INFO"}
        if command == "serve":
            cli(env, "migrate")
        # As on a first `make run`: no secret key, so one would be generated (and logged).
        del env["CADENYA_SERVER_SECRET_KEY"]
        result = subprocess.run(
            [sys.executable, "-m", "cadenya_server", command],
            env={**env, "CADENYA_SERVER_PORT": str(port)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 1
    assert result.stdout == ""  # no banner, no API key
    (line,) = result.stderr.splitlines()
    assert f"port {port} on 127.0.0.1 is already in use" in line, line
    assert not (tmp_path / "data").exists()


def test_make_run_takes_a_port(server_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    with new_database(tmp_path) as url:
        env = {**server_env, "CADENYA_SERVER_DATABASE_URL": url}
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=repo_root(),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "make run did not serve within 180 s"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).is_success:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            banner, _ = process.communicate(timeout=30)
    assert f"base URL   http://127.0.0.1:{port}" in banner, banner
    api_key = re.search(r"API key    (cdy_\w+)", banner)
    assert api_key is not None, banner


def test_import_progress_counts_rows_as_they_are_read(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    rows = 2_500
    path = write_csv(
        tmp_path / "p.csv",
        ["name", "email"],
        [[f"P {n}", f"p{n}@progress.test"] for n in range(rows)],
    )
    assert importer.count_rows(path) == rows  # not the header
    seen: list[tuple[str, int]] = []
    importer.import_records(
        db=server.runtime.db,
        account_id=account.id,
        records=importer.read_file(path),
        on_read=lambda n: seen.append(("read", n)),
        on_progress=lambda n: seen.append(("saved", n)),
    )
    assert sum(n for kind, n in seen if kind == "read") == rows
    assert sum(n for kind, n in seen if kind == "saved") == rows
    # The bar moves while the batch is read, before anything is saved.
    first_saved = next(i for i, (kind, _n) in enumerate(seen) if kind == "saved")
    assert first_saved >= rows // importer.READ_STEP


def test_import_progress_on_a_terminal_ends_at_every_row(
    server: Server, account: Tenant, tmp_path: Path
) -> None:
    rows = 2_500
    path = write_csv(
        tmp_path / "p.csv",
        ["name", "email"],
        [[f"T {n}", f"t{n}@terminal.test"] for n in range(rows)],
    )
    command = [sys.executable, "-m", "cadenya_server", "profiles", "import"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [*command, "--account", account.id, str(path)], server.env)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert text.count(f"{rows}/{rows}") >= 2, text  # read and saved, both at their end
    assert f"/{rows + 1}" not in text
