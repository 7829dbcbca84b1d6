"""Profiles created per second through the API in one account, by 1 and by 8 concurrent
clients, with and without an import into the same account running (issue #17).

    python -m bench.writes [--database sqlite|postgresql|both] [--seconds 5] [--rounds 3]
        [--seed-profiles 60000] [--import-profiles 400000]

Loads `--seed-profiles` into a fresh account through the importer (past the size from
which the account keeps label gram counts), starts the real server, and in each round
has 1 and then 8 clients POST new profiles for `--seconds` each; then starts
`cadenya-server profiles import` of `--import-profiles` more into the same account in
a process of its own and measures the same while it runs. Each figure is kept only if
the import was still running when it ended. Every ratio is taken within one round. The
slowest write during an import, against how long the import's batches take, says
whether a writer waited for a batch to commit. Writes bench/results/writes-<database>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import dataset
from bench.dataset import BenchError, Target, progress
from bench.measure import PROFILES_PATH, Stats, add_common_arguments, serving
from cadenya_server import demo_data
from cadenya_server.kit import migrate

HERE = Path(__file__).resolve().parent
CLIENTS = (1, 8)
# Requests are still counted against their credential's budget, and against the
# account's profile limit, both set out of reach: the benchmark measures writes.
SETTINGS = {
    "CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL": "100000000/minute",
    "CADENYA_SERVER_MAX_PROFILES_PER_ACCOUNT": "100000000",
}
# The target of issue #17: 8 writers reach this multiple of one's throughput (PostgreSQL).
EIGHT_WRITERS_TARGET = 1.5


@dataclass(frozen=True)
class Writes:
    clients: int
    profiles_per_second: float
    failures: int
    latency: Stats | None


class _Writer(threading.Thread):
    """POSTs new profiles on one keep-alive connection until told to stop."""

    def __init__(self, base_url: str, token: str, prefix: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        parsed = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=300)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._prefix = prefix
        self._halt = stop
        self.seconds: list[float] = []
        self.failures = 0

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            body = json.dumps(
                {
                    "metadata": {"labels": {"team": "core"}},
                    "spec": {
                        "name": f"Writer {self._prefix} {n}",
                        "email": f"{self._prefix}.{n}@w.io",
                    },
                }
            )
            started = time.perf_counter()
            self._connection.request("POST", PROFILES_PATH, body=body, headers=self._headers)
            response = self._connection.getresponse()
            response.read()
            if response.status == 200:
                self.seconds.append(time.perf_counter() - started)
            else:
                self.failures += 1
            n += 1
        self._connection.close()


def write_for(base_url: str, token: str, *, clients: int, seconds: float, tag: str) -> Writes:
    """`clients` writers POSTing profiles for `seconds`."""
    stop = threading.Event()
    writers = [_Writer(base_url, token, f"{tag}-{n}", stop) for n in range(clients)]
    started = time.perf_counter()
    for writer in writers:
        writer.start()
    time.sleep(seconds)
    stop.set()
    for writer in writers:
        writer.join()
    elapsed = time.perf_counter() - started
    samples = [s for writer in writers for s in writer.seconds]
    return Writes(
        clients=clients,
        profiles_per_second=round(len(samples) / elapsed, 1),
        failures=sum(writer.failures for writer in writers),
        # None: no write succeeded (SQLite's writers time out behind a long import batch).
        latency=Stats.of(samples) if samples else None,
    )


def _ratio(many: Writes, one: Writes) -> float:
    """Throughput of many clients over one's (0 when one client wrote nothing)."""
    if not one.profiles_per_second:
        return 0.0
    return round(many.profiles_per_second / one.profiles_per_second, 2)


def _start_import(
    target: Target, secret_key: str, account_id: str, path: Path
) -> subprocess.Popen[str]:
    """`cadenya-server profiles import` into the account, in a process of its own."""
    env = {
        **os.environ,
        "CADENYA_SERVER_DATABASE_URL": target.url,
        "CADENYA_SERVER_SECRET_KEY": secret_key,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cadenya_server",
            "profiles",
            "import",
            "--account",
            account_id,
            str(path),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    target.reset()
    secret_key = "bench-writes-secret-key-" + "x" * 32
    runtime = dataset.runtime_for(target, secret_key)
    try:
        migrate.upgrade(runtime.db.engine)
        account_id, token = dataset._create_account(runtime, name="Acme", domain="acme.io")
        progress(f"{target.kind}: seeding {args.seed_profiles:,} profiles")
        dataset._import(runtime, account_id, demo_data.profiles(args.seed_profiles, seed=1))
    finally:
        runtime.db.dispose()
    rounds: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    with serving(target.url, secret_key, settings=SETTINGS) as base_url:
        for number in range(args.rounds):
            alone = {
                n: write_for(base_url, token, clients=n, seconds=args.seconds, tag=f"r{number}a{n}")
                for n in CLIENTS
            }
            path = args.data_dir / f"writes-{target.kind}.jsonl"
            with path.open("w", encoding="utf-8") as handle:
                records = demo_data.profiles(args.import_profiles, seed=100 + number)
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            importing = _start_import(target, secret_key, account_id, path)
            started = time.perf_counter()
            # The importer's first batch is being read and counted before it writes.
            time.sleep(args.seconds)
            during = {}
            for n in CLIENTS:
                during[n] = write_for(
                    base_url, token, clients=n, seconds=args.seconds, tag=f"r{number}i{n}"
                )
                if importing.poll() is not None:
                    raise BenchError(
                        "the import finished before the writes did: raise --import-profiles"
                    )
            _, errors = importing.communicate()
            import_seconds = time.perf_counter() - started
            path.unlink()
            if importing.returncode != 0:
                raise BenchError(f"the import failed: {errors[-2000:]}")
            rounds.append(
                {
                    "alone": {n: asdict(w) for n, w in alone.items()},
                    "during_import": {n: asdict(w) for n, w in during.items()},
                    "import_seconds": round(import_seconds, 2),
                    "eight_to_one": _ratio(alone[8], alone[1]),
                    "eight_to_one_during_import": _ratio(during[8], during[1]),
                }
            )
            progress(f"{target.kind}: round {number + 1}: {json.dumps(rounds[-1]['eight_to_one'])}")
    result = {
        "database": target.kind,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "settings": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "seed_profiles": args.seed_profiles,
            "import_profiles": args.import_profiles,
        },
        "rounds": rounds,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"writes-{target.kind}.json").write_text(json.dumps(result, indent=2))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The medians of the rounds (and their range) as a table."""

    def median(pick: Any) -> str:
        values = [pick(r) for r in result["rounds"]]
        return f"{statistics.median(values):g} ({min(values):g}–{max(values):g})"

    rows = [
        ("profiles/s, 1 client", lambda r: r["alone"][1]["profiles_per_second"]),
        ("profiles/s, 8 clients", lambda r: r["alone"][8]["profiles_per_second"]),
        ("8 ÷ 1 clients", lambda r: r["eight_to_one"]),
        (
            "profiles/s, 1 client, import running",
            lambda r: r["during_import"][1]["profiles_per_second"],
        ),
        (
            "profiles/s, 8 clients, import running",
            lambda r: r["during_import"][8]["profiles_per_second"],
        ),
        ("8 ÷ 1 clients, import running", lambda r: r["eight_to_one_during_import"]),
        (
            "slowest write, import running (ms)",
            lambda r: max(
                (w["latency"]["max_ms"] for w in r["during_import"].values() if w["latency"]),
                default=0,
            ),
        ),
        (
            "p99 write, 8 clients, import running (ms)",
            lambda r: (r["during_import"][8]["latency"] or {"p99_ms": 0})["p99_ms"],
        ),
        ("import of the batch file (s)", lambda r: r["import_seconds"]),
    ]
    lines = [
        f"## Profile writes: {result['database']}",
        "",
        f"Load average before and after: {result['load_average']}; settings: {result['settings']}.",
        "",
        "| measure | median (range) |",
        "| --- | ---: |",
    ]
    lines += [f"| {title} | {median(pick)} |" for title, pick in rows]
    failures = sum(
        w["failures"]
        for r in result["rounds"]
        for part in ("alone", "during_import")
        for w in r[part].values()
    )
    lines.append(f"\nFailed writes: {failures}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.writes", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed-profiles", type=int, default=60_000)
    parser.add_argument("--import-profiles", type=int, default=400_000)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--postgres-database", default="cadenya_bench_writes")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    sqlite = Target(
        "sqlite", f"sqlite:///{args.data_dir / 'writes-sqlite.db'}", args.data_dir / "writes.json"
    )
    postgresql = Target.postgresql(args.data_dir, args.postgres_url, args.postgres_database)
    targets = {"sqlite": [sqlite], "postgresql": [postgresql], "both": [sqlite, postgresql]}[
        args.database
    ]
    try:
        for target in targets:
            target.check_reachable()
        for target in targets:
            print(markdown(run(target, args)), flush=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
