"""`cadenya-server serve --workers 2`: both workers start, serve, and are never killed."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import Server, descendants, free_port

# uvicorn pings every worker about twice a second and kills one that does not
# answer within its health-check timeout (5 s): watch several of those rounds.
WATCH_SECONDS = 12


def workers_of(pid: int) -> set[int]:
    """The worker processes of a server (not multiprocessing's resource tracker)."""
    return {
        child
        for child in descendants(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    }


def connection_owners(port: int) -> set[int]:
    """The processes holding the server's side of established connections to `port`."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", listing)}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc and ss")
def test_two_workers_start_serve_and_stay(server: Server, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    # The installed command, as an operator runs it: how it starts its workers is the point.
    command = Path(sys.executable).with_name("cadenya-server")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(command), "serve", "--port", str(port), "--workers", "2"],
            env={**server.env, "CADENYA_SERVER_LOG_LEVEL": "INFO"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while len(workers := workers_of(process.pid)) < 2 or not _healthy(base):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)

        # Many connections at once, held open: the kernel hands them to both workers.
        clients = [httpx.Client(base_url=base, timeout=30) for _ in range(48)]
        try:
            watch_until = time.monotonic() + WATCH_SECONDS
            owners: set[int] = set()
            with ThreadPoolExecutor(len(clients)) as pool:
                while time.monotonic() < watch_until:
                    statuses = list(pool.map(lambda c: c.get("/healthz").status_code, clients))
                    assert statuses == [200] * len(clients)
                    owners |= connection_owners(port)
                    for index in range(0, len(clients), 2):
                        # A new connection next round, to whichever worker accepts it.
                        clients[index].close()
                        clients[index] = httpx.Client(base_url=base, timeout=30)
                    time.sleep(0.5)
        finally:
            for client in clients:
                client.close()
        assert workers_of(process.pid) == workers, log.read_text()
        assert owners == workers
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert "died" not in text and "Terminated child" not in text.split("Received SIGTERM")[0]


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
