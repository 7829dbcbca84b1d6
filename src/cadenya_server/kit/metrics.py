"""Prometheus metrics that stay right under `serve --workers N`.

With several workers, each process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) and /metrics,
whichever worker answers, merges every process's files. The library chooses the
mode when it is imported, so `serve` sets the directory up before it starts the
workers (`prepared`). With one process the metrics live in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("cadenya_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "cadenya_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
# Each worker has its own pool: the sums over the live workers are the server's.
POOL_CHECKED_OUT = Gauge(
    "cadenya_db_pool_checked_out", "Database connections in use", multiprocess_mode="livesum"
)
POOL_IDLE = Gauge(
    "cadenya_db_pool_idle", "Database connections idle in the pools", multiprocess_mode="livesum"
)
POOL_SIZE = Gauge(
    "cadenya_db_pool_size",
    "Database connections the pools keep (their configured size)",
    multiprocess_mode="livesum",
)
POOL_OVERFLOW = Gauge(
    "cadenya_db_pool_overflow",
    "Database connections open beyond the pools' size",
    multiprocess_mode="livesum",
)


def observe_pool(engine: Engine) -> None:
    """Record the state of this process's connection pool."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return
    POOL_CHECKED_OUT.set(pool.checkedout())
    POOL_IDLE.set(pool.checkedin())
    POOL_SIZE.set(pool.size())
    # Negative while the pool has opened fewer connections than its size.
    POOL_OVERFLOW.set(max(0, pool.overflow()))


@contextmanager
def prepared(*, workers: int) -> Iterator[None]:
    """Metrics ready for a run of `serve`: in memory for one process, else in files.

    An operator's own PROMETHEUS_MULTIPROC_DIR is used (and emptied of the last
    run's samples); otherwise, with several workers, a temporary directory is made
    for this run and removed afterwards.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield
        return
    if workers == 1:
        yield
        return
    path = Path(tempfile.mkdtemp(prefix="cadenya-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(path, ignore_errors=True)


def render() -> tuple[bytes, str]:
    """The exposition of every metric, of every worker; and its content type."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _forget_dead_workers(Path(path))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def worker_stopped() -> None:
    """This process's gauges no longer count (its counters and histograms still do)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        multiprocess.mark_process_dead(os.getpid(), path)


def _forget_dead_workers(path: Path) -> None:
    """Drop the gauges of workers that died without stopping (killed, crashed)."""
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and another user's
        pass
    return True
