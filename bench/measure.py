"""Timing: repeated samples and their percentiles, and the real server called over HTTP."""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from bench.dataset import BenchError, Target

PROFILES_PATH = "/v1/account/profiles"
YARDSTICK_WORDS = 50_000


BENCH_DIR = Path(__file__).resolve().parent


def write_result(directory: Path, stem: str, result: dict[str, Any], markdown: str) -> None:
    """`<stem>.json` and `<stem>.md` in `directory` (bench/results by default)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (directory / f"{stem}.md").write_text(markdown)


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """A result's targets as Markdown rows: what, met or **missed**, and the detail."""
    lines = ["| target | result | detail |", "| --- | --- | --- |"]
    for t in targets:
        lines.append(f"| {t['target']} | {'met' if t['met'] else '**missed**'} | {t['detail']} |")
    return lines


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """What every benchmark takes: the databases to run on, where results go, PostgreSQL's URL."""
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CADENYA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="any database on the PostgreSQL server, to create the benchmark's own from",
    )


def each_target(
    database: str, sqlite: Target, postgresql: Target, run: Callable[[Target], str]
) -> int:
    """Run a benchmark on the chosen databases, one after the other (on a small machine
    they would only measure each other), printing each one's table; the exit status."""
    targets = {"sqlite": [sqlite], "postgresql": [postgresql], "both": [sqlite, postgresql]}[
        database
    ]
    try:
        for target in targets:
            target.check_reachable()
        for target in targets:
            print(run(target), flush=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def yardstick() -> float:
    """Seconds this machine takes for a fixed piece of pure Python, best of five.

    The VMs this runs on differ from day to day by more than a round of changes (the same
    code took 1.4-1.5 times as long on one as on another): with this figure next to them,
    runs from different machines can be compared. Slicing strings into sets and counting
    them, as the search's own Python does.
    """
    words = [f"{n * 7919 % 100_003:x}.{n % 97}@example{n % 13}.org" for n in range(YARDSTICK_WORDS)]
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        counts: dict[str, int] = {}
        for word in words:
            for piece in {word[i : i + 3] for i in range(len(word) - 2)}:
                counts[piece] = counts.get(piece, 0) + 1
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


@dataclass(frozen=True)
class Stats:
    samples: int
    p50_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        ordered = sorted(s * 1000 for s in seconds)
        return cls(
            samples=len(ordered),
            p50_ms=round(_nearest_rank(ordered, 50), 3),
            p99_ms=round(_nearest_rank(ordered, 99), 3),
            min_ms=round(ordered[0], 3),
            max_ms=round(ordered[-1], 3),
            mean_ms=round(sum(ordered) / len(ordered), 3),
        )


def _nearest_rank(ordered: list[float], percent: int) -> float:
    """The smallest sample that at least `percent`% of the samples do not exceed."""
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class Sampling:
    """How long to measure one thing: `runs` samples, fewer once `budget_s` is spent."""

    runs: int
    budget_s: float
    # Even a slow plan gets this many samples, so its p50 means something.
    min_runs: int = 5

    def measure(self, call: Callable[[], object]) -> Stats:
        return self.interleaved(call)[0]

    def interleaved(self, *calls: Callable[[], object]) -> list[Stats]:
        """Samples of each call, taken in turns: timings compared with each other then see
        the same machine, whose speed drifts over minutes. Each call opens a turn as often
        as the others, so none always pays for, or always profits from, what the one before
        it left in the caches (the API call had always gone first)."""
        seconds: list[list[float]] = [[] for _ in calls]
        deadline = time.perf_counter() + self.budget_s * len(calls)
        for taken in range(1, self.runs + 1):
            for i in range(len(calls)):
                which = (taken + i) % len(calls)
                started = time.perf_counter()
                calls[which]()
                seconds[which].append(time.perf_counter() - started)
            if time.perf_counter() > deadline and taken >= min(self.min_runs, self.runs):
                break
        return [Stats.of(own) for own in seconds]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(
    database_url: str, secret_key: str, *, workers: int = 1, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """A `cadenya-server serve` process on a free port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "CADENYA_SERVER_DATABASE_URL": database_url,
        "CADENYA_SERVER_SECRET_KEY": secret_key,
        "CADENYA_SERVER_LOG_LEVEL": "WARNING",
        **(settings or {}),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cadenya_server",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base_url)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise BenchError("the server did not answer /healthz within 120 s")


class Api:
    """The profile search (or any GET, with `fetch`) over one keep-alive connection.

    The standard library's client rather than httpx: httpx's own Python work on
    each call would be counted as the server's overhead (API time minus SQL time).
    """

    def __init__(self, base_url: str, token: str) -> None:
        parsed = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=300)
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, params: dict[str, str]) -> bytes:
        """The body of a successful search."""
        return self._body(f"{PROFILES_PATH}?{urlencode(params)}")

    def healthz(self) -> bytes:
        """The server's cheapest call that reaches the database (one `SELECT 1`)."""
        return self._body("/healthz")

    def fetch(self, target: str) -> bytes:
        """The body of a successful GET of `target` (a path and its query)."""
        return self._body(target)

    def _body(self, target: str) -> bytes:
        try:
            response = self._send(target)
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closes a connection idle for its keep-alive timeout (uvicorn:
            # 5 s), as it is while the SQL is timed; the next call opens another.
            self._connection.close()
            response = self._send(target)
        body = response.read()
        if response.status != 200:
            raise BenchError(f"GET {target}: {response.status} {body.decode(errors='replace')}")
        return body

    def _send(self, target: str) -> http.client.HTTPResponse:
        self._connection.request("GET", target, headers=self._headers)
        return self._connection.getresponse()

    def page(self, params: dict[str, str]) -> dict[str, Any]:
        return json.loads(self.get(params))

    def close(self) -> None:
        self._connection.close()
