"""The webhooks benchmark: `python -m bench.webhooks [--database sqlite|postgresql|both]`.

Against a real `cadenya-server serve` (its built-in worker on) and a receiver in
another process (an asyncio HTTP server on loopback that answers 200 at once and
notes when each webhook-id first arrived), it measures:

- throughput from commit to receipt: `--messages` messages committed to the outbox
  (in transactions of 500, as fast as the database takes them) to one unordered
  endpoint, from the first commit to the last receipt; against a bare
  `httpx.AsyncClient` posting the same signed bodies to the same receiver with the
  same concurrency, in the same run (the issue's target: at least 0.5x);
- latency from the API's response to receipt, publishing over HTTP at `--rate`
  messages a second (target: p50 <= 20 ms, p99 <= 100 ms);
- an ordered endpoint's deliveries a second (target: at least 300);
- the cost to a write: PATCH of a workspace (it emits `workspace.updated`) in an
  account with three endpoints against one with none, p50, interleaved (target:
  at most 1.2x).

It writes `bench/results/webhooks-<database>.json` and `.md`. The machine is shared:
compare figures within one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.dataset import BenchError
from bench.measure import Sampling, Stats, add_common_arguments, free_port, yardstick
from cadenya_server import outbox
from cadenya_server.kit.clock import now
from cadenya_server.kit.db import Database, engine_url
from cadenya_server.webhooks.worker import body_of, signature_header

HERE = Path(__file__).resolve().parent
SECRET_KEY = "bench-webhooks-secret-key-" + "x" * 32
CONCURRENCY = 64
COMMIT_BATCH = 500

# --- The receiver (its own process) -------------------------------------------------------


class _Receiving(asyncio.Protocol):
    """Minimal HTTP/1.1 with keep-alive: POST notes its webhook-id; GET /times answers
    {id: first receipt}; POST /reset forgets them."""

    def __init__(self, seen: dict[str, float]) -> None:
        self.seen = seen
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length :]
            method, target = lines[0].split(" ")[:2]
            if method == "GET" and target == "/times":
                payload = json.dumps(self.seen).encode()
            elif target == "/reset":
                self.seen.clear()
                payload = b""
            else:
                message_id = headers.get("webhook-id", "")
                if message_id and message_id not in self.seen:
                    self.seen[message_id] = time.time()
                payload = b""
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload)
            )


def _receiver_main(port: int, ready: Any) -> None:
    async def main() -> None:
        seen: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Receiving(seen), "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextmanager
def receiver() -> Iterator[str]:
    port = free_port()
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=_receiver_main, args=(port, ready), daemon=True)
    process.start()
    if not ready.wait(30):
        raise BenchError("the receiver did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(5)


def receipts(receiver_url: str) -> dict[str, float]:
    return httpx.get(f"{receiver_url}/times", timeout=60).json()


def reset(receiver_url: str) -> None:
    httpx.post(f"{receiver_url}/reset", timeout=60)


def wait_receipts(receiver_url: str, ids: set[str], timeout: float = 600) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = receipts(receiver_url)
        if ids <= seen.keys():
            return seen
        time.sleep(0.2)
    raise BenchError(f"{len(ids - receipts(receiver_url).keys())} messages never arrived")


def wait_count(receiver_url: str, count: int, timeout: float = 900) -> dict[str, float]:
    """The receipts once `count` distinct messages arrived (the receiver was reset)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = receipts(receiver_url)
        if len(seen) >= count:
            return seen
        time.sleep(0.2)
    raise BenchError(f"{count - len(receipts(receiver_url))} messages never arrived")


# --- The server ---------------------------------------------------------------------------


@contextmanager
def database(kind: str, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/webhooks.db"
        return
    name = "cadenya_bench_webhooks"
    admin = create_engine(engine_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CADENYA_SERVER_DATABASE_URL": database_url,
        "CADENYA_SERVER_SECRET_KEY": SECRET_KEY,
        "CADENYA_SERVER_LOG_LEVEL": "WARNING",
        "CADENYA_SERVER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CADENYA_SERVER_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
    }


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cadenya_server", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"cadenya-server {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cadenya_server", "serve", "--port", str(port)], env=env
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the server did not start")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def account(env: dict[str, str], name: str) -> dict[str, str]:
    return json.loads(
        _cli(
            env,
            *("accounts", "create", "--name", name, "--domain", f"{name.lower()}.bench"),
            *("--admin-email", f"ada@{name.lower()}.bench", "--admin-name", "Ada", "--json"),
        )
    )


def endpoint(http: httpx.Client, receiver_url: str, **spec: Any) -> str:
    host = receiver_url.removeprefix("http://")
    http.post(
        "/v1/account/trusted_endpoints", json={"metadata": {"name": host}, "spec": {"host": host}}
    )
    response = http.post(
        "/v1/account/webhook_endpoints",
        json={"metadata": {"name": "bench"}, "spec": {"url": receiver_url, **spec}},
    )
    if response.status_code != 200:
        raise BenchError(f"could not add an endpoint: {response.text}")
    return response.json()["metadata"]["id"]


def commit_messages(db: Database, account_id: str, count: int, type: str) -> None:
    """`count` messages through the outbox, COMMIT_BATCH to a transaction, each batch
    written as the importer writes its events (`outbox.emit`): the measure is the
    delivery, not a loop of single inserts."""
    for start in range(0, count, COMMIT_BATCH):
        with db.transaction() as session:
            outbox.emit(
                session,
                account_id=account_id,
                events=[
                    outbox.Event(type, {"n": n})
                    for n in range(start, min(start + COMMIT_BATCH, count))
                ],
            )


def delivered_rate(
    db: Database, account_id: str, receiver_url: str, count: int, type: str
) -> float:
    """Messages a second from the first commit to the last receipt."""
    started = time.time()
    commit_messages(db, account_id, count, type)
    seen = wait_count(receiver_url, count)
    return count / (max(seen.values()) - started)


# --- The measures -------------------------------------------------------------------------


def bare_client(
    db: Database, account_id: str, receiver_url: str, count: int, concurrency: int = CONCURRENCY
) -> float:
    """The same signed bodies, posted by a bare httpx.AsyncClient with the same concurrency
    (1: one after another, as an ordered endpoint is sent)."""
    with db.transaction(write=False) as session:
        from cadenya_server.accounts import service as accounts
        from cadenya_server.kit.crypto import Keyring

        secrets = accounts.signing_secrets(
            session=session, keyring=Keyring(SECRET_KEY), account_id=account_id
        )
    bodies = [(f"msg_bare{n:020d}", body_of(_Message(n))) for n in range(count)]

    async def post_all() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def post(message_id: str, body: bytes) -> None:
                async with gate:
                    at = now()
                    await client.post(
                        receiver_url,
                        content=body,
                        headers={
                            "content-type": "application/json",
                            "webhook-id": message_id,
                            "webhook-timestamp": str(int(at.timestamp())),
                            "webhook-signature": signature_header(secrets, message_id, at, body),
                        },
                    )

            started = time.perf_counter()
            await asyncio.gather(*(post(i, b) for i, b in bodies))
            return count / (time.perf_counter() - started)

    return asyncio.run(post_all())


class _Message:
    def __init__(self, n: int) -> None:
        self.type = "bench.unordered"
        self.created_at = now()
        self.data = {"n": n}


def latency(
    base_url: str, tenant: dict[str, str], receiver_url: str, count: int, rate: float
) -> Stats:
    """Publish over HTTP at `rate` a second; receipt time minus the response's arrival."""
    answered: dict[str, float] = {}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {tenant['apiKey']}"}

    def publisher(offset: int, step: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            for n in range(offset, count, step):
                due = begun + n / rate
                time.sleep(max(due - time.time(), 0))
                response = http.post(
                    "/v1/account/webhook_messages", json={"type": "bench.latency", "data": {}}
                )
                at = time.time()
                with lock:
                    answered[response.json()["id"]] = at

    begun = time.time() + 0.5
    threads = [threading.Thread(target=publisher, args=(i, 4)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = wait_receipts(receiver_url, set(answered))
    gaps = [max(seen[i] - answered[i], 0.0) for i in answered]
    return Stats.of(gaps)


def write_cost(base_url: str, bare: dict[str, str], busy: dict[str, str], runs: int) -> dict:
    def patcher(tenant: dict[str, str]) -> Any:
        http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {tenant['apiKey']}"}, timeout=30
        )
        counter = iter(range(10**9))
        path = f"/v1/account/workspaces/{tenant['workspaceId']}"

        def call() -> None:
            response = http.patch(
                path,
                json={"metadata": {"name": f"W {next(counter)}"}, "updateMask": "metadata.name"},
            )
            if response.status_code != 200:
                raise BenchError(response.text)

        return call

    none, three = Sampling(runs=runs, budget_s=60).interleaved(patcher(bare), patcher(busy))
    return {"none": none.__dict__, "three": three.__dict__, "ratio": three.p50_ms / none.p50_ms}


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    with database(kind, args.postgres_url) as url:
        env = _env(url)
        _cli(env, "migrate")
        db = Database(url)
        first, second, third, bare = (account(env, n) for n in ("Flow", "Ord", "Busy", "Bare"))
        with receiver() as receiver_url, server(env) as base_url:
            clients = {
                name: httpx.Client(
                    base_url=base_url, headers={"Authorization": f"Bearer {t['apiKey']}"}
                )
                for name, t in (("flow", first), ("ord", second), ("busy", third))
            }
            endpoint(clients["flow"], receiver_url, eventTypes=["bench.unordered", "bench.latency"])
            endpoint(clients["ord"], receiver_url, eventTypes=["bench.ordered"], ordered=True)
            for _ in range(3):
                endpoint(clients["busy"], receiver_url)
            print(f"[{kind}] bare httpx client, {args.messages} posts …", flush=True)
            baseline = bare_client(db, first["accountId"], receiver_url, args.messages)
            reset(receiver_url)
            print(f"[{kind}] {args.messages} messages commit → receipt …", flush=True)
            server_rate = delivered_rate(
                db, first["accountId"], receiver_url, args.messages, "bench.unordered"
            )
            reset(receiver_url)
            print(f"[{kind}] latency at {args.rate:g}/s …", flush=True)
            lag = latency(base_url, first, receiver_url, args.latency_messages, args.rate)
            reset(receiver_url)
            print(f"[{kind}] bare httpx client, one at a time …", flush=True)
            serial = bare_client(
                db, second["accountId"], receiver_url, args.ordered_messages, concurrency=1
            )
            reset(receiver_url)
            print(f"[{kind}] ordered endpoint …", flush=True)
            ordered_rate = delivered_rate(
                db, second["accountId"], receiver_url, args.ordered_messages, "bench.ordered"
            )
            print(f"[{kind}] cost to a write …", flush=True)
            cost = write_cost(base_url, bare, third, args.runs)
        db.dispose()
    return {
        "database": kind,
        "yardstick_s": yardstick(),
        # The machine is shared: its 1-minute load average before and after this run.
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "concurrency": CONCURRENCY,
        "throughput": {
            "messages": args.messages,
            "server_per_s": round(server_rate, 1),
            "bare_httpx_per_s": round(baseline, 1),
            "ratio": round(server_rate / baseline, 3),
            "target_ratio": 0.5,
        },
        "latency": {
            "rate_per_s": args.rate,
            **lag.__dict__,
            "target_p50_ms": 20,
            "target_p99_ms": 100,
        },
        "ordered": {
            "messages": args.ordered_messages,
            "per_s": round(ordered_rate, 1),
            "bare_httpx_one_at_a_time_per_s": round(serial, 1),
            "target_per_s": 300,
        },
        "write_cost": {**cost, "target_ratio": 1.2},
    }


def markdown(result: dict[str, Any]) -> str:
    t, lat, o, w = (result[k] for k in ("throughput", "latency", "ordered", "write_cost"))

    def verdict(ok: bool) -> str:
        return "meets" if ok else "misses"

    return "\n".join(
        [
            f"# Webhooks on {result['database']}",
            "",
            f"Yardstick {result['yardstick_s']} s (bench/measure.py); load average "
            f"{' then '.join(map(str, result['load_average']))}; concurrency "
            f"{result['concurrency']}. One run on a shared machine: compare within it.",
            "",
            "| measure | figure | target | |",
            "| --- | --- | --- | --- |",
            f"| commit → receipt, {t['messages']} messages | {t['server_per_s']}/s vs bare "
            f"httpx {t['bare_httpx_per_s']}/s = {t['ratio']}x | ≥ 0.5x | "
            f"{verdict(t['ratio'] >= 0.5)} |",
            f"| response → receipt at {lat['rate_per_s']:g}/s | p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms | ≤ 20 / ≤ 100 ms | "
            f"{verdict(lat['p50_ms'] <= 20 and lat['p99_ms'] <= 100)} |",
            f"| ordered endpoint, {o['messages']} messages | {o['per_s']}/s (bare httpx one "
            f"at a time {o['bare_httpx_one_at_a_time_per_s']}/s) | ≥ 300/s | "
            f"{verdict(o['per_s'] >= 300)} |",
            f"| PATCH p50, three endpoints vs none | {w['three']['p50_ms']} vs "
            f"{w['none']['p50_ms']} ms = {w['ratio']:.2f}x | ≤ 1.2x | "
            f"{verdict(w['ratio'] <= 1.2)} |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--latency-messages", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--ordered-messages", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=300, help="PATCH samples per side")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for kind in kinds:
        try:
            result = run(kind, args)
        except BenchError as exc:
            print(f"[{kind}] {exc}", file=sys.stderr)
            return 1
        args.results_dir.mkdir(parents=True, exist_ok=True)
        (args.results_dir / f"webhooks-{kind}.json").write_text(json.dumps(result, indent=2) + "\n")
        table = markdown(result)
        (args.results_dir / f"webhooks-{kind}.md").write_text(table)
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
