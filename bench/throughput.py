"""Requests per second of an authenticated GET /v1/account, against the same server's
cheapest route, on one worker and on two (issue 14).

    python -m bench.throughput [--database sqlite|postgresql|both] [--seconds 5]
        [--rounds 5] [--connections 32]

Starts the real server twice on one database, with `--workers 1` and `--workers 2`,
and loads them in rounds: in each round, each server's cheapest route
(`/.well-known/jwks.json`) and then `GET /v1/account` with an admin API key, for
`--seconds` each. The machine is shared and noisy, so every ratio is taken within
one round, from figures measured moments apart, and the report gives the median
of the rounds and their spread. The load comes from wrk (Debian's /usr/bin/wrk,
or any `wrk` on PATH); without it, from a small asyncio client in this process,
whose figures are lower and not comparable with wrk's (CADENYA_BENCH_NO_WRK=1
chooses it even where wrk is installed). Writes
bench/results/throughput-<database>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.dataset import BenchError, Target, progress
from bench.measure import add_common_arguments, each_target, serving

HERE = Path(__file__).resolve().parent
SECRET_KEY = "bench-throughput-secret-key-" + "x" * 32
CHEAPEST = "/.well-known/jwks.json"
ACCOUNT = "/v1/account"
WORKERS = (1, 2)
# The targets of issue 14.
# Every request is still counted against its credential's budget, but the budget
# is out of reach: the benchmark measures the request path, not refusals.
SETTINGS = {"CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL": "100000000/minute"}
ACCOUNT_RATIO_TARGET = 0.5
TWO_WORKERS_TARGET = 1.5


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    # Answers other than 2xx, and connection errors: any makes the figure worthless.
    failures: int


def wrk_path() -> str | None:
    if os.environ.get("CADENYA_BENCH_NO_WRK"):
        return None
    return "/usr/bin/wrk" if os.access("/usr/bin/wrk", os.X_OK) else shutil.which("wrk")


def load(url: str, token: str | None, *, seconds: float, connections: int) -> Load:
    """Keep `connections` keep-alive connections busy with GET url for `seconds`."""
    wrk = wrk_path()
    if wrk is None:
        return asyncio.run(_python_load(url, token, seconds=seconds, connections=connections))
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    # One wrk thread: on a small machine a second would take a core from the server.
    done = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", *headers, url],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if rate is None:
        raise BenchError(f"unexpected wrk output: {done.stdout}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", done.stdout
    )
    failures = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in errors.groups()) if errors else 0
    )
    return Load(float(rate.group(1)), failures)


async def _python_load(url: str, token: str | None, *, seconds: float, connections: int) -> Load:
    """wrk's measurement, roughly, for a machine without it: HTTP/1.1 keep-alive, no pipelining."""
    host, port, path = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url).groups()  # type: ignore[union-attr]
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()
    deadline = time.perf_counter() + seconds
    done = failures = 0

    async def connection() -> None:
        nonlocal done, failures
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                done += 1
                failures += not head.startswith(b"HTTP/1.1 2")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return Load(done / (time.perf_counter() - started), failures)


def _cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "cadenya_server", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def run(
    target: Target, *, seconds: float, rounds: int, connections: int, results_dir: Path
) -> dict[str, Any]:
    target.reset()
    env = {**os.environ, "CADENYA_SERVER_DATABASE_URL": target.url}
    env["CADENYA_SERVER_SECRET_KEY"] = SECRET_KEY
    _cli(env, "migrate")
    account = ["--name", "Bench", "--domain", "bench.io", "--admin-email", "ada@bench.io"]
    created = _cli(env, "accounts", "create", *account, "--admin-name", "Ada", "--json")
    token = json.loads(created)["apiKey"]
    load_before = os.getloadavg()
    measured: list[dict[str, Any]] = []
    with (
        serving(target.url, SECRET_KEY, workers=1, settings=SETTINGS) as one,
        serving(target.url, SECRET_KEY, workers=2, settings=SETTINGS) as two,
    ):
        servers = {1: one, 2: two}
        for url in (one, two):
            # Warm: the key's last use is noted, the statements are prepared.
            load(f"{url}{ACCOUNT}", token, seconds=1, connections=connections)
        for number in range(rounds):
            figures: dict[str, Any] = {}
            # Alternate the order, so that neither server always runs on a machine
            # the other has just warmed (or just left busy).
            order = WORKERS if number % 2 == 0 else tuple(reversed(WORKERS))
            for workers in order:
                for name, path, auth in (("cheapest", CHEAPEST, None), ("account", ACCOUNT, token)):
                    got = load(
                        f"{servers[workers]}{path}", auth, seconds=seconds, connections=connections
                    )
                    if got.failures:
                        raise BenchError(f"{got.failures} failed requests to {path}")
                    figures[f"{name}_{workers}w"] = round(got.requests_per_second, 1)
            figures["account_ratio_1w"] = round(figures["account_1w"] / figures["cheapest_1w"], 3)
            figures["account_ratio_2w"] = round(figures["account_2w"] / figures["cheapest_2w"], 3)
            figures["two_workers_account"] = round(figures["account_2w"] / figures["account_1w"], 3)
            figures["two_workers_cheapest"] = round(
                figures["cheapest_2w"] / figures["cheapest_1w"], 3
            )
            progress(f"{target.kind} round {number + 1}: {figures}")
            measured.append(figures)
    return report(
        name="throughput",
        kind=target.kind,
        rounds=measured,
        seconds=seconds,
        connections=connections,
        load_before=load_before,
        results_dir=results_dir,
        targets=lambda summary: [
            target_result(
                "GET /v1/account ≥ 0.5× the cheapest route, one worker",
                summary["account_ratio_1w"]["median"],
                ACCOUNT_RATIO_TARGET,
            ),
            target_result(
                "GET /v1/account on two workers ≥ 1.5× one worker",
                summary["two_workers_account"]["median"],
                TWO_WORKERS_TARGET,
            ),
        ],
    )


def report(
    *,
    name: str,
    kind: str,
    rounds: list[dict[str, Any]],
    seconds: float,
    connections: int,
    load_before: tuple[float, float, float],
    results_dir: Path,
    targets: Callable[[dict[str, dict[str, float]]], list[dict[str, Any]]],
) -> dict[str, Any]:
    """A load benchmark's result, written to results_dir/<name>-<database>.json."""
    summary = summarize(rounds)
    result = {
        "database": kind,
        "load_generator": wrk_path() or "python asyncio client (bench.throughput)",
        "seconds_per_measurement": seconds,
        "connections": connections,
        "rounds": rounds,
        "summary": summary,
        "targets": targets(summary),
        "environment": environment(load_before),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}-{kind}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def summarize(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each measure's median over the rounds, and its spread."""
    return {
        key: {
            "median": round(statistics.median(r[key] for r in rounds), 3),
            "min": min(r[key] for r in rounds),
            "max": max(r[key] for r in rounds),
        }
        for key in rounds[0]
    }


def environment(load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def heading(result: dict[str, Any]) -> list[str]:
    """The first lines of a load benchmark's Markdown report."""
    return [
        f"### {result['database']}: {len(result['rounds'])} rounds of "
        f"{result['seconds_per_measurement']} s, {result['connections']} connections, "
        f"{Path(result['load_generator']).name}",
        "",
        "| measure | median | min | max |",
        "| --- | ---: | ---: | ---: |",
    ]


def footer(result: dict[str, Any]) -> list[str]:
    """The targets and the machine, under a load benchmark's table."""
    lines = [""]
    lines += [
        f"- {t['title']}: {t['median']} ({'met' if t['met'] else 'missed'})"
        for t in result["targets"]
    ]
    machine = result["environment"]
    lines.append(
        f"- {machine['cpus']} CPUs; load average {machine['load_average_before'][0]} "
        f"before, {machine['load_average_after'][0]} after"
    )
    return lines


def target_result(title: str, measured: float, wanted: float) -> dict[str, Any]:
    return {"title": title, "median": measured, "target": wanted, "met": measured >= wanted}


def markdown(result: dict[str, Any]) -> str:
    summary = result["summary"]
    rows = [
        ("cheapest route, 1 worker (req/s)", "cheapest_1w"),
        ("GET /v1/account, 1 worker (req/s)", "account_1w"),
        ("cheapest route, 2 workers (req/s)", "cheapest_2w"),
        ("GET /v1/account, 2 workers (req/s)", "account_2w"),
        ("account ÷ cheapest, 1 worker", "account_ratio_1w"),
        ("account ÷ cheapest, 2 workers", "account_ratio_2w"),
        ("2 workers ÷ 1, GET /v1/account", "two_workers_account"),
        ("2 workers ÷ 1, cheapest route", "two_workers_cheapest"),
    ]
    lines = heading(result)
    lines += [
        f"| {title} | {summary[key]['median']} | {summary[key]['min']} | {summary[key]['max']} |"
        for title, key in rows
    ]
    return "\n".join(lines + footer(result))


def main_of(
    argv: list[str] | None,
    *,
    module: str,
    doc: str,
    name: str,
    run: Callable[..., dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
) -> int:
    """The command line of a load benchmark: its databases, rounds, seconds, connections."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc)
    add_common_arguments(parser)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument(
        "--postgres-database",
        default=f"cadenya_bench_{name.replace('-', '_')}",
        help="the benchmark's database, dropped and created again",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.connections < 1 or args.seconds <= 0:
        parser.error("--rounds, --connections and --seconds must be positive")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    sqlite = Target("sqlite", f"sqlite:///{args.data_dir / f'{name}-sqlite.db'}", Path())
    postgresql = Target.postgresql(args.data_dir, args.postgres_url, args.postgres_database)

    def one(target: Target) -> str:
        result = run(
            target,
            seconds=args.seconds,
            rounds=args.rounds,
            connections=args.connections,
            results_dir=args.results_dir,
        )
        return markdown(result)

    return each_target(args.database, sqlite, postgresql, one)


def main(argv: list[str] | None = None) -> int:
    return main_of(
        argv, module="bench.throughput", doc=__doc__, name="throughput", run=run, markdown=markdown
    )


if __name__ == "__main__":
    sys.exit(main())
