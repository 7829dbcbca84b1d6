"""What an operator watches: /livez and /readyz, the logs and the metrics of
`serve --workers N`, each through a real server process of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cadenya_server.kit import migrate
from cadenya_server.kit.db import Database
from conftest import cli, free_port, new_database, stop_server

STARTED = re.compile(r"Started server process \[(\d+)\]")


@dataclass
class Served:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]

    def worker_pids(self) -> list[int]:
        return [int(m.group(1)) for line in self.lines() if (m := STARTED.search(line))]


@contextmanager
def serving(env: dict[str, str], tmp_path: Path, *args: str) -> Iterator[Served]:
    """`cadenya-server serve ARGS`, its stderr in a file, once it answers /readyz."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cadenya_server", "serve", "--port", str(port), *args],
            env=env,
            stderr=stderr,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until(lambda: _answers(f"{served.base_url}/readyz"), process, log)
        yield served
    finally:
        stop_server(process)


def wait_until(ready, process: subprocess.Popen[bytes], log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"not ready in {seconds} s:\n{log.read_text()}"
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def own_env(
    server_env: dict[str, str], migrated_template: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The suite's environment on a database of this test's own, migrated, logging at INFO."""
    with new_database(tmp_path, like=migrated_template) as url:
        env = {**server_env, "CADENYA_SERVER_DATABASE_URL": url, "CADENYA_SERVER_LOG_LEVEL": "INFO"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        yield env


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if labels.items() <= found.items():
            total += float(match.group(2))
    return total


def test_livez_and_readyz_follow_the_schema(own_env: dict[str, str], tmp_path: Path) -> None:
    db = Database(own_env["CADENYA_SERVER_DATABASE_URL"])
    try:
        with serving(own_env, tmp_path) as served, httpx.Client(base_url=served.base_url) as http:
            for path in ("/livez", "/readyz", "/healthz"):
                response = http.get(path)
                assert (response.status_code, response.json()) == (200, {"status": "ok"}), path
            # A schema one migration behind: not ready, though the database answers.
            migrate.downgrade(db.engine, "-1")
            response = http.get("/readyz")
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["code"] == 14 and body["details"] == []
            assert "run `cadenya-server migrate`" in body["message"], body
            assert http.get("/livez").status_code == 200
            assert http.get("/healthz").status_code == 200
            migrate.upgrade(db.engine)
            assert http.get("/readyz").status_code == 200
    finally:
        db.dispose()


def test_workers_share_their_metrics_and_log_json(own_env: dict[str, str], tmp_path: Path) -> None:
    calls = 120
    with serving(own_env, tmp_path, "--workers", "2") as served:
        wait_until(lambda: len(set(served.worker_pids())) == 2, served.process, served.log)
        ids = [f"req-{n}" for n in range(calls)]

        def call(request_id: str) -> int:
            # A connection each, so the calls spread over the workers.
            headers = {"X-Request-Id": request_id, "Connection": "close"}
            return httpx.get(f"{served.base_url}/livez", headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(call, ids)) == {200}
        # Whichever worker answers the scrape counts every worker's calls.
        for _ in range(6):
            exposition = httpx.get(f"{served.base_url}/metrics", headers={"Connection": "close"})
            assert samples(exposition.text, "cadenya_http_requests_total", route="/livez") == calls
            assert (
                samples(exposition.text, "cadenya_http_request_seconds_count", route="/livez")
                == calls
            )
        # Two workers, each with its pool, summed.
        pool_size = samples(exposition.text, "cadenya_db_pool_size")
        assert pool_size > 0 and pool_size % 2 == 0
        assert samples(exposition.text, "cadenya_db_pool_checked_out") >= 0

        # A worker killed outright: its replacement's gauges count, not both.
        first = served.worker_pids()
        os.kill(first[0], signal.SIGKILL)

        def replacement_started() -> bool:
            return any(
                e["event"] == "Application startup complete." and e["pid"] not in first
                for e in served.events()
            )

        wait_until(replacement_started, served.process, served.log)
        for _ in range(6):
            exposition = httpx.get(f"{served.base_url}/metrics", headers={"Connection": "close"})
            assert samples(exposition.text, "cadenya_db_pool_size") == pool_size
            assert samples(exposition.text, "cadenya_http_requests_total", route="/livez") == calls

    # Every line of every process is one JSON object with a timestamp and a level.
    events = served.events()
    assert all({"timestamp", "level", "event", "pid"} <= event.keys() for event in events)
    requests = [e for e in events if e["event"] == "request" and e.get("path") == "/livez"]
    assert sorted(e["request_id"] for e in requests) == sorted(ids)
    assert len({e["pid"] for e in requests}) == 2, "the calls did not reach both workers"
    assert any(e["logger"].startswith("uvicorn") for e in events)


def test_commands_log_json_lines_or_console_lines(own_env: dict[str, str]) -> None:
    # Alembic's lines, in the shape of every other line.
    result = cli(own_env, "migrate")
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(line["logger"].startswith("alembic") for line in lines), result.stderr
    assert all({"timestamp", "level"} <= line.keys() for line in lines)

    result = cli({**own_env, "CADENYA_SERVER_LOG_FORMAT": "console"}, "migrate")
    alembic = [line for line in result.stderr.splitlines() if "alembic" in line]
    assert alembic and not any(line.startswith("{") for line in alembic), result.stderr
    assert all(re.match(r"\d{4}-\d\d-\d\dT", line) for line in alembic), alembic
