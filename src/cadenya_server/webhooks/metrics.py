"""The webhook metrics. Attempts are counted per process (summed over the workers of
`serve` by kit/metrics); the pending figures are read from the database when /metrics
is scraped, so every worker and server reports the same truth however many there are."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from cadenya_server.kit.clock import now
from cadenya_server.kit.db import Database
from cadenya_server.webhooks import repository

ATTEMPTS = Counter(
    "cadenya_webhook_attempts_total",
    "Webhook delivery attempts by outcome: completed, retrying, failed (given up), gone (410)",
    ["outcome"],
)
HANDED = Counter(
    "cadenya_webhook_handed_deliveries_total",
    "Deliveries a commit handed to its own process's worker, sent without a claim",
)
ATTEMPT_SECONDS = Histogram(
    "cadenya_webhook_attempt_duration_seconds",
    "Time from sending a webhook to its response (or failure)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Read from the database: the latest reading of any process is the truth.
PENDING = Gauge(
    "cadenya_webhook_pending_deliveries",
    "Deliveries not yet completed or given up",
    multiprocess_mode="mostrecent",
)
OLDEST_PENDING_AGE = Gauge(
    "cadenya_webhook_oldest_pending_age_seconds",
    "Age of the oldest pending delivery (0 when none)",
    multiprocess_mode="mostrecent",
)


def observe_pending(db: Database) -> None:
    """Read the pending deliveries into the gauges (a scrape while the database is away
    keeps the last reading)."""
    try:
        with db.transaction(write=False) as session:
            count, oldest = repository.pending_stats(session)
    except Exception:
        return
    PENDING.set(count)
    OLDEST_PENDING_AGE.set((now() - oldest).total_seconds() if oldest is not None else 0.0)
