"""At least once, and never twice at once: servers and workers killed with SIGKILL in
the middle of a burst lose nothing, and several of them on one PostgreSQL share the
work without sending a message twice. Each test runs its own processes on a database
of its own, with a receiver that counts distinct webhook-ids."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import cli, free_port, new_database, start_server
from webhook_receiver import Receiver, add_endpoint, secret_of, verify

BURST = 1000
# How the receivers of the kill tests answer: slowly enough that a kill always finds
# attempts in flight (at most CONCURRENCY / 0.5 s a second get through).
SLOW = (200, {}, 0.5)
ON_POSTGRES = os.environ.get("CADENYA_TEST_DATABASE_URL", "").startswith("postgres")


@dataclass
class Plane:
    env: dict[str, str]
    api_key: str
    processes: list[subprocess.Popen[bytes]]

    def serve(self, *args: str) -> str:
        port = free_port()
        process = start_server(self.env, port, *args)
        self.processes.append(process)
        return f"http://127.0.0.1:{port}"

    def worker(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "cadenya_server", "worker"], env=self.env)
        self.processes.append(process)
        return process


@pytest.fixture
def plane(server_env: dict[str, str], migrated_template: str, tmp_path: Path) -> Iterator[Plane]:
    with new_database(tmp_path, like=migrated_template) as url:
        env = {**server_env, "CADENYA_SERVER_DATABASE_URL": url}
        created = json.loads(
            cli(
                env,
                "accounts",
                "create",
                "--name",
                "Burst",
                "--domain",
                "burst.io",
                "--admin-email",
                "ada@burst.io",
                "--admin-name",
                "Ada",
                "--json",
            ).stdout
        )
        made = Plane(env, created["apiKey"], [])
        try:
            yield made
        finally:
            for process in made.processes:
                if process.poll() is None:
                    process.kill()
                process.wait()


def publish(base_urls: list[str], api_key: str, count: int, sent: list[str]) -> None:
    """POST `count` messages spread over the servers; the ids of those that committed."""
    lock = threading.Lock()

    def one(n: int) -> None:
        try:
            response = httpx.post(
                f"{base_urls[n % len(base_urls)]}/v1/account/webhook_messages",
                headers={"Authorization": f"Bearer {api_key}"},
                json={"type": "burst.item", "data": {"n": n}},
                timeout=30,
            )
        except httpx.HTTPError:
            return  # the server was killed under it: nothing committed that we know of
        if response.status_code == 200:
            with lock:
                sent.append(response.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def distinct(receiver: Receiver) -> set[str]:
    return {d.id for d in list(receiver.deliveries)}


def wait_all(receiver: Receiver, ids: list[str], timeout: float = 120) -> None:
    receiver.wait_for(lambda ds: {d.id for d in ds} >= set(ids), timeout=timeout)


def _setup(plane: Plane, base_url: str, receiver: Receiver) -> None:
    headers = {"Authorization": f"Bearer {plane.api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        add_endpoint(http, receiver.url, eventTypes=["burst.item"])


def test_sigkill_of_the_server_mid_burst_loses_nothing(plane: Plane) -> None:
    # A receiver slow enough that attempts are in flight when the server dies: their
    # leases must pass before another worker sends them again.
    receiver = Receiver(plan=lambda n, d: SLOW).start()
    try:
        first = plane.serve()
        _setup(plane, first, receiver)
        sent: list[str] = []
        burst = threading.Thread(target=publish, args=([first], plane.api_key, BURST, sent))
        burst.start()
        receiver.wait_for(lambda ds: len(ds) >= BURST // 4, timeout=60)
        plane.processes[0].send_signal(signal.SIGKILL)
        burst.join()
        assert 0 < len(sent) < BURST  # killed mid-burst
        second = plane.serve()
        more: list[str] = []
        publish([second], plane.api_key, 10, more)
        wait_all(receiver, sent + more)
        assert distinct(receiver) >= set(sent + more)
        secret = secret_of_plane(second, plane.api_key)
        for delivery in list(receiver.deliveries)[:20]:
            verify(delivery, secret)
    finally:
        receiver.stop()


def test_sigkill_of_a_worker_mid_burst_loses_nothing(plane: Plane) -> None:
    receiver = Receiver(plan=lambda n, d: SLOW).start()
    try:
        api = plane.serve("--no-worker")
        _setup(plane, api, receiver)
        sent: list[str] = []
        publish([api], plane.api_key, BURST, sent)
        assert len(sent) == BURST
        assert distinct(receiver) == set()  # `serve --no-worker` sends nothing
        worker = plane.worker()
        receiver.wait_for(lambda ds: len(ds) >= BURST // 4, timeout=60)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert len(distinct(receiver)) < BURST
        plane.worker()
        wait_all(receiver, sent)
    finally:
        receiver.stop()


@pytest.mark.skipif(not ON_POSTGRES, reason="several processes share the work on PostgreSQL")
def test_two_servers_and_two_workers_never_send_a_message_twice(plane: Plane) -> None:
    receiver = Receiver().start()
    try:
        servers = [plane.serve(), plane.serve()]
        plane.worker()
        plane.worker()
        _setup(plane, servers[0], receiver)
        # And an ordered endpoint, whose runs the workers claim while the servers write.
        with httpx.Client(
            base_url=servers[0], headers={"Authorization": f"Bearer {plane.api_key}"}
        ) as http:
            add_endpoint(http, f"{receiver.url}/ordered", eventTypes=["burst.item"], ordered=True)
        sent: list[str] = []
        publish(servers, plane.api_key, BURST, sent)
        assert len(sent) == BURST
        receiver.wait_for(lambda ds: len(ds) >= 2 * BURST, timeout=120)
        time.sleep(1)
        for path in ("/hooks", "/hooks/ordered"):
            ids = [
                d.id
                for d in receiver.deliveries
                if d.path == path and json.loads(d.body)["type"] == "burst.item"
            ]
            assert len(ids) == len(set(ids)) == BURST, path
        # The servers' own workers were handed what their commits wrote (the unordered
        # endpoint's), while the other workers claimed beside them: both paths ran.
        assert sum(handed(base_url) for base_url in servers) > 0
    finally:
        receiver.stop()


def handed(base_url: str) -> float:
    """The deliveries a server's commits handed to its own worker, from its metrics."""
    exposition = httpx.get(f"{base_url}/metrics", timeout=30).text
    match = re.search(r"^cadenya_webhook_handed_deliveries_total (\S+)$", exposition, re.M)
    return float(match.group(1)) if match else 0.0


def secret_of_plane(base_url: str, api_key: str) -> str:
    from cadenya import Cadenya

    return secret_of(Cadenya(api_key=api_key, base_url=base_url))
