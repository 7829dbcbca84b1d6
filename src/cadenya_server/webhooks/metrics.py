"""The webhook metrics. Counts are per process (summed over processes by Prometheus);
the pending figures are read from the database at scrape time, so every worker and
server reports the same truth however many there are."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cadenya_server.kit.clock import now
from cadenya_server.kit.db import Database
from cadenya_server.webhooks import repository

ATTEMPTS = Counter(
    "cadenya_webhook_attempts_total",
    "Webhook delivery attempts by outcome: completed, retrying, failed (given up), gone (410)",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "cadenya_webhook_attempt_duration_seconds",
    "Time from sending a webhook to its response (or failure)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class PendingCollector(Collector):
    """cadenya_webhook_pending_deliveries and the age of the oldest, from the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.db.transaction(write=False) as session:
                count, oldest = repository.pending_stats(session)
        except Exception:
            # A scrape while the database is away reports the rest.
            return
        yield GaugeMetricFamily(
            "cadenya_webhook_pending_deliveries", "Deliveries not yet completed or given up", count
        )
        age = (now() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "cadenya_webhook_oldest_pending_age_seconds",
            "Age of the oldest pending delivery (0 when none)",
            age,
        )
